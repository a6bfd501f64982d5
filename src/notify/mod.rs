//! Webhook events: a signed JSON POST per event of a sweep (the contract's
//! `rotation.completed`, `rotation.failed`, `key.deactivated`, `key.deleted`,
//! `key.expiring`, `key.stale`) and, with `[ha]`, per change of the leader
//! lease (`lease.acquired`, `lease.lost`: [`lease_event`]).
//!
//! The sweep must never wait on someone else's server, so [`Notifier::notify`]
//! only turns a [`SweepReport`] into [`Event`]s ([`events_for`]: which events,
//! and why some alerts are not events), keeps those `[notify] events` allows,
//! and puts them on a bounded queue (a full queue drops the event and counts
//! it); a background task (`delivery`) POSTs them one by one with retries and
//! backoff, and logs and counts what it finally could not deliver. A webhook
//! that is down, slow or failing never fails or delays a sweep.
//!
//! Stale keys are reported by every sweep, so each raises `key.stale` at most
//! once per 24 hours (measured on the sweep's clock). Failures are not
//! deduplicated: each is a fresh attempt that failed.
//!
//! On exit (`once`, `rotate`, a stopping `run`) [`Notifier::shutdown`] gives
//! the queued events [`DRAIN_GRACE`] to go out, then abandons the rest, so a
//! dead webhook delays an exit by a bounded few seconds at most.
//!
//! No secret ever leaves here: a body holds only ids, names, the event name, a
//! time and a detail cleaned of every secret the daemon holds. The webhook URL
//! itself often holds a token, so it is never logged, put in an error or shown
//! by `Debug`; the signing secret is a [`secrecy::SecretString`] ([`Signer`]).

mod delivery;
mod event;
mod from_lease;
mod from_report;
mod signature;
mod stats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::engine::SweepReport;
use delivery::Webhook;
pub use event::{Event, EventFilter, EventKind};
pub use from_lease::lease_event;
pub use from_report::{events_for, MAX_DETAIL};
pub use signature::{Signer, HEADER as SIGNATURE_HEADER};
use stats::Counters;
pub use stats::{NotifyStats, StatsSource};

/// How long a stale key stays quiet after it was reported.
pub const DEDUP_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// How long `once`, `rotate` and a stopping `run` wait for pending deliveries.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Errors building a [`Notifier`]. They never include the webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notify.webhook_url: {reason}")]
    InvalidUrl { reason: String },
    #[error("notify: cannot build the HTTP client: {reason}")]
    Client { reason: String },
    #[error("notify: must be started inside the tokio runtime")]
    NoRuntime,
}

/// How deliveries behave.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Per POST.
    pub timeout: Duration,
    /// POSTs per event at most (5xx and transport errors are retried).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time after.
    pub backoff: Duration,
    /// Events waiting for delivery at most; more are dropped and counted.
    pub queue: usize,
    /// Which events are sent.
    pub events: EventFilter,
    /// Signs each POST (`[notify] webhook_secret_file`); None: unsigned.
    pub signer: Option<Signer>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_secs(1),
            queue: 256,
            events: EventFilter::all(),
            signer: None,
        }
    }
}

type DedupKey = (EventKind, String, String);

