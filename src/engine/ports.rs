//! The narrow interfaces the engine needs from the outside world.
//!
//! The engine is generic over the key API and the secret store, so its state
//! machine runs in unit tests against in-memory fakes, and in production against
//! [`MasvClient`] and [`VaultStore`]. The record store is a trait object: one
//! SQLite implementation (`crate::store::Records`), behind which all the SQL lives.

use std::future::Future;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::audit::NewAuditEntry;
use super::records::{Change, TeamRecords};

use crate::masv::{ApiKey, CreatedApiKey, KeyAction, MasvClient, MasvError, NewApiKey};
use crate::vault::{LineageSecret, StoredSecret, VaultError, VaultStore};

/// What the engine does with MASV API keys.
pub trait KeyApi: Send + Sync + 'static {
    fn list_keys(
        &self,
        team_id: &str,
    ) -> impl Future<Output = Result<Vec<ApiKey>, MasvError>> + Send;
    fn create_key(
        &self,
        team_id: &str,
        new: &NewApiKey,
    ) -> impl Future<Output = Result<CreatedApiKey, MasvError>> + Send;
    fn set_key_state(
        &self,
        key_id: &str,
        action: KeyAction,
    ) -> impl Future<Output = Result<(), MasvError>> + Send;
    fn delete_key(&self, key_id: &str) -> impl Future<Output = Result<(), MasvError>> + Send;
    /// Proves a key works by using it (`X-API-KEY`).
    fn check_key(
        &self,
        team_id: &str,
        secret: &SecretString,
    ) -> impl Future<Output = Result<(), MasvError>> + Send;
}

/// What the engine does with lineage secrets.
pub trait SecretStore: Send + Sync + 'static {
    fn read(
        &self,
        team_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<StoredSecret>, VaultError>> + Send;
    /// Check-and-set write, then read back and compare; returns the new version.
    fn write_verified(
        &self,
        secret: &LineageSecret,
        cas: u64,
    ) -> impl Future<Output = Result<u64, VaultError>> + Send;
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
    async fn load_team(&self, team_id: &str, keys: &[&ApiKey]) -> Result<TeamRecords, RecordError>;
    /// Remembers the team's listed keys (what `status` shows offline).
    async fn snapshot_keys(
        &self,
        team_id: &str,
        keys: &[&ApiKey],
        seen_at: DateTime<Utc>,
    ) -> Result<(), RecordError>;
}

impl KeyApi for MasvClient {
    async fn list_keys(&self, team_id: &str) -> Result<Vec<ApiKey>, MasvError> {
        MasvClient::list_keys(self, team_id).await
    }
    async fn create_key(&self, team_id: &str, new: &NewApiKey) -> Result<CreatedApiKey, MasvError> {
        MasvClient::create_key(self, team_id, new).await
    }
    async fn set_key_state(&self, key_id: &str, action: KeyAction) -> Result<(), MasvError> {
        MasvClient::set_key_state(self, key_id, action).await
    }
    async fn delete_key(&self, key_id: &str) -> Result<(), MasvError> {
        MasvClient::delete_key(self, key_id).await
    }
    async fn check_key(&self, team_id: &str, secret: &SecretString) -> Result<(), MasvError> {
        MasvClient::check_key(self, team_id, secret).await
    }
}

impl SecretStore for VaultStore {
    async fn read(&self, team_id: &str, name: &str) -> Result<Option<StoredSecret>, VaultError> {
        VaultStore::read(self, team_id, name).await
    }
    async fn write_verified(&self, secret: &LineageSecret, cas: u64) -> Result<u64, VaultError> {
        VaultStore::write_verified(self, secret, cas).await
    }
}
