//! The series a finished sweep sets: counters that add up over the process's
//! life, and gauges that describe the last sweep only (each key's expiry, last
//! use and role, each lineage's next rotation, and counts).
//!
//! Choices the report forces:
//! - A key's role is the one the sweep left it in: the key a rotation replaced
//!   is `retiring` at once, and the new key has its series from the next
//!   sweep, which lists it.
//! - A lineage rotated in this sweep has no `next_rotation_timestamp_seconds`
//!   until the next sweep plans its new key (the old key's due date would read
//!   as overdue).
//! - A key that never expires has no `key_expiry_timestamp_seconds`; a key
//!   never used has no `key_last_request_timestamp_seconds`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::planner::{KeyRole, NextStep, Note};
use crate::engine::{SweepReport, SweepTotals};

const ROLES: [KeyRole; 5] = [
    KeyRole::Current,
    KeyRole::Retiring,
    KeyRole::Incoming,
    KeyRole::Orphan,
    KeyRole::Other,
];

/// Seconds; a rotation is a handful of calls, slower ones wait on retries.
const ROTATION_BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    team_id: String,
    key_name: String,
    key_id: String,
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LineageLabels {
    team_id: String,
    key_name: String,
}

type Seconds = Gauge<f64, AtomicU64>;

fn result(ok: bool) -> Outcome {
    Outcome {
        result: if ok { "ok" } else { "failed" },
    }
}

/// Declares the sweep's series once each, with their names and help: the
/// struct holding them and its constructor, which registers them all.
macro_rules! sweep_families {
    ($($field:ident: $kind:ty $(= $init:expr)? => $name:literal, $help:literal;)*) => {
        /// The sweep's series; clones of what the registry holds.
        #[derive(Debug)]
        pub(super) struct SweepFamilies {
            $($field: $kind,)*
        }

        impl SweepFamilies {
            fn registered(registry: &mut Registry) -> Self {
                let f = SweepFamilies {
                    $($field: sweep_families!(@init $kind $(, $init)?),)*
                };
                $(registry.register($name, $help, f.$field.clone());)*
                f
            }
        }
    };
    (@init $kind:ty) => { <$kind>::default() };
    (@init $kind:ty, $init:expr) => { $init };
}

sweep_families! {
    sweeps: Family<Outcome, Counter> => "sweeps",
        "Sweeps finished, by result (failed: an action failed, an error, or MASV or Vault unreachable)";
    sweep_duration: Seconds => "sweep_duration_seconds", "How long the last sweep took";
    sweep_interval: Seconds => "sweep_interval_seconds",
        "The schedule's period; the last success should never be more than two of them old";
    last_success: Gauge => "last_success_timestamp_seconds",
        "Unix time the last successful sweep finished (0: none yet)";
    rotations: Family<Outcome, Counter> => "rotations", "Rotations started or resumed, by result";
    rotation_duration: Histogram = Histogram::new(ROTATION_BUCKETS) => "rotation_duration_seconds",
        "How long each rotation took, from creating the key to storing and checking it";
    actions: Family<ActionLabels, Counter> => "actions", "Actions carried out, by kind and result";
    keys: Family<RoleLabel, Gauge> => "keys", "Managed keys in the last sweep, by role in their lineage";
    key_expiry: Family<KeyLabels, Gauge> => "key_expiry_timestamp_seconds",
        "Unix time each managed key expires, as the last sweep listed it (no series: it never expires)";
    key_last_request: Family<KeyLabels, Gauge> => "key_last_request_timestamp_seconds",
        "Unix time each managed key was last used, as the last sweep listed it (no series: never used)";
    next_rotation: Family<LineageLabels, Gauge> => "next_rotation_timestamp_seconds",
        "Unix time the lineage's current key falls due for rotation (in the past: overdue)";
    stale_keys: Gauge => "stale_keys", "Active keys unused for unused_after, in the last sweep";
    suspended_keys: Gauge => "suspended_keys", "Managed keys MASV has suspended, in the last sweep";
    lineages: Gauge => "lineages", "Lineages planned in the last sweep";
    managed_keys: Gauge => "managed_keys", "Keys matching a team's patterns in the last sweep";
    unmanaged_keys: Gauge => "unmanaged_keys", "Keys listed but matching no pattern in the last sweep";
    unmanageable_keys: Gauge => "unmanageable_keys",
        "Keys matching a pattern that cannot be managed (name or description unfit), left alone";
}

impl SweepFamilies {
    /// Registers every series in `registry`, those with fixed labels at 0.
    pub(super) fn register(registry: &mut Registry, sweep_interval: Duration) -> Self {
        let f = Self::registered(registry);
        f.sweep_interval.set(sweep_interval.as_secs_f64());
        for ok in [true, false] {
            f.sweeps.get_or_create(&result(ok)).inc_by(0);
            f.rotations.get_or_create(&result(ok)).inc_by(0);
        }
        for role in ROLES {
            f.keys
                .get_or_create(&RoleLabel {
                    role: role.as_str(),
                })
                .set(0);
        }
        f
    }

