//! Vault as the engine's secret store.

use super::{LineageSecret, StoredSecret, VaultError, VaultStore};
use crate::engine::ports::{SecretStore, SecretStoreError};

impl From<VaultError> for SecretStoreError {
    fn from(e: VaultError) -> Self {
        SecretStoreError::new(e.is_unreachable(), e.to_string())
    }
}

impl SecretStore for VaultStore {
    async fn read(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, SecretStoreError> {
        Ok(VaultStore::read(self, team_id, name).await?)
    }

    async fn write_verified(
        &self,
        secret: &LineageSecret,
        cas: u64,
    ) -> Result<u64, SecretStoreError> {
        Ok(VaultStore::write_verified(self, secret, cas).await?)
    }
}
