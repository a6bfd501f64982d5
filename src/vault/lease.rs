//! The HA lease's storage: `<path_prefix>/_leader`, read whole and written
//! with check-and-set (`crate::lease` decides what to write and when).

use super::{VaultError, VaultStore};
use crate::lease::{LeaseRecord, LeaseStore, LeaseStoreError, Observed};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

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
        let Some((version, fields)) = self.read_plain::<LeaseFields>(&self.lease_path()).await?
        else {
            return Ok(None);
        };
        let parse = |name: &str, text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| VaultError::Malformed {
                    path: self.full_path(&self.lease_path()),
                    reason: format!("{name}: {e}"),
                })
        };
        Ok(Some(Observed {
            version,
            record: LeaseRecord {
                acquired_at: parse("acquired_at", &fields.acquired_at)?,
                expires_at: parse("expires_at", &fields.expires_at)?,
                holder: fields.holder,
            },
        }))
    }

    /// Writes the lease with check-and-set against `cas`; its new version.
    pub async fn write_lease(&self, record: &LeaseRecord, cas: u64) -> Result<u64, VaultError> {
        let fields = LeaseFields {
            holder: record.holder.clone(),
            acquired_at: time(record.acquired_at),
            expires_at: time(record.expires_at),
        };
        self.write_plain(&self.lease_path(), &fields, cas).await
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
