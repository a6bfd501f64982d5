//! The HA lease's storage: `<path_prefix>/_leader`, read whole and written
//! with check-and-set (`crate::lease` decides what to write and when).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequest, SetSecretRequestOptions};

use super::error::local_error;
use super::{VaultError, VaultStore};
use crate::lease::{LeaseRecord, LeaseStore, LeaseStoreError, Observed};

/// The lease's KV fields.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseFields {
    holder: String,
    acquired_at: String,
    expires_at: String,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl VaultStore {
    /// The lease's path within the mount.
    pub fn lease_path(&self) -> String {
        format!("{}/_leader", self.inner.prefix)
    }

    /// The lease and its version; None if it was never written.
    pub async fn read_lease(&self) -> Result<Option<Observed>, VaultError> {
        let path = self.lease_path();
        let full = self.full_path(&path);
        let client = self.client().await?;
        let endpoint = ReadSecretRequest::builder()
            .mount(&self.inner.mount)
            .path(&path)
            .build()
            .map_err(|e| local_error(&full, e))?;
        let response = match self.send(&client, endpoint, &full, 0).await {
            Ok(r) => r,
            Err(VaultError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let malformed = |reason: String| VaultError::Malformed {
            path: full.clone(),
            reason,
        };
        let fields: LeaseFields =
            serde_json::from_value(response.data).map_err(|e| malformed(e.to_string()))?;
        let parse = |name: &str, text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| malformed(format!("{name}: {e}")))
        };
        Ok(Some(Observed {
            version: response.metadata.version,
            record: LeaseRecord {
                acquired_at: parse("acquired_at", &fields.acquired_at)?,
                expires_at: parse("expires_at", &fields.expires_at)?,
                holder: fields.holder,
            },
        }))
    }

    /// Writes the lease with check-and-set against `cas`; its new version.
    pub async fn write_lease(&self, record: &LeaseRecord, cas: u64) -> Result<u64, VaultError> {
        let path = self.lease_path();
        let full = self.full_path(&path);
        let client = self.client().await?;
        let data = serde_json::to_value(LeaseFields {
            holder: record.holder.clone(),
            acquired_at: time(record.acquired_at),
            expires_at: time(record.expires_at),
        })
        .map_err(|e| local_error(&full, e))?;
        let cas32 = u32::try_from(cas)
            .map_err(|_| local_error(&full, format!("version {cas} out of range")))?;
        let endpoint = SetSecretRequest::builder()
            .mount(&self.inner.mount)
            .path(&path)
            .data(data)
            .options(SetSecretRequestOptions { cas: cas32 })
            .build()
            .map_err(|e| local_error(&full, e))?;
        Ok(self.send(&client, endpoint, &full, cas).await?.version)
    }
}

impl From<VaultError> for LeaseStoreError {
    fn from(e: VaultError) -> Self {
        LeaseStoreError {
            conflict: matches!(e, VaultError::CasConflict { .. }),
            message: e.to_string(),
        }
    }
}

impl LeaseStore for VaultStore {
    async fn read_lease(&self) -> Result<Option<Observed>, LeaseStoreError> {
        Ok(VaultStore::read_lease(self).await?)
    }

    async fn write_lease(&self, record: &LeaseRecord, cas: u64) -> Result<u64, LeaseStoreError> {
        Ok(VaultStore::write_lease(self, record, cas).await?)
    }
}
