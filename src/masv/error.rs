//! Errors of the MASV client. Each names the call it came from; none carries a
//! token, password or key value: answers to the login and the key check are
//! never quoted, and other quotes are cleaned of every secret the daemon holds
//! and of control characters, and cut to 200 characters.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MasvError {
    /// The request never reached MASV (connection refused, DNS, TLS handshake).
    #[error("{call}: MASV unreachable: {reason}")]
    Unreachable { call: String, reason: String },
    /// No answer within the timeout (idempotent calls only; see `OutcomeUnknown`).
    #[error("{call}: timed out")]
    Timeout { call: String },
    /// MASV rejected the login (wrong email or password, or no access).
    #[error("MASV rejected the login (HTTP {status}): check the email and password")]
    LoginRejected { status: u16 },
    /// Still 401 after a fresh login.
    #[error("{call}: unauthorized even after a fresh login")]
    Unauthorized { call: String },
    #[error("{call}: forbidden (the user's role may not do this)")]
    Forbidden { call: String },
    #[error("{call}: not found")]
    NotFound { call: String },
    #[error("{call}: conflict: {message}")]
    Conflict { call: String, message: String },
    #[error("{call}: rate limited (HTTP 429) after retries")]
    RateLimited {
        call: String,
        retry_after: Option<Duration>,
    },
    #[error("{call}: MASV server error (HTTP {status}) after retries")]
    Server { call: String, status: u16 },
    #[error("{call}: HTTP {status}: {message}")]
    Status {
        call: String,
        status: u16,
        message: String,
    },
    /// A create whose request may have reached MASV but whose response was lost.
    #[error("{call}: outcome unknown ({reason}): the key may or may not exist")]
    OutcomeUnknown { call: String, reason: String },
    /// The answer passed its size limit and was not read further.
    #[error("{call}: answer larger than {limit} bytes, refused")]
    TooLarge { call: String, limit: usize },
    #[error("{call}: malformed response: {reason}")]
    Malformed { call: String, reason: String },
    /// The `X-API-KEY` check was refused: the key does not work.
    #[error("MASV refused the API key (HTTP {status})")]
    KeyRejected { status: u16 },
    #[error("invalid MASV client settings: {reason}")]
    Config { reason: String },
}

impl MasvError {
    /// MASV could not be reached or kept failing: exit code 3 territory.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            MasvError::Unreachable { .. } | MasvError::Timeout { .. } | MasvError::Server { .. }
        )
    }

    /// Worth trying again on a later sweep.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MasvError::Unreachable { .. }
                | MasvError::Timeout { .. }
                | MasvError::Server { .. }
                | MasvError::RateLimited { .. }
                | MasvError::OutcomeUnknown { .. }
        )
    }
}
