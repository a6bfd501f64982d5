//! The Vault adapter (vaultrs; works with OpenBao too).
//!
//! A lineage's secret lives in KV v2 at `<mount>/data/<path_prefix>/<team_id>/<name>`
//! (docs/design.md, section 5). Every write is a check-and-set against the version the daemon last
//! saw (the staged copy's against an empty pending path), so the version a write's
//! answer names holds exactly what was sent; earlier versions stay in the KV history.
//! The secret's custom metadata says `managed_by = masv-key-rotator`, written at
//! the lineage's first write (adoption).
//!
//! TLS verification is always on (the `VAULT_SKIP_VERIFY` environment variable is
//! ignored); `ca_cert` adds a trusted root. An AppRole token is replaced by a fresh
//! login once two thirds of its lease have passed; each login reads the secret id
//! anew, so a rotated secret id file is used without a restart.
//!
//! Requests are vaultrs endpoints sent through `transport`, which bounds every
//! answer's size. Error text from Vault is cleaned of every secret the daemon
//! holds before it becomes an error.
//!
//! The parts: `settings` (what the adapter is given), `session` (the HTTP
//! client and logging in), `secret` (the secret's shapes and KV fields),
//! `kv` (the KV operations), `lease` (the HA lease at `_leader`), `anchor` (the audit chain's anchor at `_audit/`), `plain` (how both
//! of those are read and written), `sys` (seal status and capabilities),
//! `error` (the errors and how vaultrs' map onto them).

mod anchor;
mod error;
mod kv;
mod lease;
mod ops;
mod plain;
mod port;
mod secret;
mod session;
mod settings;
mod sys;
mod transport;

use std::sync::{Arc, Mutex};

pub use anchor::{AuditAnchor, ObservedAnchor};
pub use error::VaultError;
pub use secret::{LineageSecret, StoredSecret, VersionInfo};
use session::Session;
pub use settings::{VaultAuth, VaultSettings};
use transport::Transport;
pub use transport::VAULT_BODY_LIMIT;

/// What every clone of a [`VaultStore`] shares.
struct Inner {
    address: String,
    transport: Transport,
    mount: String,
    prefix: String,
    namespace: Option<String>,
    auth: VaultAuth,
    session: Mutex<Session>,
    refresh: tokio::sync::Mutex<()>,
    calls: std::sync::atomic::AtomicU64,
}

/// The Vault adapter; clones share the client.
#[derive(Clone)]
pub struct VaultStore {
    inner: Arc<Inner>,
}
