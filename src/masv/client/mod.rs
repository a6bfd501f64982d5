//! The MASV HTTP client.
//!
//! * Logs in on demand (`POST /auth`) and keeps the user token as a secret; on a
//!   401 it logs in again once and retries once. Concurrent callers that hit the
//!   same expired token share one re-login (a generation counter).
//! * At most `max_concurrency` requests are in flight (a semaphore; its permit is
//!   released while backing off).
//! * Idempotent calls (GET, PUT, DELETE) are retried on transport errors, time-outs,
//!   5xx and 429, with exponential backoff and full jitter, honouring `Retry-After`.
//! * `POST …/api_keys` is never retried once the request may have reached MASV:
//!   a time-out, reset or 5xx comes back as [`MasvError::OutcomeUnknown`] so the
//!   engine can look for the key by its marker. Only a connection that was never
//!   made, a 401 (re-login) and a 429 (nothing happened) are retried.
//!
//! MASV's answers are untrusted input:
//! * every body is read in chunks and refused once it passes a limit that fits
//!   the endpoint ([`LIST_BODY_LIMIT`] for a key list, [`BODY_LIMIT`] otherwise),
//!   so a huge or endless answer costs at most that much memory;
//! * each call, retries and waits included, ends within the retry policy's
//!   deadline;
//! * ids go into a URL only once they have the shape of a MASV id (a ULID), and
//!   every path segment is percent-encoded;
//! * error answers to the login and to the key check are never quoted (they
//!   could echo the password or the key); other quotes are cleaned of every
//!   secret the daemon holds ([`crate::redact`]) and of control characters.
//!
//! The parts: this module (settings, the shared state, URLs), `login` (the
//! user token), `exchange` (one HTTP exchange, bounded), `calls` (the retry
//! loops), `keys` (the key calls), `stats` (the counters).

mod calls;
mod exchange;
mod keys;
mod login;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{Mutex, Semaphore};

pub use super::answers::{BODY_LIMIT, LIST_BODY_LIMIT};
use super::error::MasvError;
pub use super::retry::RetryPolicy;
use crate::config::MasvConfig;
use crate::redact;
use crate::traffic::Traffic;
pub use login::LoginInfo;
use login::Session;
pub use stats::ClientStats;
use stats::Counters;

/// Everything the client needs.
#[derive(Debug, Clone)]
pub struct MasvSettings {
    pub base_url: String,
    pub email: String,
    pub password: SecretString,
    pub timeout: Duration,
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
}

impl MasvSettings {
    pub fn from_config(cfg: &MasvConfig, password: SecretString) -> Self {
        MasvSettings {
            base_url: cfg.base_url.clone(),
            email: cfg.email.clone(),
            password,
            timeout: cfg.timeout,
            max_concurrency: cfg.max_concurrency,
            retry: RetryPolicy::default(),
        }
    }
}

/// What every clone of a [`MasvClient`] shares.
struct Inner {
    http: reqwest::Client,
    base: reqwest::Url,
    email: String,
    password: SecretString,
    retry: RetryPolicy,
    permits: Semaphore,
    session: Mutex<Session>,
    counters: Counters,
    traffic: Traffic,
}

/// The MASV client; clones share the session, the semaphore and the counters.
#[derive(Clone)]
pub struct MasvClient {
    inner: Arc<Inner>,
}

/// How long an idle connection to MASV stays open (daemon::SETTLE_AFTER_SWEEP
/// waits for this).
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

impl MasvClient {
    pub fn new(settings: MasvSettings) -> Result<Self, MasvError> {
        Self::counted(settings, Traffic::default())
    }

    /// As [`MasvClient::new`], counting every request into `traffic`.
    pub fn counted(settings: MasvSettings, traffic: Traffic) -> Result<Self, MasvError> {
        let raw = settings.base_url.trim_end_matches('/');
        let base = reqwest::Url::parse(raw).map_err(|e| MasvError::Config {
            reason: format!("base URL {raw:?}: {e}"),
        })?;
        if base.cannot_be_a_base() {
            return Err(MasvError::Config {
                reason: format!("base URL {raw:?} cannot hold a path"),
            });
        }
        redact::remember("masv.password", &settings.password);
        let attempt_timeout = settings.timeout.min(settings.retry.deadline);
        let http = reqwest::Client::builder()
            .timeout(attempt_timeout)
            .connect_timeout(attempt_timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(settings.max_concurrency)
            // Between hourly sweeps an idle connection only holds buffers.
            .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
            .user_agent(concat!("masv-key-rotator/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry X-User-Token / X-API-KEY to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| MasvError::Config {
                reason: e.to_string(),
            })?;
        Ok(MasvClient {
            inner: Arc::new(Inner {
                http,
                base,
                email: settings.email,
                password: settings.password,
                retry: settings.retry,
                permits: Semaphore::new(settings.max_concurrency.max(1)),
                session: Mutex::new(Session::default()),
                counters: Counters::default(),
                traffic,
            }),
        })
    }

    /// The URL of `segments` below the base URL, each percent-encoded.
    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("checked in new(): the base URL can hold a path")
            .pop_if_empty()
            .extend(segments);
        url
    }
}
