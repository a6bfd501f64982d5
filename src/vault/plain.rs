//! A KV secret of plain, non-secret fields, read whole and written with
//! check-and-set against the version last seen: the HA lease (`_leader`) and
//! the audit anchor (`_audit/<instance_id>`) are both kept this way.

use serde::de::DeserializeOwned;
use serde::Serialize;
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequest, SetSecretRequestOptions};

use super::error::local_error;
use super::{VaultError, VaultStore};

impl VaultStore {
    /// The fields at `path` (within the mount) and their version; None if it
    /// was never written. Fields that do not parse as `T` are
    /// [`VaultError::Malformed`], naming the path.
    pub(super) async fn read_plain<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<(u64, T)>, VaultError> {
        let full = self.full_path(path);
        let client = self.client().await?;
        let endpoint = ReadSecretRequest::builder()
            .mount(&self.inner.mount)
            .path(path)
            .build()
            .map_err(|e| local_error(&full, e))?;
        let response = match self.send(&client, endpoint, &full, 0).await {
            Ok(r) => r,
            Err(VaultError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let fields = serde_json::from_value(response.data).map_err(|e| VaultError::Malformed {
            path: full,
            reason: e.to_string(),
        })?;
        Ok(Some((response.metadata.version, fields)))
    }

    /// Writes `fields` at `path` with check-and-set against `cas` (0: only if
    /// nothing is there yet); the new version.
    pub(super) async fn write_plain<T: Serialize>(
        &self,
        path: &str,
        fields: &T,
        cas: u64,
    ) -> Result<u64, VaultError> {
        let full = self.full_path(path);
        let client = self.client().await?;
        let data = serde_json::to_value(fields).map_err(|e| local_error(&full, e))?;
        let cas32 = u32::try_from(cas)
            .map_err(|_| local_error(&full, format!("version {cas} out of range")))?;
        let endpoint = SetSecretRequest::builder()
            .mount(&self.inner.mount)
            .path(path)
            .data(data)
            .options(SetSecretRequestOptions { cas: cas32 })
            .build()
            .map_err(|e| local_error(&full, e))?;
        Ok(self.send(&client, endpoint, &full, cas).await?.version)
    }
}
