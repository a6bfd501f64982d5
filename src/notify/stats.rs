//! What happened to events so far: counters the queue and the delivery task
//! bump, read by tests, by shutdown and by `/metrics`
//! (`webhook_deliveries_total`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A snapshot of the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotifyStats {
    /// Put on the queue.
    pub queued: u64,
    /// Not queued: the queue was full (or closed).
    pub dropped: u64,
    /// Not queued: a stale key already told within 24 hours.
    pub deduplicated: u64,
    /// Not queued: `[notify] events` leaves them out.
    pub filtered: u64,
    /// POSTs made, retries included.
    pub attempts: u64,
    /// Events the webhook accepted (2xx).
    pub delivered: u64,
    /// Events given up on (every attempt failed, or a 4xx).
    pub failed: u64,
}

impl NotifyStats {
    /// Queued but neither delivered nor given up on yet.
    pub fn pending(&self) -> u64 {
        self.queued.saturating_sub(self.delivered + self.failed)
    }
}

#[derive(Default)]
pub(super) struct Counters {
    pub queued: AtomicU64,
    pub dropped: AtomicU64,
    pub deduplicated: AtomicU64,
    pub filtered: AtomicU64,
    pub attempts: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A handle on a notifier's counters (for `/metrics`): cheap to clone, and
/// holds neither the queue nor the URL.
#[derive(Clone)]
pub struct StatsSource(pub(super) Arc<Counters>);

impl std::fmt::Debug for StatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsSource")
            .field(&self.snapshot())
            .finish()
    }
}

impl StatsSource {
    pub fn snapshot(&self) -> NotifyStats {
        let c = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NotifyStats {
            queued: load(&c.queued),
            dropped: load(&c.dropped),
            deduplicated: load(&c.deduplicated),
            filtered: load(&c.filtered),
            attempts: load(&c.attempts),
            delivered: load(&c.delivered),
            failed: load(&c.failed),
        }
    }
}
