//! The KV v2 operations on a lineage's secret: read (the latest or one
//! version), a check-and-set write, the history and the custom metadata; on
//! its staged copy at the pending path (`<path_prefix>/_pending/<team_id>/<name>`):
//! stage, read, remove; and one `LIST` of a team's lineages. A key name that
//! cannot be one path segment is refused before anything is sent.
//!
//! Round trips are counted: a rotation is at most four requests (the mark at
//! adoption, stage, promote, unstage; or the read before acting, stage,
//! promote, unstage), because a check-and-set write's answer already proves
//! which version holds what was sent (docs/design.md, section 5).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rustify::endpoint::Endpoint;
use vaultrs::api::kv2::requests::{
    DeleteSecretMetadataRequest, ListSecretsRequest, ReadSecretMetadataRequest, ReadSecretRequest,
    SetSecretMetadataRequest, SetSecretRequest, SetSecretRequestOptions,
};
use vaultrs::api::kv2::responses::ReadSecretMetadataResponse;
use vaultrs::error::ClientError;

use super::error::{latest_deleted, local_error};
use super::secret::{first_difference, Fields};
use super::session::Caller;
use super::{LineageSecret, StoredSecret, VaultError, VaultStore, VersionInfo};

/// Which of a lineage's two paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// What consumers read: only ever an active, verified key.
    Lineage,
    /// A new key's secret between its create and its promotion.
    Pending,
}

impl VaultStore {
    /// The secret's path within the mount: `<path_prefix>/<team>/<name>`.
    pub fn secret_path(&self, team_id: &str, name: &str) -> String {
        format!("{}/{team_id}/{name}", self.inner.prefix)
    }

    /// The staged copy's path within the mount: `<path_prefix>/_pending/<team>/<name>`.
    pub fn pending_path(&self, team_id: &str, name: &str) -> String {
        format!("{}/_pending/{team_id}/{name}", self.inner.prefix)
    }

    /// The checked path of `slot` for a lineage.
    fn slot_path(&self, slot: Slot, team_id: &str, name: &str) -> Result<String, VaultError> {
        let lineage = self.checked_path(team_id, name)?;
        Ok(match slot {
            Slot::Lineage => lineage,
            Slot::Pending => self.pending_path(team_id, name),
        })
    }

    /// MASV key names are free text: one with `/`, `.`/`..` or control characters
    /// would address a path outside the lineage's own (e.g. `ci-../../other`).
    /// Such a lineage is refused rather than escaped, so its path stays readable.
    fn checked_path(&self, team_id: &str, name: &str) -> Result<String, VaultError> {
        let bad = |s: &str| {
            s.is_empty()
                || s == "."
                || s == ".."
                || s.contains('/')
                || s.chars().any(char::is_control)
        };
        if bad(team_id) || bad(name) {
            return Err(VaultError::Malformed {
                path: format!("{}/data/{}/…", self.inner.mount, self.inner.prefix),
                reason: format!(
                    "key name {name:?} of team {team_id:?} cannot be a Vault path segment"
                ),
            });
        }
        Ok(self.secret_path(team_id, name))
    }

    pub(super) fn full_path(&self, path: &str) -> String {
        format!("{}/data/{path}", self.inner.mount)
    }

