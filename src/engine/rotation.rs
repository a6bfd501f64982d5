//! A rotation, step by step: create the new key inactive, stage its secret at
//! the lineage's pending path, activate it, prove it works, then promote the
//! secret to the lineage's path (`promotion.rs`). Consumers read only the
//! lineage's path, so it only ever names an active key that was verified to
//! work (invariant 7). A key whose secret did not reach the pending path is
//! rolled back (deleted while still inactive); the old keys are never touched
//! here: they start retiring once the new key is promoted.

use secrecy::SecretString;
use tracing::{info, warn};

use super::audit::{AuditAction, Outcome};
use super::executor::{Executor, LineageContext, Rotated};
use super::failpoints::Boundary;
use super::key::{CreatedKey, KeyAction, KeyState, NewKey};
use super::marker;
use super::model::{DueReason, LineageId, RotationPhase, RotationRecord, VaultView};
use super::ports::{KeyApi, SecretStore};
use super::ports::{KeyApiError, KeyErrorKind, SecretStoreError};
use super::records::Change;
use super::secret::{LineageSecret, StoredSecret};
use super::step::{about, Recorded, StepError};

/// How a store attempt that returned an error ended, once Vault was looked at.
#[derive(Debug)]
pub(super) enum StoreFailure {
    /// Vault does not hold the new key: the rotation rolls back.
    Missing { error: SecretStoreError },
    /// Vault could not be read afterwards: the next sweep resumes from "storing".
    Unknown {
        error: SecretStoreError,
        read_error: SecretStoreError,
    },
}

impl From<StoreFailure> for StepError {
    fn from(f: StoreFailure) -> Self {
        match f {
            StoreFailure::Missing { error, .. } | StoreFailure::Unknown { error, .. } => {
                StepError::Vault(error)
            }
        }
    }
}

