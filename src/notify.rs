//! Webhook alerts: a JSON POST when a rotation fails, when an expiring key could
//! not be rotated, when any other action fails, and for stale or suspended keys.
//!
//! The sweep must never wait on someone else's chat server, so
//! [`Notifier::notify`] only turns a [`SweepReport`] into [`Event`]s and puts them
//! on a bounded queue (a full queue drops the event and counts it); a background
//! task POSTs them one by one, retrying 5xx answers and transport errors with
//! exponential backoff, and logs what it finally could not deliver.
//!
//! Stale and suspended keys are reported by every sweep, so each key raises its
//! `stale_key` / `suspended_key` event at most once per 24 hours (measured on
//! the sweep's clock). Failures are not deduplicated: each is a fresh attempt
//! that failed.
//!
//! No secret ever leaves here: a payload is built only from ids, names, the event
//! kind, a time and an error detail (errors are cleaned of secrets where they
//! are made; the detail is cleaned once more of every secret the daemon holds,
//! then cut to [`MAX_DETAIL`] characters). The webhook URL itself often
//! holds a token, so it is never logged, put in an error or shown by `Debug`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::engine::model::DueReason;
use crate::engine::planner::{Action, ActionKind, Note};
use crate::engine::SweepReport;

/// The `source` field of every payload.
pub const SOURCE: &str = "masv-key-rotator";

/// Longest `detail` sent, in characters.
pub const MAX_DETAIL: usize = 500;

/// How long a stale or suspended key stays quiet after it was reported.
pub const DEDUP_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A rotation (new or resumed) failed; the old key stays current.
    RotationFailed,
    /// The current key is within `rotate_before_expiry` and its rotation failed.
    ExpiringNotRotated,
    /// A managed, active key unused for `unused_after`.
    StaleKey,
    /// MASV suspended a managed key.
    SuspendedKey,
    /// Any other action (deactivate, delete, cleanup, ...) failed.
    ActionFailed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RotationFailed => "rotation_failed",
            EventKind::ExpiringNotRotated => "expiring_not_rotated",
            EventKind::StaleKey => "stale_key",
            EventKind::SuspendedKey => "suspended_key",
            EventKind::ActionFailed => "action_failed",
        }
    }

    /// Whether every sweep would repeat it while nothing changes.
    fn is_standing(self) -> bool {
        matches!(self, EventKind::StaleKey | EventKind::SuspendedKey)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert. Only ids, names, a kind, a time and an error detail: nothing
/// here can hold a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub team_id: String,
    /// The lineage's key name.
    pub lineage: String,
    pub key_id: Option<String>,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// The JSON body of a POST.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    source: &'static str,
    event: EventKind,
    team_id: &'a str,
    lineage: &'a str,
    key_id: Option<&'a str>,
    detail: &'a str,
    at: String,
}

impl Event {
    /// The JSON document POSTed for this event.
    pub fn payload(&self) -> serde_json::Value {
        serde_json::to_value(Payload {
            source: SOURCE,
            event: self.kind,
            team_id: &self.team_id,
            lineage: &self.lineage,
            key_id: self.key_id.as_deref(),
            detail: &self.detail,
            at: self.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
        .expect("a payload of strings always serializes")
    }
}

fn cut(detail: &str) -> String {
    match detail.char_indices().nth(MAX_DETAIL) {
        Some((i, _)) => format!("{}…", &detail[..i]),
        None => detail.to_string(),
    }
}

/// The events a finished sweep calls for, in report order (pure: no dedup here).
pub fn events_for(report: &SweepReport) -> Vec<Event> {
    let at = report
        .finished_at
        .or(report.started_at)
        .unwrap_or_else(Utc::now);
    let event =
        |kind, lineage: &crate::engine::LineageId, key_id: Option<&str>, detail: &str| Event {
            kind,
            team_id: lineage.team_id.clone(),
            lineage: lineage.name.clone(),
            key_id: key_id.map(str::to_string),
            detail: cut(&crate::redact::scrub(detail)),
            at,
        };
    let mut events = Vec::new();
    for o in report.outcomes.iter().filter(|o| !o.ok) {
        let key_id = o.key_id.as_deref();
        match o.action {
            ActionKind::Rotate | ActionKind::Resume => {
                events.push(event(
                    EventKind::RotationFailed,
                    &o.lineage,
                    key_id,
                    &o.detail,
                ));
                let expiring = o.action == ActionKind::Rotate
                    && report.plans.iter().any(|p| {
                        p.lineage == o.lineage
                            && p.actions.iter().any(|a| {
                                matches!(
                                    a,
                                    Action::Rotate {
                                        reason: DueReason::Expiring,
                                        ..
                                    }
                                )
                            })
                    });
                if expiring {
                    events.push(event(
                        EventKind::ExpiringNotRotated,
                        &o.lineage,
                        key_id,
                        &format!(
                            "the current key is within rotate_before_expiry and could not be rotated: {}",
                            o.detail
                        ),
                    ));
                }
            }
            other => events.push(event(
                EventKind::ActionFailed,
                &o.lineage,
                key_id,
                &format!("{other}: {}", o.detail),
            )),
        }
    }
    for (lineage, note) in report.notes() {
        match note {
            Note::Stale { key_id } => events.push(event(
                EventKind::StaleKey,
                lineage,
                Some(key_id),
                "active but unused for unused_after",
            )),
            Note::Suspended { key_id } => events.push(event(
                EventKind::SuspendedKey,
                lineage,
                Some(key_id),
                "suspended by MASV; the daemon never toggles suspended keys",
            )),
            _ => {}
        }
    }
    events
}

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
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_secs(1),
            queue: 256,
        }
    }
}

