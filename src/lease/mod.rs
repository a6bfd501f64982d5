//! The HA leader lease: with `[ha]`, several instances run and exactly one
//! (the holder) sweeps and mutates; when it dies another takes over within
//! seconds.
//!
//! The lease is the KV v2 secret `<path_prefix>/_leader` (`holder`,
//! `acquired_at`, `expires_at`); acquire, renew, takeover and release are all
//! check-and-set writes, the way Vault's own HA takes a lock in its storage.
//! Its KV version is the fencing token, recorded in the audit row of every
//! mutation the holder makes.
//!
//! * [`rules`] — when to take, keep and give up the lease (pure, and why it is
//!   safe without agreeing clocks);
//! * [`fence`] — what the engine asks before each mutating step;
//! * [`keeper`] — the task that reads, takes, renews and releases the lease.
//!
//! The lease's storage is a port ([`LeaseStore`]) the Vault adapter implements.

pub mod fence;
pub mod keeper;
pub mod rules;

use std::future::Future;

pub use fence::LeaseFence;
pub use keeper::{LeaseKeeper, LeaseRole, LeaseStatus};
pub use rules::{LeaseRecord, Observed, Previous, Timing};

/// Why the lease's storage could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LeaseStoreError {
    /// A check-and-set found another version: someone else wrote the lease.
    pub conflict: bool,
    pub message: String,
}

/// Where the lease lives.
pub trait LeaseStore: Send + Sync + 'static {
    /// The lease and its version, if it was ever written.
    fn read_lease(&self) -> impl Future<Output = Result<Option<Observed>, LeaseStoreError>> + Send;
    /// Writes `record` with check-and-set against `cas` (0: must not exist);
    /// returns the new version.
    fn write_lease(
        &self,
        record: &LeaseRecord,
        cas: u64,
    ) -> impl Future<Output = Result<u64, LeaseStoreError>> + Send;
}
