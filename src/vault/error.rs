//! Errors of the Vault adapter, told apart the way the engine needs them:
//! unreachable or sealed (try later, exit 3), permission denied (configuration),
//! a check-and-set conflict (someone else wrote), not found. No message ever
//! carries a token or a secret value: vaultrs' errors are mapped here, their
//! text cleaned of every secret the daemon holds.

use std::fmt;

use vaultrs::error::ClientError;

use crate::error_chain::describe;
use crate::redact;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("Vault at {address} unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("Vault at {address} is sealed")]
    Sealed { address: String },
    #[error("permission denied on {path}")]
    PermissionDenied { path: String },
    #[error("check-and-set conflict on {path}: it is no longer at version {expected} (written by someone else)")]
    CasConflict { path: String, expected: u64 },
    #[error("{path} not found")]
    NotFound { path: String },
    #[error("{path}: read back after writing, field {field} differs")]
    ReadBackMismatch { path: String, field: &'static str },
    #[error("{path}: unexpected content: {reason}")]
    Malformed { path: String, reason: String },
    #[error("Vault login rejected: {reason}")]
    Auth { reason: String },
    #[error("{path}: Vault error{}: {reason}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Other {
        path: String,
        status: Option<u16>,
        reason: String,
    },
}

impl VaultError {
    /// Vault cannot serve us now (exit code 3 territory).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            VaultError::Unreachable { .. } | VaultError::Sealed { .. }
        )
    }
}

/// A vaultrs error as the engine needs it told apart (`path` is what the
/// request was about, `cas` the version a check-and-set expected), its text
/// cleaned of secrets.
pub(super) fn from_client(e: ClientError, address: &str, path: &str, cas: u64) -> VaultError {
    let path = path.to_string();
    match e {
        ClientError::APIError { code, errors } => {
            let joined = redact::excerpt(&errors.join("; "), 300);
            if code == 503 && joined.to_lowercase().contains("sealed") {
                VaultError::Sealed {
                    address: address.to_string(),
                }
            } else if code == 403 {
                VaultError::PermissionDenied { path }
            } else if code == 404 {
                VaultError::NotFound { path }
            } else if code == 400 && joined.contains("check-and-set") {
                VaultError::CasConflict {
                    path,
                    expected: cas,
                }
            } else {
                VaultError::Other {
                    path,
                    status: Some(code),
                    reason: joined,
                }
            }
        }
        ClientError::RestClientError { source } => {
            let reason = redact::excerpt(&describe(&source), 300);
            match &source {
                rustify::errors::ClientError::ServerResponseError { code, .. } if *code == 503 => {
                    VaultError::Sealed {
                        address: address.to_string(),
                    }
                }
                rustify::errors::ClientError::ServerResponseError { code, .. } if *code == 403 => {
                    VaultError::PermissionDenied { path }
                }
                rustify::errors::ClientError::ServerResponseError { code, .. } if *code == 404 => {
                    VaultError::NotFound { path }
                }
                rustify::errors::ClientError::ServerResponseError { code, .. } => {
                    VaultError::Other {
                        path,
                        status: Some(*code),
                        reason,
                    }
                }
                _ => VaultError::Unreachable {
                    address: address.to_string(),
                    reason,
                },
            }
        }
        ClientError::JsonParseError { source } => VaultError::Malformed {
            path,
            reason: redact::excerpt(&source.to_string(), 300),
        },
        ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
            VaultError::Malformed {
                path,
                reason: "empty response".into(),
            }
        }
        other => VaultError::Other {
            path,
            status: None,
            reason: redact::excerpt(&describe(&other), 300),
        },
    }
}

/// An error found before anything was sent (a request that cannot be built).
pub(super) fn local_error(path: &str, reason: impl fmt::Display) -> VaultError {
    VaultError::Other {
        path: path.to_string(),
        status: None,
        reason: reason.to_string(),
    }
}

/// The latest version of a secret was deleted on purpose: never adopted over
/// (check-and-set would fail every sweep and churn keys); an operator decides.
pub(super) fn latest_deleted(path: String, version: u64) -> VaultError {
    VaultError::Malformed {
        path,
        reason: format!(
            "version {version} was deleted: undelete it, or delete the secret's metadata to start over"
        ),
    }
}