/// Counters of what happened to events so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotifyStats {
    /// Put on the queue.
    pub queued: u64,
    /// Not queued: the queue was full (or closed).
    pub dropped: u64,
    /// Not queued: a stale/suspended key already reported within 24 hours.
    pub deduplicated: u64,
    /// POSTs made, retries included.
    pub attempts: u64,
    /// Events the webhook accepted (2xx).
    pub delivered: u64,
    /// Events given up on.
    pub failed: u64,
}

impl NotifyStats {
    /// Queued but neither delivered nor given up on yet.
    pub fn pending(&self) -> u64 {
        self.queued.saturating_sub(self.delivered + self.failed)
    }
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    dropped: AtomicU64,
    deduplicated: AtomicU64,
    attempts: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

type DedupKey = (EventKind, String, String);

/// Sends webhook alerts from a background task.
pub struct Notifier {
    tx: Option<mpsc::Sender<Event>>,
    counters: Arc<Counters>,
    /// Standing events already sent: (kind, team, key) -> when.
    sent: Mutex<HashMap<DedupKey, DateTime<Utc>>>,
    worker: Option<JoinHandle<()>>,
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

impl Notifier {
    /// A notifier with the default retries and queue. Call inside the runtime.
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
        let worker = runtime.spawn(deliver_all(rx, client, url, settings, counters.clone()));
        Ok(Notifier {
            tx: Some(tx),
            counters,
            sent: Mutex::new(HashMap::new()),
            worker: Some(worker),
        })
    }

    /// Queues the events `report` calls for and returns at once (never awaits the network).
    pub fn notify(&self, report: &SweepReport) {
        for event in events_for(report) {
            self.enqueue(event);
        }
    }

    /// Queues one event (subject to the 24-hour dedup of standing events).
    pub fn enqueue(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let key = (
            event.kind,
            event.team_id.clone(),
            event.key_id.clone().unwrap_or_default(),
        );
        if event.kind.is_standing() {
            sent.retain(|_, when| event.at - *when < DEDUP_WINDOW);
            if sent.contains_key(&key) {
                self.counters.deduplicated.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let (kind, at) = (event.kind, event.at);
        match tx.try_send(event) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                if kind.is_standing() {
                    sent.insert(key, at);
                }
            }
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(event = %kind, "notification queue full; event dropped");
            }
        }
    }

    pub fn stats(&self) -> NotifyStats {
        let c = &self.counters;
        NotifyStats {
            queued: c.queued.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            deduplicated: c.deduplicated.load(Ordering::Relaxed),
            attempts: c.attempts.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }

    /// Stops taking events, gives the queued ones up to `grace` to go out, then
    /// abandons the rest. Returns the final counters (`pending()` > 0: abandoned).
    pub async fn shutdown(mut self, grace: Duration) -> NotifyStats {
        self.tx.take();
        if let Some(mut worker) = self.worker.take() {
            if tokio::time::timeout(grace, &mut worker).await.is_err() {
                worker.abort();
                warn!(
                    undelivered = self.stats().pending(),
                    "notifications abandoned at shutdown"
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
        self.tx.take();
    }
}

async fn deliver_all(
    mut rx: mpsc::Receiver<Event>,
    client: reqwest::Client,
    url: reqwest::Url,
    settings: NotifySettings,
    counters: Arc<Counters>,
) {
    while let Some(event) = rx.recv().await {
        match deliver(&client, &url, &settings, &counters, &event).await {
            Ok(attempt) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                debug!(event = %event.kind, attempt, "notification delivered");
            }
            Err(why) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                warn!(
                    event = %event.kind,
                    team_id = %event.team_id,
                    lineage = %event.lineage,
                    error = %why,
                    "webhook notification not delivered"
                );
            }
        }
    }
}

/// POSTs one event; Ok(the attempt that worked) or the last reason it did not.
async fn deliver(
    client: &reqwest::Client,
    url: &reqwest::Url,
    settings: &NotifySettings,
    counters: &Counters,
    event: &Event,
) -> Result<u32, String> {
    let body = event.payload();
    let attempts = settings.attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            let factor = 2u32.saturating_pow(attempt - 2);
            tokio::time::sleep(settings.backoff.saturating_mul(factor)).await;
        }
        counters.attempts.fetch_add(1, Ordering::Relaxed);
        match client.post(url.clone()).json(&body).send().await {
            Ok(r) if r.status().is_success() => return Ok(attempt),
            Ok(r) if r.status().is_server_error() => {
                last = format!("HTTP {} after {attempt} attempt(s)", r.status().as_u16());
            }
            Ok(r) => {
                return Err(format!(
                    "HTTP {} (not retried: only 5xx and transport errors are)",
                    r.status().as_u16()
                ))
            }
            // without_url: the URL may carry a token.
            Err(e) => last = format!("{} after {attempt} attempt(s)", e.without_url()),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_details_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_DETAIL + 10);
        let cut = cut(&long);
        assert_eq!(cut.chars().count(), MAX_DETAIL + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(super::cut("short"), "short");
    }

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