/// Sends webhook events from a background task.
pub struct Notifier {
    /// None once shut down.
    tx: Mutex<Option<mpsc::Sender<Event>>>,
    events: EventFilter,
    counters: Arc<Counters>,
    /// Standing events already sent: (kind, team, key) -> when.
    sent: Mutex<HashMap<DedupKey, DateTime<Utc>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL stays out: it often carries a token.
        f.debug_struct("Notifier")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn parse_url(raw: &str) -> Result<reqwest::Url, NotifyError> {
    let url = reqwest::Url::parse(raw).map_err(|e| NotifyError::InvalidUrl {
        reason: format!("not a URL ({e})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(NotifyError::InvalidUrl {
            reason: "must be an http or https URL".into(),
        });
    }
    if url.host().is_none() {
        return Err(NotifyError::InvalidUrl {
            reason: "has no host".into(),
        });
    }
    Ok(url)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Notifier {
    /// A notifier with the default retries, queue and filter, unsigned. Call
    /// inside the runtime.
    pub fn new(webhook_url: &str, timeout: Duration) -> Result<Self, NotifyError> {
        Self::with_settings(
            webhook_url,
            NotifySettings {
                timeout,
                ..NotifySettings::default()
            },
        )
    }

    pub fn with_settings(webhook_url: &str, settings: NotifySettings) -> Result<Self, NotifyError> {
        let url = parse_url(webhook_url)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NotifyError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("masv-key-rotator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Client {
                reason: e.without_url().to_string(),
            })?;
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let counters = Arc::new(Counters::default());
        let events = settings.events.clone();
        let webhook = Webhook {
            client,
            url,
            settings,
            counters: counters.clone(),
        };
        let worker = runtime.spawn(webhook.deliver_all(rx));
        Ok(Notifier {
            tx: Mutex::new(Some(tx)),
            events,
            counters,
            sent: Mutex::new(HashMap::new()),
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Queues the events `report` calls for and returns at once (never awaits the network).
    pub fn notify(&self, report: &SweepReport) {
        for event in events_for(report) {
            self.enqueue(event);
        }
    }

    /// Queues one event, unless the filter leaves it out or it is a standing
    /// event already told within [`DEDUP_WINDOW`].
    pub fn enqueue(&self, event: Event) {
        if !self.events.allows(event.kind) {
            Counters::bump(&self.counters.filtered);
            return;
        }
        let tx = lock(&self.tx);
        let Some(tx) = tx.as_ref() else { return };
        let mut sent = lock(&self.sent);
        let key = (
            event.kind,
            event.team_id.clone().unwrap_or_default(),
            event.key_id.clone().unwrap_or_default(),
        );
        if event.kind.is_standing() {
            sent.retain(|_, when| event.at - *when < DEDUP_WINDOW);
            if sent.contains_key(&key) {
                Counters::bump(&self.counters.deduplicated);
                return;
            }
        }
        let (kind, at) = (event.kind, event.at);
        match tx.try_send(event) {
            Ok(()) => {
                Counters::bump(&self.counters.queued);
                if kind.is_standing() {
                    sent.insert(key, at);
                }
            }
            Err(_) => {
                Counters::bump(&self.counters.dropped);
                warn!(event = %kind, "webhook queue full; event dropped");
            }
        }
    }

    pub fn stats(&self) -> NotifyStats {
        self.stats_source().snapshot()
    }

    /// A handle on the counters, for `/metrics`.
    pub fn stats_source(&self) -> StatsSource {
        StatsSource(self.counters.clone())
    }

    /// Stops taking events, gives the queued ones up to `grace` to go out, then
    /// abandons the rest. Returns the final counters (`pending()` > 0: abandoned).
    pub async fn shutdown(&self, grace: Duration) -> NotifyStats {
        lock(&self.tx).take();
        let worker = lock(&self.worker).take();
        if let Some(mut worker) = worker {
            if tokio::time::timeout(grace, &mut worker).await.is_err() {
                worker.abort();
                warn!(
                    undelivered = self.stats().pending(),
                    "webhook events abandoned at exit"
                );
            }
        }
        self.stats()
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // Closing the queue lets the worker finish what is queued and end on its
        // own; nothing here waits.
        lock(&self.tx).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_echoing_them() {
        for bad in ["not a url", "ftp://hooks.example.com/T0KEN", "unix:/T0KEN"] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.starts_with("notify.webhook_url"), "{e}");
            assert!(!e.contains("T0KEN"), "{e}");
        }
        assert!(parse_url("https://hooks.example.com/x").is_ok());
    }
}
