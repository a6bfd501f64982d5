//! What `/livez` and `/healthz` judge, and the series read at scrape time
//! rather than set by a sweep: `healthy` (it ages with the clock), the
//! webhook's deliveries and, with `[ha]`, the lease.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::lease::{LeaseRole, LeaseStatus};
use crate::notify::StatsSource;

/// How the last sweep went.
pub(super) struct LastSweep {
    pub(super) finished_at: DateTime<Utc>,
    /// None: the sweep succeeded; Some: why it did not.
    pub(super) failure: Option<String>,
}

/// The daemon's vital signs, shared by the probes and the registry.
pub(super) struct Vitals {
    pub(super) sweep_interval: Duration,
    /// `/livez` fails once the loop has not beaten for this long.
    pub(super) live_window: Duration,
    pub(super) clock: SharedClock,
    /// When the sweep loop last showed a sign of life.
    pub(super) last_beat: Mutex<DateTime<Utc>>,
    pub(super) last_sweep: Mutex<Option<LastSweep>>,
    /// The webhook's delivery counters (None: no `[notify]`).
    pub(super) webhook: Mutex<Option<StatsSource>>,
    /// The HA lease as the keeper tells it, and its ttl (None: no `[ha]`).
    lease: Mutex<Option<(watch::Receiver<LeaseStatus>, Duration)>>,
}

impl std::fmt::Debug for Vitals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vitals")
            .field("sweep_interval", &self.sweep_interval)
            .finish_non_exhaustive()
    }
}

/// A poisoned lock still holds plain values: use them.
pub(super) fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Vitals {
    pub(super) fn new(sweep_interval: Duration, live_window: Duration, clock: SharedClock) -> Self {
        Vitals {
            sweep_interval,
            live_window,
            last_beat: Mutex::new(clock.now()),
            clock,
            last_sweep: Mutex::new(None),
            webhook: Mutex::new(None),
            lease: Mutex::new(None),
        }
    }

    pub(super) fn follow_lease(&self, status: watch::Receiver<LeaseStatus>, ttl: Duration) {
        *locked(&self.lease) = Some((status, ttl));
    }

    fn lease(&self) -> Option<(LeaseStatus, Duration)> {
        let lease = locked(&self.lease);
        lease.as_ref().map(|(s, ttl)| (s.borrow().clone(), *ttl))
    }

    /// Ok while the sweep loop has beaten within the live window; else why not.
    pub(super) fn liveness(&self) -> Result<(), String> {
        let quiet = self.clock.now() - *locked(&self.last_beat);
        let limit = chrono::Duration::from_std(self.live_window).unwrap_or(chrono::Duration::MAX);
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
    pub(super) fn health(&self) -> Result<(), String> {
        match self.lease().map(|(l, _)| l.role) {
            Some(LeaseRole::Standby) => return Ok(()),
            Some(LeaseRole::Starting) => {
                return Err("the HA lease has not been read yet (Vault not reached)".into())
            }
            Some(LeaseRole::Holder) | None => {}
        }
        let last = locked(&self.last_sweep);
        let Some(last) = last.as_ref() else {
            return Err("no sweep yet".into());
        };
        if let Some(why) = &last.failure {
            return Err(why.clone());
        }
        let age = self.clock.now() - last.finished_at;
        let limit =
            chrono::Duration::from_std(self.sweep_interval * 2).unwrap_or(chrono::Duration::MAX);
        if age > limit {
            return Err(format!(
                "last sweep finished {}s ago, more than two sweep intervals ({}s)",
                age.num_seconds(),
                limit.num_seconds()
            ));
        }
        Ok(())
    }
}

/// One series without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> std::fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Vitals {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let healthy = ConstGauge::new(i64::from(self.health().is_ok()));
        single(
            &mut encoder,
            "healthy",
            "1 if /healthz would answer 200, else 0.",
            healthy,
        )?;
        let webhook = locked(&self.webhook)
            .as_ref()
            .map(StatsSource::snapshot)
            .unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "webhook_deliveries",
            "Webhook events by result: delivered (2xx), undelivered (every attempt failed or was refused), queue_full (dropped).",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in [
            ("delivered", webhook.delivered),
            ("undelivered", webhook.failed),
            ("queue_full", webhook.dropped),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
        }
        let Some((lease, ttl)) = self.lease() else {
            return Ok(());
        };
        let leader = ConstGauge::new(i64::from(lease.role == LeaseRole::Holder));
        let help = "1 while this instance holds the HA lease, else 0.";
        single(&mut encoder, "leader", help, leader)?;
        let help = "Times this instance took or lost the HA lease.";
        single(
            &mut encoder,
            "lease_transitions",
            help,
            ConstCounter::new(lease.transitions),
        )?;
        let expiry = ConstGauge::new(lease.expires_at.map_or(0, |t| t.timestamp()));
        let help = "Unix time the HA lease runs out, as last read or renewed (0: not known).";
        single(&mut encoder, "lease_expiry_timestamp_seconds", help, expiry)?;
        let help = "The HA lease's time to live (lease_ttl).";
        single(
            &mut encoder,
            "lease_ttl_seconds",
            help,
            ConstGauge::new(ttl.as_secs_f64()),
        )
    }
}
