//! `/metrics` (Prometheus text exposition), `/livez` and `/healthz` for the daemon.
//!
//! `/livez` and `/healthz` answer two questions. `/livez` asks whether the
//! process and its sweep loop are alive: the loop calls [`Metrics::beat`] while
//! idle and between sweep steps (where it feeds the systemd watchdog), and
//! `/livez` fails only once no beat has come for the watchdog interval, the same
//! verdict systemd's watchdog reaches. A restart helps only then, so that is the
//! liveness probe. `/healthz` asks whether the last sweep succeeded and is
//! recent: one bad key fails it, and a restart would not mend that key, so it is
//! for alerting.
//!
//! The sweep loop hands every [`SweepReport`] to [`Metrics::record_sweep`]; the
//! HTTP side only ever reads the numbers kept here, so a scrape never touches
//! MASV, Vault or the database and cannot slow a sweep down. Only ids, names and
//! counts are kept (a report carries no secret, and nothing here adds one).
//! The listener itself is bounded (connections, timeouts): see [`crate::local_http`].
//!
//! Choices the report forces:
//! - Key states (active/inactive/suspended) are not in a report, only each key's
//!   *role* in its lineage, so `keys` is labelled by `role`
//!   (current, retiring, incoming, orphan, other); suspended and stale keys have
//!   their own gauges from the planner's notes.
//! - Expiry itself is not in a report, only when the current key falls due
//!   (expiry minus `rotate_before_expiry`, or `max_age`), so the per-lineage gauge
//!   is `seconds_to_next_rotation`, measured against the clock at scrape time
//!   (negative: overdue). A lineage rotated in the last sweep has no series until
//!   the next sweep plans its new key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State as Extract;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::engine::planner::{KeyRole, NextStep, Note};
use crate::engine::SweepReport;
use crate::exit::Exit;
use crate::lease::{LeaseRole, LeaseStatus};
use crate::local_http::{self, Limits};
use crate::notify::StatsSource;

/// Every series name starts with this.
pub const PREFIX: &str = "masv_key_rotator_";

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long the sweep loop may go without a sign of life before `/livez`
/// fails, when systemd sets no watchdog: the unit's `WatchdogSec=`.
pub const DEFAULT_LIVE_WINDOW: Duration = Duration::from_secs(120);

const ROLES: [&str; 5] = ["current", "retiring", "incoming", "orphan", "other"];

/// What the daemon exposes; cheap to clone (one shared state).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    sweep_interval: Duration,
    /// `/livez` fails once the loop has not beaten for this long.
    live_window: Duration,
    clock: SharedClock,
    /// When the sweep loop last showed a sign of life (see [`Metrics::beat`]).
    last_beat: Mutex<DateTime<Utc>>,
    state: Mutex<State>,
    /// The webhook's delivery counters, read at scrape time (None: no `[notify]`).
    webhook: Mutex<Option<StatsSource>>,
    /// The HA lease keeper's status, read at scrape time (None: no `[ha]`).
    lease: Mutex<Option<watch::Receiver<LeaseStatus>>>,
}

#[derive(Default)]
struct State {
    last: Option<LastSweep>,
    last_success: Option<DateTime<Utc>>,
    sweeps_ok: u64,
    sweeps_failed: u64,
    rotations_ok: u64,
    rotations_failed: u64,
    /// (action, outcome) -> count.
    actions: BTreeMap<(&'static str, &'static str), u64>,
    /// Gauges from the last sweep.
    roles: BTreeMap<&'static str, u64>,
    next_rotation: BTreeMap<(String, String), DateTime<Utc>>,
    stale_keys: u64,
    suspended_keys: u64,
    lineages: u64,
    managed_keys: u64,
    unmanaged_keys: u64,
    unmanageable_keys: u64,
}

struct LastSweep {
    finished_at: DateTime<Utc>,
    duration_seconds: f64,
    /// None: the sweep succeeded; Some: why it did not.
    failure: Option<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sweep_interval", &self.inner.sweep_interval)
            .finish_non_exhaustive()
    }
}

fn role_name(role: KeyRole) -> &'static str {
    match role {
        KeyRole::Current => "current",
        KeyRole::Retiring => "retiring",
        KeyRole::Incoming => "incoming",
        KeyRole::Orphan => "orphan",
        KeyRole::Other => "other",
    }
}