impl<K: KeyApi, S: SecretStore> Executor<'_, K, S> {
    /// Starts a new rotation of the lineage and drives it to verified.
    #[tracing::instrument(skip_all, fields(team_id = %ctx.lineage.team_id, key_name = %ctx.lineage.name, rotation_id, reason = %reason))]
    pub async fn rotate(
        &self,
        ctx: &LineageContext,
        reason: DueReason,
        cas: u64,
    ) -> Result<Rotated, StepError> {
        let rotation_id = ulid::Ulid::new().to_string();
        tracing::Span::current().record("rotation_id", rotation_id.as_str());
        let old_key_id = self.vault_unchanged(ctx, cas).await?;
        let rot = RotationRecord {
            rotation_id,
            lineage: ctx.lineage.clone(),
            reason,
            old_key_id,
            new_key_id: None,
            phase: RotationPhase::Creating,
            cas,
            vault_version: None,
            started_at: self.steps.now(),
            stored_at: None,
            last_error: None,
        };
        let created = self.create(ctx, &rot).await?;
        let rot = RotationRecord {
            new_key_id: Some(created.key.id.clone()),
            phase: RotationPhase::Storing,
            ..rot
        };
        let staged = self.stage(ctx, &rot, &created).await?;
        self.activate(ctx, &rot, true).await?;
        self.verify(ctx, &rot, Some(created.secret)).await?;
        let rot = self.promote(ctx, &rot, staged, rot.cas).await?;
        Ok(Rotated::of(&rot))
    }

    /// The key Vault holds now, if the version is still the one planned against.
    /// Looks at Vault right before acting (unless this sweep just did): the write
    /// must replace what is there now. Check-and-set still guards the write itself.
    async fn vault_unchanged(
        &self,
        ctx: &LineageContext,
        cas: u64,
    ) -> Result<Option<String>, StepError> {
        let lineage = &ctx.lineage;
        let view = if ctx.vault_fresh {
            ctx.vault.clone()
        } else {
            self.vault_view(lineage).await?
        };
        if view.as_ref().map_or(0, |v| v.version) != cas {
            let change = Change::Vault {
                lineage: lineage.clone(),
                view,
            };
            self.steps.record(vec![change], None).await?;
            return Err(StepError::Guard(format!(
                "Vault changed under {lineage} (expected version {cas}); re-planned on the next sweep"
            )));
        }
        Ok(view.map(|v| v.key_id))
    }

    /// What Vault holds for the lineage now.
    pub(super) async fn vault_view(
        &self,
        lineage: &LineageId,
    ) -> Result<Option<VaultView>, StepError> {
        let stored = self.secrets.read(&lineage.team_id, &lineage.name).await?;
        Ok(stored.as_ref().map(StoredSecret::view))
    }

    /// Creates the new key inactive, with the rotation's marker. The rotation's
    /// record is the intent; the "storing" intent rides in the outcome's commit.
    async fn create(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
    ) -> Result<CreatedKey, StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let expiry = rot.started_at
            + chrono::Duration::from_std(ctx.policy.new_key_lifetime)
                .unwrap_or(chrono::Duration::MAX);
        let new = NewKey {
            name: lineage.name.clone(),
            description: marker::description(rid),
            expiry: Some(expiry),
            state: KeyAction::Inactive,
        };
        let step = about(lineage, None, Some(rid), AuditAction::Create)
            .intent(vec![Change::StartRotation(rot.clone())])
            .crash_points(Some(Boundary::BeforeCreate), Some(Boundary::AfterCreate));
        let old = rot.old_key_id.as_deref().unwrap_or("no stored key");
        let created = self
            .steps
            .run(
                step,
                self.keys.create_key(&lineage.team_id, &new),
                |created: &CreatedKey| {
                    info!(key_id = %created.key.id, "created the new key (inactive until its secret is stored)");
                    let detail = format!(
                        "created inactive, expires {}, replacing {old} ({})",
                        super::key::audit_time(created.key.expiry),
                        rot.reason
                    );
                    Recorded::new(
                        vec![
                            Change::phase_with_key(rid, RotationPhase::Created, &created.key.id),
                            Change::SnapshotKey {
                                team_id: lineage.team_id.clone(),
                                key: created.key.clone(),
                            },
                            // The next step's intent rides in the same commit.
                            Change::phase(rid, RotationPhase::Storing),
                        ],
                        detail,
                    )
                    .naming(&created.key.id)
                },
                |e: &KeyApiError| match e.kind() {
                    // The key may exist. Stay in "creating": the next sweep's list finds it by its marker.
                    KeyErrorKind::OutcomeUnknown => Recorded::new(
                        vec![Change::phase_failed(rid, RotationPhase::Creating, e)],
                        format!("{e}; the next sweep looks for the key by its marker"),
                    ),
                    _ => Recorded::new(
                        vec![Change::phase_failed(rid, RotationPhase::RolledBack, e)],
                        e.to_string(),
                    ),
                },
            )
            .await??;
        Ok(created)
    }

    /// Stages the new secret at the lineage's pending path (check-and-set); rolls
    /// the key back if the secret did not land. The "storing" intent is on
    /// record. Returns what was staged, for the promotion.
    async fn stage(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
        created: &CreatedKey,
    ) -> Result<LineageSecret, StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let key = &created.key;
        let value = LineageSecret {
            api_key: created.secret.clone(),
            key_id: key.id.clone(),
            key_name: lineage.name.clone(),
            team_id: lineage.team_id.clone(),
            expiry: key.expiry,
            created_at: key.created_at,
            rotated_at: self.steps.now(),
            rotation_id: rid.to_string(),
        };
        let step = about(lineage, Some(&key.id), Some(rid), AuditAction::Stage)
            .crash_points(Some(Boundary::BeforeStore), Some(Boundary::AfterStore));
        let result = self
            .steps
            .run(
                step,
                self.stage_or_find(&value),
                |version: &u64| {
                    info!(key_id = %key.id, version, "staged the new secret at the pending path");
                    Recorded::new(
                        staged_changes(rid),
                        format!("pending version {version}, check-and-set"),
                    )
                },
                |failure: &StoreFailure| match failure {
                    StoreFailure::Missing { error, .. } => Recorded::new(
                        vec![Change::phase_failed(rid, RotationPhase::Storing, error)],
                        error.to_string(),
                    ),
                    StoreFailure::Unknown { error, read_error } => Recorded::new(
                        vec![Change::phase_failed(rid, RotationPhase::Storing, error)],
                        format!("{error}; Vault unreadable afterwards ({read_error}): resumed on the next sweep"),
                    ),
                },
            )
            .await?;
        match result {
            Ok(_) => Ok(value),
            Err(failure @ StoreFailure::Missing { .. }) => {
                self.rollback(lineage, rid, &key.id).await?;
                Err(failure.into())
            }
            Err(failure) => Err(failure.into()),
        }
    }

    /// The staging write; on an error, a look at the pending path by rotation
    /// id: the write may have landed before the error (a timeout, a lost
    /// answer), and rolling back a staged key would lose it.
    async fn stage_or_find(&self, value: &LineageSecret) -> Result<u64, StoreFailure> {
        let error = match self.secrets.stage(value).await {
            Ok(version) => return Ok(version),
            Err(e) => e,
        };
        match self
            .secrets
            .read_staged(&value.team_id, &value.key_name)
            .await
        {
            Ok(Some(there)) if there.secret.rotation_id == value.rotation_id => Ok(there.version),
            Ok(_) => Err(StoreFailure::Missing { error }),
            Err(read_error) => Err(StoreFailure::Unknown { error, read_error }),
        }
    }

    /// Records a staged secret found at the pending path after a restart
    /// (resume's "storing").
    pub(super) async fn record_found_staged(
        &self,
        rot: &RotationRecord,
        version: u64,
    ) -> Result<(), StepError> {
        let lineage = &rot.lineage;
        let rid = rot.rotation_id.as_str();
        let new_id = rot.new_key_id.clone().unwrap_or_default();
        info!(key_id = %new_id, version, "staged the new secret at the pending path");
        let step = about(lineage, Some(&new_id), Some(rid), AuditAction::Stage);
        let detail = format!("pending version {version}, found after a restart");
        self.steps
            .record(staged_changes(rid), Some((step, Outcome::Ok, detail)))
            .await
    }

    /// Activates the stored key. `intent_recorded` when "activating" is already
    /// on record (it rides with the store's outcome).
    pub(super) async fn activate(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
        intent_recorded: bool,
    ) -> Result<(), StepError> {
        let rid = rot.rotation_id.as_str();
        let new_id = rot
            .new_key_id
            .as_deref()
            .ok_or_else(|| StepError::Guard(format!("rotation {rid} has no new key")))?;
        let intent = if intent_recorded {
            vec![]
        } else {
            vec![Change::phase(rid, RotationPhase::Activating)]
        };
        let step = about(&ctx.lineage, Some(new_id), Some(rid), AuditAction::Activate)
            .intent(intent)
            .crash_points(
                Some(Boundary::BeforeActivate),
                Some(Boundary::AfterActivate),
            );
        self.steps
            .run(
                step,
                self.keys.set_key_state(new_id, KeyAction::Active),
                |_| {
                    Recorded::new(
                        vec![
                            Change::phase(rid, RotationPhase::Active),
                            Change::SnapshotState {
                                key_id: new_id.to_string(),
                                state: KeyState::Active,
                            },
                        ],
                        "new key activated",
                    )
                },
                |e: &KeyApiError| {
                    Recorded::new(
                        vec![Change::phase_failed(rid, RotationPhase::Activating, e)],
                        e.to_string(),
                    )
                },
            )
            .await??;
        Ok(())
    }

    /// Uses the new key once (`X-API-KEY`); on success the promotion's intent
    /// is recorded with it. Without the secret in hand (a resume) it is read
    /// from the pending path.
    pub(super) async fn verify(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
        secret: Option<SecretString>,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let new_id = rot.new_key_id.clone().unwrap_or_default();
        let secret = match secret {
            Some(s) => s,
            None => self.staged_secret(lineage, rid).await?.api_key,
        };
        let step = about(lineage, Some(&new_id), Some(rid), AuditAction::Verify)
            .crash_points(None, Some(Boundary::AfterVerify));
        self.steps
            .run(
                step,
                self.keys.check_key(&lineage.team_id, &secret),
                |_| {
                    info!(key_id = %new_id, "verified the new key");
                    Recorded::new(
                        vec![
                            Change::Verified {
                                lineage: lineage.clone(),
                                key_id: new_id.clone(),
                            },
                            // The promotion always follows: its intent rides along.
                            Change::phase(rid, RotationPhase::Promoting),
                        ],
                        "new key works; promoting it",
                    )
                },
                |e: &KeyApiError| {
                    Recorded::new(
                        vec![Change::phase_failed(rid, RotationPhase::Active, e)],
                        format!("{e}; retried on the next sweep, old key kept"),
                    )
                },
            )
            .await??;
        Ok(())
    }

    /// The rotation's staged secret, if the pending path still holds it.
    pub(super) async fn staged_secret(
        &self,
        lineage: &LineageId,
        rid: &str,
    ) -> Result<LineageSecret, StepError> {
        match self
            .secrets
            .read_staged(&lineage.team_id, &lineage.name)
            .await?
        {
            Some(staged) if staged.secret.rotation_id == rid => Ok(staged.secret),
            _ => Err(StepError::Guard(format!(
                "the pending path of {lineage} no longer holds rotation {rid}'s key"
            ))),
        }
    }

    /// Deletes a new key whose secret did not (or may not any more) reach Vault.
    pub(super) async fn rollback(
        &self,
        lineage: &LineageId,
        rid: &str,
        new_id: &str,
    ) -> Result<(), StepError> {
        let step = about(lineage, Some(new_id), Some(rid), AuditAction::Rollback)
            .intent(vec![Change::phase_with_key(
                rid,
                RotationPhase::RollingBack,
                new_id,
            )])
            .crash_points(
                Some(Boundary::BeforeRollback),
                Some(Boundary::AfterRollback),
            );
        // The pending entry's removal is best effort; its outcome is in the audit row.
        let _unstaged = self
            .steps
            .run(
                step,
                async {
                    self.delete_if_there(new_id).await?;
                    Ok::<_, KeyApiError>(self.secrets.unstage(&lineage.team_id, &lineage.name).await)
                },
                |unstaged: &Result<(), SecretStoreError>| {
                    warn!(key_id = %new_id, "rolled back: deleted the new key; the old key is untouched");
                    let pending = match unstaged {
                        Ok(()) => String::new(),
                        Err(e) => format!("; its pending entry stays until the next rotation ({e})"),
                    };
                    Recorded::new(
                        vec![
                            Change::phase(rid, RotationPhase::RolledBack),
                            Change::SnapshotRemove {
                                key_id: new_id.to_string(),
                            },
                        ],
                        format!("deleted the new key (it never reached the lineage's path); old key untouched{pending}"),
                    )
                },
                |e: &KeyApiError| {
                    Recorded::new(
                        vec![Change::phase_failed(rid, RotationPhase::RollingBack, e)],
                        format!("{e}; retried on the next sweep"),
                    )
                },
            )
            .await??;
        Ok(())
    }

    /// Deletes a key; one MASV no longer has counts as deleted.
    pub(super) async fn delete_if_there(&self, key_id: &str) -> Result<(), KeyApiError> {
        match self.keys.delete_key(key_id).await {
            Err(e) if e.kind() == KeyErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// A staged secret's record: the phase, and the activation's intent.
fn staged_changes(rid: &str) -> Vec<Change> {
    vec![
        Change::phase(rid, RotationPhase::Stored),
        // Activation always follows: its intent rides in the same commit.
        Change::phase(rid, RotationPhase::Activating),
    ]
}
