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
//! The series live in a `prometheus-client` registry: what a sweep sets
//! ([`families`]), the request counters the adapters keep ([`Traffic`]), and
//! what is read at scrape time ([`vitals`]). The sweep loop hands each team's
//! [`SweepReport`] to [`Metrics::record_team`] as the team finishes and the
//! sweep's totals to [`Metrics::close_sweep`]; the HTTP side only encodes
//! what is kept here, so a scrape never touches MASV, Vault or the database
//! and cannot slow a sweep down. Only ids, names, codes and counts are kept (a
//! report carries no secret, and nothing here adds one). The listener itself
//! is bounded (connections, timeouts): see [`crate::local_http`].

mod families;
mod vitals;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State as Extract;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::engine::{SweepReport, SweepTotals};
use crate::exit::Exit;
use crate::lease::LeaseStatus;
use crate::local_http::{self, Limits};
use crate::notify::StatsSource;
use crate::traffic::Traffic;
use families::{Described, SweepFamilies};
use vitals::{locked, LastSweep, Vitals};

/// Every series name starts with this.
pub const PREFIX: &str = "masv_key_rotator_";

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// How long the sweep loop may go without a sign of life before `/livez`
/// fails, when systemd sets no watchdog: the unit's `WatchdogSec=`.
pub const DEFAULT_LIVE_WINDOW: Duration = Duration::from_secs(120);

/// What the daemon exposes; cheap to clone (one shared state).
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    sweeps: SweepFamilies,
    vitals: Arc<Vitals>,
    traffic: Traffic,
    /// Held while a sweep's gauges are replaced and while a scrape encodes,
    /// so a scrape never sees half of one sweep and half of the next.
    update: Mutex<()>,
    /// The gauges of the sweep in progress, set whole when it ends.
    described: Mutex<Described>,
}

/// Why a sweep does not count as a successful one (None: it does).
fn failure_of(totals: &SweepTotals) -> Option<String> {
    match totals.exit() {
        Exit::Success => None,
        Exit::Unreachable => Some("last sweep could not reach MASV or Vault".into()),
        _ => Some(format!(
            "last sweep failed: {} action(s) failed, {} error(s)",
            totals.failed, totals.errors
        )),
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
        let mut registry = Registry::with_prefix(PREFIX.trim_end_matches('_'));
        registry.register(
            "build",
            "The running build: its version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let sweeps = SweepFamilies::register(&mut registry, sweep_interval);
        let traffic = Traffic::default();
        traffic.register(&mut registry);
        let vitals = Arc::new(Vitals::new(sweep_interval, live_window, clock));
        registry.register_collector(Box::new(vitals.clone()));
        Metrics {
            inner: Arc::new(Inner {
                registry,
                sweeps,
                vitals,
                traffic,
                update: Mutex::new(()),
                described: Mutex::default(),
            }),
        }
    }

    /// The request counters to hand to the adapters (`masv_requests_total`,
    /// `vault_requests_total`).
    pub fn traffic(&self) -> Traffic {
        self.inner.traffic.clone()
    }

    /// Exposes the webhook's deliveries (`webhook_deliveries_total`); without
    /// a webhook every result stays 0.
    pub fn count_webhook(&self, source: StatsSource) {
        *locked(&self.inner.vitals.webhook) = Some(source);
    }

    /// Exposes the HA lease (`leader`, `lease_*`); a standby is healthy
    /// without sweeping.
    pub fn follow_lease(&self, status: watch::Receiver<LeaseStatus>, ttl: Duration) {
        self.inner.vitals.follow_lease(status, ttl);
    }

    /// Takes in one team's part of the sweep in progress (call it from the
    /// sweep loop's `on_team`): its counters at once, its gauges at
    /// [`Metrics::close_sweep`].
    pub fn record_team(&self, team: &SweepReport) {
        self.inner
            .sweeps
            .record_team(team, &mut locked(&self.inner.described));
    }

    /// Ends the sweep in progress (call it from the sweep loop's `on_sweep`):
    /// the gauges its teams described replace the last sweep's. A sweep that
    /// ended early (`None`) sets no gauge and counts as no sweep.
    pub fn close_sweep(&self, totals: Option<&SweepTotals>) {
        let described = std::mem::take(&mut *locked(&self.inner.described));
        let Some(totals) = totals else { return };
        let vitals = &self.inner.vitals;
        let finished_at = totals
            .finished_at
            .or(totals.started_at)
            .unwrap_or_else(|| vitals.clock.now());
        let failure = failure_of(totals);
        let _update = locked(&self.inner.update);
        self.inner
            .sweeps
            .close(totals, failure.is_none(), finished_at, described);
        *locked(&vitals.last_sweep) = Some(LastSweep {
            finished_at,
            failure,
        });
    }

    /// Takes in a whole sweep at once (its report holds every team).
    pub fn record_sweep(&self, report: &SweepReport) {
        self.record_team(report);
        self.close_sweep(Some(&report.totals()));
    }

    /// A sign of life from the sweep loop (idle ticks, between sweep steps).
    pub fn beat(&self) {
        *locked(&self.inner.vitals.last_beat) = self.inner.vitals.clock.now();
    }

    /// Ok while the sweep loop has beaten within the live window; else why not.
    pub fn liveness(&self) -> Result<(), String> {
        self.inner.vitals.liveness()
    }

    /// Ok if the last sweep succeeded within two sweep intervals of now (or,
    /// with `[ha]`, this instance is a standby that has read the lease); else
    /// why not.
    pub fn health(&self) -> Result<(), String> {
        self.inner.vitals.health()
    }

    pub fn healthy(&self) -> bool {
        self.health().is_ok()
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        let _update = locked(&self.inner.update);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
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
