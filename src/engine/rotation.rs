//! A rotation, step by step: create the new key inactive, store its secret,
//! activate it, prove it works. A key whose secret did not reach Vault is
//! rolled back (deleted while still inactive); the old keys are never touched
//! here: they start retiring once the new key is verified.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tracing::{info, warn};

use super::audit::{AuditAction, Outcome};
use super::executor::{Executor, LineageContext, Rotated};
use super::failpoints::Boundary;
use super::key::{CreatedKey, Key, KeyAction, KeyState, NewKey};
use super::marker;
use super::model::{
    DueReason, LineageId, RetirePhase, RetirementRecord, RotationPhase, RotationRecord, VaultView,
};
use super::ports::{KeyApi, SecretStore};
use super::ports::{KeyApiError, KeyErrorKind, SecretStoreError};
use super::records::Change;
use super::secret::LineageSecret;
use super::step::{about, Recorded, StepError};

/// How a store attempt that returned an error ended, once Vault was looked at.
#[derive(Debug)]
pub(super) enum StoreFailure {
    /// Vault does not hold the new key: the rotation rolls back.
    Missing {
        error: SecretStoreError,
        view: Option<VaultView>,
    },
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
        let rot = self.store(ctx, &rot, &created).await?;
        self.activate(ctx, &rot, true).await?;
        self.verify(ctx, &rot, Some(created.secret)).await?;
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
        Ok(stored.map(|s| VaultView {
            key_id: s.secret.key_id,
            version: s.version,
        }))
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

