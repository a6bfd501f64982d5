//! The client's counters (requests sent, retries, logins), read by the
//! benchmarks and the metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use super::MasvClient;

/// Counters, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub requests: u64,
    pub retries: u64,
    pub logins: u64,
}

/// The live counters behind [`ClientStats`], shared by every clone.
#[derive(Default)]
pub(super) struct Counters {
    /// HTTP exchanges started.
    pub(super) requests: AtomicU64,
    /// Waits before another attempt.
    pub(super) retries: AtomicU64,
    /// Login attempts.
    pub(super) logins: AtomicU64,
}

impl MasvClient {
    /// The counters so far.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            requests: self.inner.counters.requests.load(Ordering::Relaxed),
            retries: self.inner.counters.retries.load(Ordering::Relaxed),
            logins: self.inner.counters.logins.load(Ordering::Relaxed),
        }
    }
}
