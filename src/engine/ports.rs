//! The narrow interfaces the engine needs from the outside world.
//!
//! The engine owns these traits and their errors; the adapters implement them
//! (`crate::masv` the key API, `crate::vault` the secret store, `crate::store`
//! the record store) and the engine imports none of them. It is generic over the
//! key API and the secret store, so its state machine runs in unit tests against
//! in-memory fakes; the record store is a trait object, with one SQLite
//! implementation behind which all the SQL lives. The error kinds are the
//! distinctions the engine acts on (outcome unknown, not found, conflict,
//! unreachable); their text is the adapter's own message.

use std::future::Future;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::audit::NewAuditEntry;
use super::records::{Change, InFlight, TeamRecords};

use super::key::{CreatedKey, Key, KeyAction, NewKey};
use super::secret::{LineageSecret, StoredSecret};

/// What kind of failure a key API call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyErrorKind {
    /// The key API could not be reached, or kept failing (exit code 3).
    Unreachable,
    /// A create whose request may have arrived but whose answer was lost.
    OutcomeUnknown,
    /// The key does not exist (any more).
    NotFound,
    /// The key API refused the change in the key's current state.
    Conflict,
    /// Anything else: refused, malformed, rejected.
    Other,
}

/// A key API call that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct KeyApiError {
    kind: KeyErrorKind,
    message: String,
}

impl KeyApiError {
    pub fn new(kind: KeyErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> KeyErrorKind {
        self.kind
    }

    pub fn is_unreachable(&self) -> bool {
        self.kind == KeyErrorKind::Unreachable
    }
}

/// A secret store call that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SecretStoreError {
    unreachable: bool,
    message: String,
}

impl SecretStoreError {
    pub fn new(unreachable: bool, message: impl Into<String>) -> Self {
        Self {
            unreachable,
            message: message.into(),
        }
    }

    /// The store could not be reached (exit code 3).
    pub fn is_unreachable(&self) -> bool {
        self.unreachable
    }
}

/// What the engine does with API keys.
pub trait KeyApi: Send + Sync + 'static {
    fn list_keys(
        &self,
        team_id: &str,
    ) -> impl Future<Output = Result<Vec<Key>, KeyApiError>> + Send;
    fn create_key(
        &self,
        team_id: &str,
        new: &NewKey,
    ) -> impl Future<Output = Result<CreatedKey, KeyApiError>> + Send;
    fn set_key_state(
        &self,
        key_id: &str,
        action: KeyAction,
    ) -> impl Future<Output = Result<(), KeyApiError>> + Send;
    fn delete_key(&self, key_id: &str) -> impl Future<Output = Result<(), KeyApiError>> + Send;
    /// Proves a key works by using it (`X-API-KEY`).
    fn check_key(
        &self,
        team_id: &str,
        secret: &SecretString,
    ) -> impl Future<Output = Result<(), KeyApiError>> + Send;
}

/// What the engine does with lineage secrets.
///
/// A lineage has two places: its path, which consumers read and which only ever
/// names an active, verified key, and its pending path, where a new key's secret
/// waits between its create and its promotion.
pub trait SecretStore: Send + Sync + 'static {
    /// The lineage's secret as consumers read it.
    fn read(
        &self,
        team_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<StoredSecret>, SecretStoreError>> + Send;
    /// The staged secret at the lineage's pending path.
    fn read_staged(
        &self,
        team_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<StoredSecret>, SecretStoreError>> + Send;
    /// Writes a new key's secret to the pending path; returns the version
    /// the write's answer names (check-and-set: that version is this write).
    fn stage(
        &self,
        secret: &LineageSecret,
    ) -> impl Future<Output = Result<u64, SecretStoreError>> + Send;
    /// Check-and-set write of a verified key's secret to the lineage's path;
    /// returns the new version.
    fn promote(
        &self,
        secret: &LineageSecret,
        cas: u64,
    ) -> impl Future<Output = Result<u64, SecretStoreError>> + Send;
    /// Removes the pending path (nothing there is fine).
    fn unstage(
        &self,
        team_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), SecretStoreError>> + Send;
    /// The names of the team's lineages that have anything at their path, in
    /// one request; None when the store cannot tell, and each lineage is read.
    /// A name not in the set has no secret: the sweep need not read it.
    fn lineage_names(
        &self,
        _team_id: &str,
    ) -> impl Future<Output = Option<std::collections::BTreeSet<String>>> + Send {
        async { None }
    }
}

/// Why the record store could not do what was asked. The step that needed the
/// write is not taken (nothing further is mutated); the text names the database.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    message: String,
}

impl RecordError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Where the engine keeps what it must remember between steps and sweeps.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Applies state changes and appends their audit rows, atomically; returns
    /// once they are durable. `at` is the time the rows are stamped with.
    async fn apply(
        &self,
        at: DateTime<Utc>,
        changes: Vec<Change>,
        audit: Vec<NewAuditEntry>,
    ) -> Result<(), RecordError>;
    /// Everything the planner needs about one team, for its listed managed keys.
    async fn load_team(&self, team_id: &str, keys: &[&Key]) -> Result<TeamRecords, RecordError>;
    /// What this instance has in flight across all teams (open rotations,
    /// retirements not yet deactivated): what a hand-over closes.
    async fn in_flight(&self) -> Result<InFlight, RecordError>;
    /// Remembers the team's listed keys (what `status` shows offline).
    async fn snapshot_keys(
        &self,
        team_id: &str,
        keys: &[&Key],
        seen_at: DateTime<Utc>,
    ) -> Result<(), RecordError>;
}

/// Why this instance may not mutate now.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct NotHolder(String);

impl NotHolder {
    pub fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// With several instances, whether this one may mutate MASV or Vault now
/// (invariant 8): it holds the leader lease, unexpired with a safety margin.
/// Asked before every mutating step; no I/O.
pub trait Fence: Send + Sync + 'static {
    /// The fencing token to record with the mutation, or why not to make it.
    fn check(&self) -> Result<u64, NotHolder>;
}
