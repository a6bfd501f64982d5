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

    async fn read_staged(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, SecretStoreError> {
        Ok(VaultStore::read_staged(self, team_id, name).await?)
    }

    async fn stage(&self, secret: &LineageSecret) -> Result<u64, SecretStoreError> {
        Ok(VaultStore::stage(self, secret).await?)
    }

    async fn promote(&self, secret: &LineageSecret, cas: u64) -> Result<u64, SecretStoreError> {
        Ok(VaultStore::promote(self, secret, cas).await?)
    }

    async fn unstage(&self, team_id: &str, name: &str) -> Result<(), SecretStoreError> {
        Ok(VaultStore::unstage(self, team_id, name).await?)
    }

    async fn lineage_names(&self, team_id: &str) -> Option<std::collections::BTreeSet<String>> {
        VaultStore::lineage_names(self, team_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_text_and_whether_vault_was_unreachable() {
        let cases = [
            VaultError::Unreachable {
                address: "https://vault:8200".into(),
                reason: "refused".into(),
            },
            VaultError::Sealed {
                address: "https://vault:8200".into(),
            },
            VaultError::CasConflict {
                path: "secret/data/masv/T/ci".into(),
                expected: 3,
            },
            VaultError::PermissionDenied {
                path: "secret/data/masv/T/ci".into(),
            },
        ];
        for vault in cases {
            let text = vault.to_string();
            let unreachable = vault.is_unreachable();
            let port = SecretStoreError::from(vault);
            assert_eq!(port.to_string(), text);
            assert_eq!(port.is_unreachable(), unreachable, "{text}");
        }
        assert!(SecretStoreError::from(VaultError::Sealed {
            address: "a".into()
        })
        .is_unreachable());
    }
}