    /// Takes in one team's part of the sweep in progress: its counters at
    /// once, its gauges into `next`, set whole by [`SweepFamilies::close`].
    pub(super) fn record_team(&self, team: &SweepReport, next: &mut Described) {
        for o in &team.outcomes {
            let outcome = result(o.ok);
            let action = o.action.as_str();
            self.actions
                .get_or_create(&ActionLabels {
                    action,
                    result: outcome.result,
                })
                .inc();
            if o.action.is_rotation() {
                self.rotations.get_or_create(&outcome).inc();
                self.rotation_duration.observe(o.took.as_secs_f64());
            }
        }
        next.describe_keys(team);
        let notes = |want: fn(&Note) -> Option<&str>| {
            team.notes()
                .filter_map(|(_, n)| want(n))
                .collect::<BTreeSet<_>>()
                .len() as i64
        };
        next.stale_keys += notes(|n| match n {
            Note::Stale { key_id } => Some(key_id),
            _ => None,
        });
        next.suspended_keys += notes(|n| match n {
            Note::Suspended { key_id } => Some(key_id),
            _ => None,
        });
    }

    /// Ends a sweep: `succeeded` as the health check judges it, and the gauges
    /// its teams described replace the last sweep's.
    pub(super) fn close(
        &self,
        totals: &SweepTotals,
        succeeded: bool,
        finished_at: DateTime<Utc>,
        described: Described,
    ) {
        self.sweeps.get_or_create(&result(succeeded)).inc();
        if succeeded {
            self.last_success.set(finished_at.timestamp());
        }
        let took = match (totals.started_at, totals.finished_at) {
            (Some(s), Some(f)) if f >= s => (f - s).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        };
        self.sweep_duration.set(took);
        self.key_expiry.clear();
        self.key_last_request.clear();
        self.next_rotation.clear();
        for (labels, expiry, last_request) in described.keys {
            if let Some(at) = expiry {
                self.key_expiry.get_or_create(&labels).set(at);
            }
            if let Some(at) = last_request {
                self.key_last_request.get_or_create(&labels).set(at);
            }
        }
        for (lineage, at) in described.next_rotation {
            self.next_rotation.get_or_create(&lineage).set(at);
        }
        for role in ROLES {
            let role = role.as_str();
            self.keys
                .get_or_create(&RoleLabel { role })
                .set(described.roles.get(role).copied().unwrap_or(0));
        }
        self.stale_keys.set(described.stale_keys);
        self.suspended_keys.set(described.suspended_keys);
        self.lineages.set(totals.scope.lineages as i64);
        self.managed_keys.set(totals.scope.managed_keys as i64);
        self.unmanaged_keys.set(totals.scope.unmanaged_keys as i64);
        self.unmanageable_keys.set(totals.unmanageable_keys as i64);
    }
}

/// The gauges of the sweep in progress, as its teams finish: each key's
/// expiry and last use, each lineage's next rotation, and counts.
#[derive(Debug, Default)]
pub(super) struct Described {
    /// A key's labels, expiry and last request (Unix seconds).
    keys: Vec<(KeyLabels, Option<i64>, Option<i64>)>,
    next_rotation: Vec<(LineageLabels, i64)>,
    roles: HashMap<&'static str, i64>,
    stale_keys: i64,
    suspended_keys: i64,
}

impl Described {
    /// The per-key and per-lineage gauges of one team's report.
    fn describe_keys(&mut self, report: &SweepReport) {
        // Lineages rotated in this sweep, and the key each rotation replaced
        // (which now retires).
        let rotated: HashMap<(&str, &str), Option<&str>> = report
            .outcomes
            .iter()
            .filter(|o| o.ok && o.action.is_rotation())
            .map(|o| {
                let lineage = (o.lineage.team_id.as_str(), o.lineage.name.as_str());
                let replaced = o
                    .rotated
                    .as_ref()
                    .and_then(|r| r.previous_key_id.as_deref());
                (lineage, replaced)
            })
            .collect();
        for plan in &report.plans {
            let l = &plan.lineage;
            let rotated = rotated.get(&(l.team_id.as_str(), l.name.as_str()));
            for look in &plan.keys {
                let role = match rotated {
                    Some(Some(old)) if *old == look.key_id => KeyRole::Retiring,
                    _ => look.role,
                };
                *self.roles.entry(role.as_str()).or_default() += 1;
                let labels = KeyLabels {
                    team_id: l.team_id.clone(),
                    key_name: l.name.clone(),
                    key_id: look.key_id.clone(),
                    role: role.as_str(),
                };
                let expiry = look.expiry.map(|at| at.timestamp());
                let last_request = look.last_request_at.map(|at| at.timestamp());
                if expiry.is_some() || last_request.is_some() {
                    self.keys.push((labels, expiry, last_request));
                }
                let due = (rotated.is_none()
                    && role == KeyRole::Current
                    && look.next == NextStep::Rotate)
                    .then_some(look.next_at)
                    .flatten();
                if let Some(at) = due {
                    let lineage = LineageLabels {
                        team_id: l.team_id.clone(),
                        key_name: l.name.clone(),
                    };
                    self.next_rotation.push((lineage, at.timestamp()));
                }
            }
        }
    }
}
