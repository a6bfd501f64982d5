//! Errors of the Vault adapter, told apart the way the engine needs them:
//! unreachable or sealed (try later, exit 3), permission denied (configuration),
//! a check-and-set conflict (someone else wrote), not found. No message ever
//! carries a token or a secret value.

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