/// Why a report does not count as a successful sweep (None: it does).
fn failure_of(report: &SweepReport) -> Option<String> {
    match report.exit() {
        Exit::Success => None,
        Exit::Unreachable => Some("last sweep could not reach MASV or Vault".into()),
        _ => Some(format!(
            "last sweep failed: {} action(s) failed, {} error(s)",
            report.failed(),
            report.errors.len()
        )),
    }
}

/// Escapes a label value for the text format (backslash, double quote, newline).
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// Writes one metric family: HELP, TYPE and its samples.
struct Family<'a> {
    out: &'a mut String,
    name: String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let name = format!("{PREFIX}{name}");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) -> &mut Self {
        self.out.push_str(&self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }
}

impl Metrics {
    /// `sweep_interval` is the schedule's period: `/healthz` fails once the last
    /// successful sweep is more than two intervals old.
    /// `/livez` fails after [`DEFAULT_LIVE_WINDOW`] without a [`Metrics::beat`].
    pub fn new(sweep_interval: Duration, clock: SharedClock) -> Self {
        Self::with_live_window(sweep_interval, DEFAULT_LIVE_WINDOW, clock)
    }

    /// As [`Metrics::new`]; `/livez` fails once the sweep loop has not called
    /// [`Metrics::beat`] for `live_window` (the systemd watchdog interval).
    pub fn with_live_window(
        sweep_interval: Duration,
        live_window: Duration,
        clock: SharedClock,
    ) -> Self {
        let started = clock.now();
        Metrics {
            inner: Arc::new(Inner {
                sweep_interval,
                live_window,
                last_beat: Mutex::new(started),
                clock,
                state: Mutex::new(State::default()),
                webhook: Mutex::new(None),
                lease: Mutex::new(None),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain numbers behind: still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Exposes the webhook's delivery counters (`webhook_deliveries_total`,
    /// `webhook_deliveries_failed_total`); without a webhook both stay 0.
    pub fn count_webhook(&self, source: StatsSource) {
        *self
            .inner
            .webhook
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(source);
    }

    /// Exposes the HA lease (`leader`, `lease_transitions_total`); a standby
    /// is healthy without sweeping.
    pub fn follow_lease(&self, status: watch::Receiver<LeaseStatus>) {
        *self
            .inner
            .lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(status);
    }

    fn lease(&self) -> Option<LeaseStatus> {
        self.inner
            .lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .map(|rx| rx.borrow().clone())
    }

    /// Takes in one finished sweep (call it from the sweep loop's `on_sweep`).
    pub fn record_sweep(&self, report: &SweepReport) {
        let finished_at = report
            .finished_at
            .or(report.started_at)
            .unwrap_or_else(|| self.inner.clock.now());
        let duration_seconds = match (report.started_at, report.finished_at) {
            (Some(s), Some(f)) if f >= s => seconds(f - s),
            _ => 0.0,
        };
        let failure = failure_of(report);

        let mut roles: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut next_rotation = BTreeMap::new();
        let rotated: BTreeSet<(&str, &str)> = report
            .outcomes
            .iter()
            .filter(|o| o.ok && o.action.is_rotation())
            .map(|o| (o.lineage.team_id.as_str(), o.lineage.name.as_str()))
            .collect();
        for plan in &report.plans {
            for look in &plan.keys {
                *roles.entry(role_name(look.role)).or_default() += 1;
            }
            let l = &plan.lineage;
            if rotated.contains(&(l.team_id.as_str(), l.name.as_str())) {
                continue;
            }
            let due = plan.keys.iter().find_map(|k| {
                (k.role == KeyRole::Current && k.next == NextStep::Rotate)
                    .then_some(k.next_at)
                    .flatten()
            });
            if let Some(at) = due {
                next_rotation.insert((l.team_id.clone(), l.name.clone()), at);
            }
        }
        let mut stale = BTreeSet::new();
        let mut suspended = BTreeSet::new();
        for (_, note) in report.notes() {
            match note {
                Note::Stale { key_id } => {
                    stale.insert(key_id.as_str());
                }
                Note::Suspended { key_id } => {
                    suspended.insert(key_id.as_str());
                }
                _ => {}
            }
        }

        let mut s = self.state();
        for o in &report.outcomes {
            let outcome = if o.ok { "ok" } else { "failed" };
            *s.actions.entry((o.action.as_str(), outcome)).or_default() += 1;
            if o.action.is_rotation() {
                if o.ok {
                    s.rotations_ok += 1;
                } else {
                    s.rotations_failed += 1;
                }
            }
        }
        if failure.is_none() {
            s.sweeps_ok += 1;
            s.last_success = Some(finished_at);
        } else {
            s.sweeps_failed += 1;
        }
        s.last = Some(LastSweep {
            finished_at,
            duration_seconds,
            failure,
        });
        s.roles = roles;
        s.next_rotation = next_rotation;
        s.stale_keys = stale.len() as u64;
        s.suspended_keys = suspended.len() as u64;
        s.lineages = report.lineages as u64;
        s.managed_keys = report.managed_keys as u64;
        s.unmanaged_keys = report.unmanaged_keys as u64;
        s.unmanageable_keys = report.unmanageable.len() as u64;
    }

    /// A sign of life from the sweep loop (idle ticks, between sweep steps).
    pub fn beat(&self) {
        let now = self.inner.clock.now();
        *self
            .inner
            .last_beat
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
    }

    /// Ok while the sweep loop has beaten within the live window; else why not.
    pub fn liveness(&self) -> Result<(), String> {
        let last = *self
            .inner
            .last_beat
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let quiet = self.inner.clock.now() - last;
        let limit =
            chrono::Duration::from_std(self.inner.live_window).unwrap_or(chrono::Duration::MAX);
        if quiet > limit {
            return Err(format!(
                "sweep loop stuck: no sign of life for {}s, more than the watchdog interval ({}s)",
                quiet.num_seconds(),
                limit.num_seconds()
            ));
        }
        Ok(())
    }

    /// Ok if the last sweep succeeded within two sweep intervals of now (or,
    /// with `[ha]`, this instance is a standby that has read the lease); else
    /// why not.
    pub fn health(&self) -> Result<(), String> {
        match self.lease().map(|l| l.role) {
            Some(LeaseRole::Standby) => return Ok(()),
            Some(LeaseRole::Starting) => {
                return Err("the HA lease has not been read yet (Vault not reached)".into())
            }
            Some(LeaseRole::Holder) | None => {}
        }
        let s = self.state();
        let Some(last) = &s.last else {
            return Err("no sweep yet".into());
        };
        if let Some(why) = &last.failure {
            return Err(why.clone());
        }
        let age = self.inner.clock.now() - last.finished_at;
        let limit = chrono::Duration::from_std(self.inner.sweep_interval * 2)
            .unwrap_or(chrono::Duration::MAX);
        if age > limit {
            return Err(format!(
                "last sweep finished {}s ago, more than two sweep intervals ({}s)",
                age.num_seconds(),
                limit.num_seconds()
            ));
        }
        Ok(())
    }

    pub fn healthy(&self) -> bool {
        self.health().is_ok()
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        let now = self.inner.clock.now();
        let healthy = u8::from(self.healthy());
        let s = self.state();
        let mut out = String::new();

        Family::new(
            &mut out,
            "sweeps_total",
            "counter",
            "Sweeps finished, by result (failed: an action failed, an error, or unreachable).",
        )
        .sample(&[("result", "ok")], s.sweeps_ok)
        .sample(&[("result", "failed")], s.sweeps_failed);

        Family::new(
            &mut out,
            "sweep_duration_seconds",
            "gauge",
            "How long the last sweep took.",
        )
        .sample(&[], s.last.as_ref().map_or(0.0, |l| l.duration_seconds));

        Family::new(
            &mut out,
            "last_success_timestamp_seconds",
            "gauge",
            "Unix time the last successful sweep finished (0: none yet).",
        )
        .sample(&[], s.last_success.map_or(0, |t| t.timestamp()));

        Family::new(
            &mut out,
            "rotations_total",
            "counter",
            "Rotations started or resumed, by outcome.",
        )
        .sample(&[("outcome", "ok")], s.rotations_ok)
        .sample(&[("outcome", "failed")], s.rotations_failed);

        let mut f = Family::new(
            &mut out,
            "actions_total",
            "counter",
            "Actions carried out, by kind and outcome.",
        );
        for ((action, outcome), n) in &s.actions {
            f.sample(&[("action", action), ("outcome", outcome)], n);
        }

        let mut f = Family::new(
            &mut out,
            "keys",
            "gauge",
            "Managed keys in the last sweep, by role in their lineage.",
        );
        for role in ROLES {
            f.sample(&[("role", role)], s.roles.get(role).copied().unwrap_or(0));
        }

        Family::new(
            &mut out,
            "stale_keys",
            "gauge",
            "Active keys unused for unused_after, in the last sweep.",
        )
        .sample(&[], s.stale_keys);

        Family::new(
            &mut out,
            "suspended_keys",
            "gauge",
            "Managed keys MASV has suspended, in the last sweep.",
        )
        .sample(&[], s.suspended_keys);

        Family::new(
            &mut out,
            "lineages",
            "gauge",
            "Lineages planned in the last sweep.",
        )
        .sample(&[], s.lineages);

        Family::new(
            &mut out,
            "managed_keys",
            "gauge",
            "Keys matching a team's patterns in the last sweep.",
        )
        .sample(&[], s.managed_keys);

        Family::new(
            &mut out,
            "unmanaged_keys",
            "gauge",
            "Keys listed but matching no pattern in the last sweep.",
        )
        .sample(&[], s.unmanaged_keys);

        Family::new(
            &mut out,
            "unmanageable_keys",
            "gauge",
            "Keys matching a pattern that cannot be managed (name or description unfit); left alone.",
        )
        .sample(&[], s.unmanageable_keys);

        let mut f = Family::new(
            &mut out,
            "seconds_to_next_rotation",
            "gauge",
            "Seconds until the lineage's current key falls due (negative: overdue).",
        );
        for ((team_id, lineage), at) in &s.next_rotation {
            f.sample(
                &[("team_id", team_id), ("lineage", lineage)],
                seconds(*at - now),
            );
        }

        let webhook = self
            .inner
            .webhook
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .map(StatsSource::snapshot)
            .unwrap_or_default();
        Family::new(
            &mut out,
            "webhook_deliveries_total",
            "counter",
            "Webhook events the receiver accepted (2xx).",
        )
        .sample(&[], webhook.delivered);
        Family::new(
            &mut out,
            "webhook_deliveries_failed_total",
            "counter",
            "Webhook events not delivered: every attempt failed or was refused (undelivered), or the queue was full (queue_full).",
        )
        .sample(&[("reason", "undelivered")], webhook.failed)
        .sample(&[("reason", "queue_full")], webhook.dropped);

        if let Some(lease) = self.lease() {
            Family::new(
                &mut out,
                "leader",
                "gauge",
                "1 while this instance holds the HA lease, else 0.",
            )
            .sample(&[], u8::from(lease.role == LeaseRole::Holder));
            Family::new(
                &mut out,
                "lease_transitions_total",
                "counter",
                "Times this instance took or lost the HA lease.",
            )
            .sample(&[], lease.transitions);
        }

        Family::new(
            &mut out,
            "healthy",
            "gauge",
            "1 if the last sweep succeeded within two sweep intervals, else 0.",
        )
        .sample(&[], healthy);
        out
    }

    /// `/metrics`, `/livez` and `/healthz`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics_handler))
            .route("/livez", get(livez_handler))
            .route("/healthz", get(healthz_handler))
            .with_state(self.clone())
    }

    /// Serves [`Metrics::router`] on `listener` within the default
    /// [`Limits`] until `shutdown` is cancelled.
    pub async fn serve(&self, listener: tokio::net::TcpListener, shutdown: CancellationToken) {
        self.serve_with(listener, shutdown, Limits::default()).await
    }

    /// [`Metrics::serve`] with other limits (tests use small ones).
    pub async fn serve_with(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
        limits: Limits,
    ) {
        local_http::serve(listener, self.router(), shutdown, limits).await
    }
}

async fn metrics_handler(Extract(m): Extract<Metrics>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.render()).into_response()
}

async fn livez_handler(Extract(m): Extract<Metrics>) -> Response {
    match m.liveness() {
        Ok(()) => (StatusCode::OK, "alive\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn healthz_handler(Extract(m): Extract<Metrics>) -> Response {
    match m.health() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("ci-*"), "ci-*");
    }
}
