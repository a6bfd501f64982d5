//! Requests sent to MASV and to Vault, counted by endpoint (or operation) and
//! answer code, for `/metrics`.
//!
//! The adapters count into the [`Traffic`] they are made with. `run` makes one
//! for the life of the process and registers it with its metrics, so the
//! counts carry over config reloads, which make new adapters; every other
//! command's adapters count into one nobody reads. Labels hold only fixed
//! words and status codes, never an id, a path or a secret, so the number of
//! series stays small whatever the fleet.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// A MASV request: which endpoint, and its status code or what went wrong.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MasvRequest {
    endpoint: &'static str,
    code: String,
}

/// A Vault request: which operation, and its status code or what went wrong.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VaultRequest {
    op: &'static str,
    code: String,
}

/// The request counters; clones share them.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    masv: Family<MasvRequest, Counter>,
    vault: Family<VaultRequest, Counter>,
}

/// What stands in for a status code when no answer came.
pub mod no_answer {
    /// The request timed out.
    pub const TIMEOUT: &str = "timeout";
    /// The connection was never made: nothing was sent.
    pub const NOT_SENT: &str = "not_sent";
    /// Sent, but the answer was lost or could not be read.
    pub const LOST: &str = "lost";
}

impl Traffic {
    /// One MASV request to `endpoint` that ended with `code`.
    pub fn masv(&self, endpoint: &'static str, code: &str) {
        self.masv
            .get_or_create(&MasvRequest {
                endpoint,
                code: code.to_string(),
            })
            .inc();
    }

    /// One Vault request for `op` that ended with `code`.
    pub fn vault(&self, op: &'static str, code: &str) {
        self.vault
            .get_or_create(&VaultRequest {
                op,
                code: code.to_string(),
            })
            .inc();
    }

    /// Adds `masv_requests_total` and `vault_requests_total` to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "masv_requests",
            "HTTP requests sent to MASV, by endpoint and status code (timeout, not_sent or lost: no answer).",
            self.masv.clone(),
        );
        registry.register(
            "vault_requests",
            "HTTP requests sent to Vault, by operation and status code (timeout, not_sent or lost: no answer).",
            self.vault.clone(),
        );
    }
}
