//! The audit chain's anchor: `<path_prefix>/_audit/<instance_id>`, the last
//! row's `id`, its `hash` and the row `count`, read whole and written with
//! check-and-set ([`crate::anchor`] decides what to write and when).
//!
//! It lives in Vault because whoever can write the state database can rewrite
//! the whole chain, hashes included; Vault keeps each version of the anchor and
//! its audit device records who wrote it, so a rewritten or shortened log no
//! longer matches a head that the database's owner cannot quietly move.

use serde::{Deserialize, Serialize};

use super::{VaultError, VaultStore};

/// The anchor's KV fields (SPEC section 5): the head of the chain as it was
/// committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditAnchor {
    /// The last row's id.
    pub id: i64,
    /// The last row's hash.
    pub hash: String,
    /// How many rows the log held (ids run 1..=count, so `count == id`).
    pub count: u64,
}

/// An anchor as read, with its KV version (the next write's check-and-set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedAnchor {
    pub version: u64,
    pub anchor: AuditAnchor,
}

impl VaultStore {
    /// The anchor's path within the mount, for `instance_id`.
    pub fn anchor_path(&self, instance_id: &str) -> String {
        format!("{}/_audit/{instance_id}", self.inner.prefix)
    }

    /// Where the anchor is, as an operator would look it up (`<mount>/data/…`).
    pub fn anchor_location(&self, instance_id: &str) -> String {
        self.full_path(&self.anchor_path(instance_id))
    }

    /// The anchor and its version; None if it was never written. Fields that
    /// describe no chain head are [`VaultError::Malformed`].
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id))]
    pub async fn read_anchor(
        &self,
        instance_id: &str,
    ) -> Result<Option<ObservedAnchor>, VaultError> {
        let path = self.anchor_path(instance_id);
        let Some((version, anchor)) = self.read_plain::<AuditAnchor>(&path).await? else {
            return Ok(None);
        };
        if anchor.id < 1 || anchor.hash.len() != 64 || u64::try_from(anchor.id) != Ok(anchor.count)
        {
            return Err(VaultError::Malformed {
                path: self.full_path(&path),
                reason: format!(
                    "id {}, count {} and a {}-character hash do not describe a chain head",
                    anchor.id,
                    anchor.count,
                    anchor.hash.len()
                ),
            });
        }
        Ok(Some(ObservedAnchor { version, anchor }))
    }

    /// Writes the anchor with check-and-set against `cas` (0: only if none
    /// exists yet); its new version.
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id, id = anchor.id, cas))]
    pub async fn write_anchor(
        &self,
        instance_id: &str,
        anchor: &AuditAnchor,
        cas: u64,
    ) -> Result<u64, VaultError> {
        self.write_plain(&self.anchor_path(instance_id), anchor, cas)
            .await
    }
}