    /// The latest version of a lineage's secret, if any.
    #[tracing::instrument(skip_all, fields(team_id = %team_id, key_name = %name))]
    pub async fn read(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, VaultError> {
        self.read_slot(Slot::Lineage, team_id, name).await
    }

    /// The staged copy of a lineage's secret, if any.
    #[tracing::instrument(skip_all, fields(team_id = %team_id, key_name = %name))]
    pub async fn read_staged(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, VaultError> {
        self.read_slot(Slot::Pending, team_id, name).await
    }

    async fn read_slot(
        &self,
        slot: Slot,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, VaultError> {
        let at = self.slot_path(slot, team_id, name)?;
        match self.read_at(&at, None).await {
            Ok(s) => Ok(Some(s)),
            Err(VaultError::NotFound { path }) => {
                // Absent, or its latest version deleted? Only the metadata tells.
                let meta_path = at.clone();
                match self.read_metadata(&meta_path).await {
                    Ok(meta) if meta.current_version > 0 => {
                        let deleted = meta
                            .versions
                            .get(&meta.current_version.to_string())
                            .is_none_or(|v| !v.deletion_time.is_empty() || v.destroyed);
                        if deleted {
                            Err(latest_deleted(path, meta.current_version))
                        } else {
                            // Being written right now: KV v2 updates the metadata
                            // before the new version's data is readable. Read again.
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            self.read_at(&at, None).await.map(Some)
                        }
                    }
                    Ok(_) | Err(VaultError::NotFound { .. }) => Ok(None),
                    Err(other) => Err(other),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// One version of a lineage's secret.
    #[tracing::instrument(skip_all, fields(team_id = %team_id, key_name = %name, version))]
    pub async fn read_version(
        &self,
        team_id: &str,
        name: &str,
        version: u64,
    ) -> Result<StoredSecret, VaultError> {
        let path = self.checked_path(team_id, name)?;
        self.read_at(&path, Some(version)).await
    }

    async fn read_at(&self, path: &str, version: Option<u64>) -> Result<StoredSecret, VaultError> {
        let full = self.full_path(path);
        let client = self.client().await?;
        let endpoint = ReadSecretRequest::builder()
            .mount(&self.inner.mount)
            .path(path)
            .version(version)
            .build()
            .map_err(|e| local_error(&full, e))?;
        let response = self.send(&client, endpoint, &full, 0).await?;
        if response.data.is_null() {
            return Err(latest_deleted(full, response.metadata.version));
        }
        let fields: Fields =
            serde_json::from_value(response.data).map_err(|e| VaultError::Malformed {
                path: full.clone(),
                reason: e.to_string(),
            })?;
        Ok(StoredSecret {
            version: response.metadata.version,
            secret: fields.into_secret(&full)?,
        })
    }

    /// Check-and-set write (`cas = 0`: the secret must not exist yet). The
    /// lineage's first write (`cas = 0`, adoption) marks it as the daemon's
    /// (custom metadata) first; later writes leave the mark as it is. Returns
    /// the new version.
    #[tracing::instrument(skip_all, fields(team_id = %secret.team_id, key_name = %secret.key_name, cas))]
    pub async fn write(&self, secret: &LineageSecret, cas: u64) -> Result<u64, VaultError> {
        let path = self.checked_path(&secret.team_id, &secret.key_name)?;
        if cas == 0 {
            // Before the data: a version without the mark is never left behind
            // (a failed mark stops the write; a crash after it leaves only the
            // mark, which the next adoption writes again).
            self.mark_managed(&path).await?;
        }
        self.put(&path, secret, Some(cas)).await
    }

    /// Stages a new key's secret at the lineage's pending path, check-and-set
    /// against an empty path (every rotation removes its own entry). The
    /// answer's version is then this write, with nobody else's in between, so
    /// nothing is read back. A leftover of a rotation that never finished is
    /// replaced: its current version is read and written over, check-and-set
    /// again. Returns the staged version.
    #[tracing::instrument(skip_all, fields(team_id = %secret.team_id, key_name = %secret.key_name))]
    pub async fn stage(&self, secret: &LineageSecret) -> Result<u64, VaultError> {
        let path = self.slot_path(Slot::Pending, &secret.team_id, &secret.key_name)?;
        match self.put(&path, secret, Some(0)).await {
            Err(VaultError::CasConflict { .. }) => {
                let there = self.read_metadata(&path).await?.current_version;
                self.put(&path, secret, Some(there)).await
            }
            other => other,
        }
    }

    /// Reads `version` at `path` back and compares every field with `secret`,
    /// key included; the version if they all match.
    async fn read_back(
        &self,
        path: &str,
        secret: &LineageSecret,
        version: u64,
    ) -> Result<u64, VaultError> {
        let back = self.read_at(path, Some(version)).await?;
        match first_difference(secret, &back.secret) {
            Some(field) => Err(VaultError::ReadBackMismatch {
                path: self.full_path(path),
                field,
            }),
            None => Ok(version),
        }
    }

    /// Promotes a verified key's secret to the lineage's path: a check-and-set
    /// write against `cas` ([`VaultStore::write`]: marked as the daemon's at
    /// adoption). Returns the new version.
    #[tracing::instrument(skip_all, fields(team_id = %secret.team_id, key_name = %secret.key_name, cas))]
    pub async fn promote(&self, secret: &LineageSecret, cas: u64) -> Result<u64, VaultError> {
        self.write(secret, cas).await
    }

    /// The names under a team's folder that have anything at the lineage's
    /// path (a version, or only metadata): one `LIST` instead of a read per
    /// lineage to learn which have no secret yet. None when it cannot tell
    /// (the token may not list, the answer is too large, Vault failed): the
    /// caller then reads each lineage, which reports any real trouble.
    #[tracing::instrument(skip_all, fields(team_id = %team_id))]
    pub async fn lineage_names(&self, team_id: &str) -> Option<BTreeSet<String>> {
        // The same check as a lineage's path, for the team's segment.
        self.checked_path(team_id, "x").ok()?;
        let folder = format!("{}/{team_id}/", self.inner.prefix);
        let full = format!("{}/metadata/{folder}", self.inner.mount);
        let client = self.client().await.ok()?;
        let endpoint = ListSecretsRequest::builder()
            .mount(&self.inner.mount)
            .path(&folder)
            .build()
            .ok()?;
        match self.send(&client, endpoint, &full, 0).await {
            Ok(listed) => Some(
                listed
                    .keys
                    .into_iter()
                    .filter(|k| !k.ends_with('/'))
                    .collect(),
            ),
            Err(VaultError::NotFound { .. }) => Some(BTreeSet::new()),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the team's lineages; reading each");
                None
            }
        }
    }

    /// Removes the staged copy, every version of it. Nothing there is fine.
    #[tracing::instrument(skip_all, fields(team_id = %team_id, key_name = %name))]
    pub async fn unstage(&self, team_id: &str, name: &str) -> Result<(), VaultError> {
        let path = self.slot_path(Slot::Pending, team_id, name)?;
        let full = format!("{}/metadata/{path}", self.inner.mount);
        let client = self.client().await?;
        let endpoint = DeleteSecretMetadataRequest::builder()
            .mount(&self.inner.mount)
            .path(&path)
            .build()
            .map_err(|e| local_error(&full, e))?;
        match self
            .inner
            .transport
            .exec_empty(client.as_ref(), endpoint)
            .await
            .map_err(|e| self.inner.map_err(e, &full, 0))
        {
            Ok(()) | Err(VaultError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One write of the secret's fields at `path` (with check-and-set at `cas`
    /// if given); its new version.
    async fn put(
        &self,
        path: &str,
        secret: &LineageSecret,
        cas: Option<u64>,
    ) -> Result<u64, VaultError> {
        let full = self.full_path(path);
        let client = self.client().await?;
        let fields = Fields::from_secret(secret);
        let options = match cas {
            Some(cas) => Some(SetSecretRequestOptions {
                cas: u32::try_from(cas)
                    .map_err(|_| local_error(&full, format!("version {cas} out of range")))?,
            }),
            None => None,
        };
        let data = serde_json::to_value(&fields).map_err(|e| local_error(&full, e))?;
        drop(fields);
        let mut builder = SetSecretRequest::builder();
        builder.mount(&self.inner.mount).path(path).data(data);
        if let Some(options) = options {
            builder.options(options);
        }
        let endpoint = builder.build().map_err(|e| local_error(&full, e))?;
        let written = self
            .send(&client, endpoint, &full, cas.unwrap_or(0))
            .await?;
        Ok(written.version)
    }

    /// Marks the lineage's secret as the daemon's (custom metadata).
    async fn mark_managed(&self, path: &str) -> Result<(), VaultError> {
        let client = self.client().await?;
        let mut custom = HashMap::new();
        custom.insert("managed_by".to_string(), "masv-key-rotator".to_string());
        let meta_full = format!("{}/metadata/{path}", self.inner.mount);
        let endpoint = SetSecretMetadataRequest::builder()
            .mount(&self.inner.mount)
            .path(path)
            .custom_metadata(custom)
            .build()
            .map_err(|e| local_error(&meta_full, e))?;
        self.inner
            .transport
            .exec_empty(client.as_ref(), endpoint)
            .await
            .map_err(|e| self.inner.map_err(e, &meta_full, 0))
    }

    /// Writes, reads that version back and compares every field, key included.
    #[tracing::instrument(skip_all, fields(team_id = %secret.team_id, key_name = %secret.key_name, cas))]
    pub async fn write_verified(
        &self,
        secret: &LineageSecret,
        cas: u64,
    ) -> Result<u64, VaultError> {
        let version = self.write(secret, cas).await?;
        let path = self.checked_path(&secret.team_id, &secret.key_name)?;
        self.read_back(&path, secret, version).await
    }

    /// The secret's KV history, oldest first.
    #[tracing::instrument(skip_all, fields(team_id = %team_id, key_name = %name))]
    pub async fn versions(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Vec<VersionInfo>, VaultError> {
        let path = self.secret_path(team_id, name);
        let full = format!("{}/metadata/{path}", self.inner.mount);
        let meta = self.read_metadata(&path).await?;
        let mut out = Vec::new();
        for (v, m) in meta.versions {
            let version = v.parse::<u64>().map_err(|e| VaultError::Malformed {
                path: full.clone(),
                reason: e.to_string(),
            })?;
            let created_time = DateTime::parse_from_rfc3339(&m.created_time)
                .map_err(|e| VaultError::Malformed {
                    path: full.clone(),
                    reason: e.to_string(),
                })?
                .with_timezone(&Utc);
            out.push(VersionInfo {
                version,
                created_time,
                destroyed: m.destroyed,
                deleted: !m.deletion_time.is_empty(),
            });
        }
        out.sort_by_key(|v| v.version);
        Ok(out)
    }

    /// The secret's custom metadata.
    pub async fn custom_metadata(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<HashMap<String, String>, VaultError> {
        let path = self.secret_path(team_id, name);
        let meta = self.read_metadata(&path).await?;
        Ok(meta.custom_metadata.unwrap_or_default())
    }

    /// Sends `endpoint` (about `full`, a check-and-set at `cas`); its data.
    pub(super) async fn send<E: Endpoint>(
        &self,
        client: &Caller,
        endpoint: E,
        full: &str,
        cas: u64,
    ) -> Result<E::Response, VaultError> {
        self.inner
            .transport
            .exec(client, endpoint)
            .await
            .and_then(|r| r.ok_or(ClientError::ResponseDataEmptyError))
            .map_err(|e| self.inner.map_err(e, full, cas))
    }

    /// A secret's metadata (`path` within the mount).
    async fn read_metadata(&self, path: &str) -> Result<ReadSecretMetadataResponse, VaultError> {
        let full = format!("{}/metadata/{path}", self.inner.mount);
        let client = self.client().await?;
        let endpoint = ReadSecretMetadataRequest::builder()
            .mount(&self.inner.mount)
            .path(path)
            .build()
            .map_err(|e| local_error(&full, e))?;
        self.send(&client, endpoint, &full, 0).await
    }
}
