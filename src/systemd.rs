//! systemd integration: `READY=1`, `WATCHDOG=1`, `STATUS=` over `$NOTIFY_SOCKET`.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op. The watchdog is
//! fed from the sweep loop itself and between sweep steps, so a hung loop stops
//! the pings and systemd restarts the service.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::debug;

/// A handle for notifying systemd; clones share the rate limiter.
#[derive(Clone, Debug)]
pub struct SystemdNotifier {
    watchdog: Option<Duration>,
    started: Instant,
    last_ping_ms: Arc<AtomicU64>,
}

impl SystemdNotifier {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`, which must be us if set).
    pub fn from_env() -> Self {
        let usec = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        SystemdNotifier {
            watchdog: usec.filter(|u| *u > 0 && pid_ok).map(Duration::from_micros),
            started: Instant::now(),
            last_ping_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn send(&self, state: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(false, state) {
            debug!(error = %e, "sd_notify failed");
        }
    }

    pub fn ready(&self) {
        self.send(&[NotifyState::Ready]);
    }

    pub fn reloading(&self) {
        self.send(&[NotifyState::Reloading]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    pub fn status(&self, text: &str) {
        self.send(&[NotifyState::Status(text)]);
    }

    /// How often to ping: half the watchdog timeout (None: no watchdog).
    /// `WATCHDOG_USEC`, if systemd set a watchdog for us.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn ping_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// `WATCHDOG=1`, at most once a second (it is called between sweep steps).
    pub fn watchdog(&self) {
        if self.watchdog.is_none() {
            return;
        }
        let now_ms = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last_ping_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < 1000 {
            return;
        }
        self.last_ping_ms.store(now_ms, Ordering::Relaxed);
        self.send(&[NotifyState::Watchdog]);
    }
}