    /// Writes the new secret to Vault (check-and-set, read back); rolls the key
    /// back if the secret did not land. The "storing" intent is on record.
    async fn store(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
        created: &CreatedKey,
    ) -> Result<RotationRecord, StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let key = &created.key;
        let stored_at = self.steps.now();
        let value = LineageSecret {
            api_key: created.secret.clone(),
            key_id: key.id.clone(),
            key_name: lineage.name.clone(),
            team_id: lineage.team_id.clone(),
            expiry: key.expiry,
            created_at: key.created_at,
            rotated_at: stored_at,
            rotation_id: rid.to_string(),
        };
        let step = about(lineage, Some(&key.id), Some(rid), AuditAction::Store)
            .crash_points(Some(Boundary::BeforeStore), Some(Boundary::AfterStore));
        let result = self
            .steps
            .run(
                step,
                self.write_or_find(lineage, &value, rot.cas),
                |version: &u64| {
                    info!(key_id = %key.id, version, "stored the new secret in Vault");
                    Recorded::new(
                        stored_changes(lineage, rid, &key.id, *version, stored_at),
                        format!("Vault version {version}, written with check-and-set and read back"),
                    )
                },
                |failure: &StoreFailure| match failure {
                    StoreFailure::Missing { error, view } => Recorded::new(
                        vec![
                            Change::phase_failed(rid, RotationPhase::Storing, error),
                            Change::Vault {
                                lineage: lineage.clone(),
                                view: view.clone(),
                            },
                        ],
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
            Ok(version) => Ok(RotationRecord {
                phase: RotationPhase::Activating,
                vault_version: Some(version),
                stored_at: Some(stored_at),
                ..rot.clone()
            }),
            Err(failure @ StoreFailure::Missing { .. }) => {
                self.rollback(lineage, rid, &key.id).await?;
                Err(failure.into())
            }
            Err(failure) => Err(failure.into()),
        }
    }

    /// The check-and-set write; on an error, a look at Vault: the write may have
    /// landed before the error (a timeout, a failed read-back), and rolling back
    /// a stored key would strand Vault.
    async fn write_or_find(
        &self,
        lineage: &LineageId,
        value: &LineageSecret,
        cas: u64,
    ) -> Result<u64, StoreFailure> {
        let error = match self.secrets.write_verified(value, cas).await {
            Ok(version) => return Ok(version),
            Err(e) => e,
        };
        match self.secrets.read(&lineage.team_id, &lineage.name).await {
            Ok(Some(there)) if there.secret.key_id == value.key_id => Ok(there.version),
            Ok(other) => Err(StoreFailure::Missing {
                error,
                view: other.map(|s| VaultView {
                    key_id: s.secret.key_id,
                    version: s.version,
                }),
            }),
            Err(read_error) => Err(StoreFailure::Unknown { error, read_error }),
        }
    }

    /// Records a secret found in Vault after a restart (resume's "storing").
    pub(super) async fn record_found_stored(
        &self,
        rot: &RotationRecord,
        version: u64,
        stored_at: DateTime<Utc>,
    ) -> Result<RotationRecord, StepError> {
        let lineage = &rot.lineage;
        let rid = rot.rotation_id.as_str();
        let new_id = rot.new_key_id.clone().unwrap_or_default();
        info!(key_id = %new_id, version, "stored the new secret in Vault");
        let step = about(lineage, Some(&new_id), Some(rid), AuditAction::Store);
        let detail = format!("Vault version {version}, found in Vault after a restart");
        self.steps
            .record(
                stored_changes(lineage, rid, &new_id, version, stored_at),
                Some((step, Outcome::Ok, detail)),
            )
            .await?;
        Ok(RotationRecord {
            phase: RotationPhase::Activating,
            vault_version: Some(version),
            stored_at: Some(stored_at),
            ..rot.clone()
        })
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

    /// Uses the new key once (`X-API-KEY`); on success the old keys start
    /// retiring. Without the secret in hand (a resume) it is read from Vault.
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
            None => self.stored_secret(lineage, &new_id).await?,
        };
        let replaced_at = rot.stored_at.unwrap_or_else(|| self.steps.now());
        let step = about(lineage, Some(&new_id), Some(rid), AuditAction::Verify)
            .crash_points(None, Some(Boundary::AfterVerify));
        self.steps
            .run(
                step,
                self.keys.check_key(&lineage.team_id, &secret),
                |_| {
                    info!(key_id = %new_id, "verified the new key");
                    verified_changes(ctx, rid, &new_id, replaced_at)
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

    /// The new key's secret as Vault holds it, if Vault still names that key.
    async fn stored_secret(
        &self,
        lineage: &LineageId,
        new_id: &str,
    ) -> Result<SecretString, StepError> {
        match self.secrets.read(&lineage.team_id, &lineage.name).await? {
            Some(stored) if stored.secret.key_id == new_id => Ok(stored.secret.api_key),
            _ => Err(StepError::Guard(format!(
                "Vault no longer holds key {new_id} for {lineage}; not verifying"
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
        self.steps
            .run(
                step,
                self.delete_if_there(new_id),
                |_| {
                    warn!(key_id = %new_id, "rolled back: deleted the new key; the old key is untouched");
                    Recorded::new(
                        vec![
                            Change::phase(rid, RotationPhase::RolledBack),
                            Change::SnapshotRemove {
                                key_id: new_id.to_string(),
                            },
                        ],
                        "deleted the new key (its secret never reached Vault); old key untouched",
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

/// A stored secret's record: phase, the Vault view, and the activation's intent.
fn stored_changes(
    lineage: &LineageId,
    rid: &str,
    new_id: &str,
    version: u64,
    stored_at: DateTime<Utc>,
) -> Vec<Change> {
    vec![
        Change::Rotation {
            rotation_id: rid.to_string(),
            phase: RotationPhase::Stored,
            new_key_id: None,
            vault_version: Some(version),
            stored_at: Some(stored_at),
            error: None,
        },
        Change::Vault {
            lineage: lineage.clone(),
            view: Some(VaultView {
                key_id: new_id.to_string(),
                version,
            }),
        },
        // Activation always follows: its intent rides in the same commit.
        Change::phase(rid, RotationPhase::Activating),
    ]
}

/// A verified key's record, and a retirement for every other active key.
fn verified_changes(
    ctx: &LineageContext,
    rid: &str,
    new_id: &str,
    replaced_at: DateTime<Utc>,
) -> Recorded {
    let mut changes = vec![
        Change::phase(rid, RotationPhase::Verified),
        Change::Verified {
            lineage: ctx.lineage.clone(),
            key_id: new_id.to_string(),
        },
    ];
    let retiring: Vec<&Key> = ctx
        .keys
        .iter()
        .filter(|k| k.id != new_id && k.state == KeyState::Active)
        .filter(|k| ctx.retirement(&k.id).is_none())
        .collect();
    for k in &retiring {
        changes.push(Change::Retirement(RetirementRecord {
            key_id: k.id.clone(),
            lineage: ctx.lineage.clone(),
            rotation_id: Some(rid.to_string()),
            replaced_at,
            phase: RetirePhase::Waiting,
            deactivated_at: None,
        }));
    }
    let detail = if retiring.is_empty() {
        "new key works; nothing to retire".to_string()
    } else {
        let ids: Vec<&str> = retiring.iter().map(|k| k.id.as_str()).collect();
        format!("new key works; retiring {}", ids.join(", "))
    };
    Recorded::new(changes, detail)
}
