//! The narrow interfaces the engine needs from the outside world.
//!
//! The engine is generic over these two traits, so its state machine runs in unit
//! tests against in-memory fakes, and in production against [`MasvClient`] and
//! [`VaultStore`]. Both adapters' own error types pass through unchanged: the
//! engine needs their distinctions (outcome unknown, CAS conflict, unreachable).

use std::future::Future;

use secrecy::SecretString;

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
