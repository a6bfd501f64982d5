//! The executor: carries out one lineage's plan, one external call at a time.
//!
//! Every mutation follows the same rhythm: record the intent, make the call,
//! record the outcome together with its audit row. What a step learns only in
//! memory (the new key's secret) is pushed to Vault before anything depends on
//! it, and a crash at any boundary leaves a phase that [`Executor::resume`]
//! knows how to finish or undo:
//!
//! ```text
//! creating ─create(inactive, marker)→ created ─→ storing ─CAS write+read back→ stored
//!    │ lost/crash: find by marker          │ crash: secret lost     │ failed: rollback
//!    └────────────→ rolling_back ←─────────┴────────────────────────┘
//! stored → activating ─activate→ active ─X-API-KEY check→ verified (old keys start retiring)
//! ```
//!
//! New keys are created *inactive* so that a key whose secret never reached Vault
//! can be deleted without ever deleting an active key (invariant 2 in docs/design.md), and no key is
//! deactivated unless a newer active key of its lineage is stored and verified
//! (invariant 1, re-checked here right before the call).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tracing::{info, warn};

use super::failpoints::{Boundary, Crashed, Failpoints};
use super::marker;
use super::model::{
    DueReason, LineageId, RetirePhase, RetirementRecord, RotationPhase, RotationRecord, VaultView,
};
use super::planner::DeactivateReason;
use super::ports::{KeyApi, SecretStore};
use super::records::{Change, Records};
use crate::clock::SharedClock;
use crate::config::Policy;
use crate::masv::{ApiKey, KeyAction, KeyState, MasvError, NewApiKey};
use crate::store::{AuditAction, NewAuditEntry, Outcome, StoreError};
use crate::vault::{LineageSecret, VaultError};

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Crashed(#[from] Crashed),
    #[error("MASV: {0}")]
    Masv(#[from] MasvError),
    #[error("Vault: {0}")]
    Vault(#[from] VaultError),
    /// The intent or outcome could not be recorded: nothing further is mutated.
    #[error("state database: {0}")]
    Store(#[from] StoreError),
    /// A safety check refused the step.
    #[error("refused: {0}")]
    Guard(String),
}

impl StepError {
    /// Whether the failure is that MASV or Vault could not be reached.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StepError::Masv(e) => e.is_unreachable(),
            StepError::Vault(e) => e.is_unreachable(),
            _ => false,
        }
    }
}

/// What one lineage sees during one sweep.
/// How a resumed rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// Finished, rolled back, or left for the next sweep with its error recorded.
    Finished,
    /// Given up because its new key can never be verified; the lineage is due again.
    Abandoned(DueReason),
}

/// Why a stored incoming key can never be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeadKey {
    Gone,
    Suspended,
    Expired,
}

impl DeadKey {
    fn as_str(self) -> &'static str {
        match self {
            DeadKey::Gone => "is gone from MASV",
            DeadKey::Suspended => "was suspended",
            DeadKey::Expired => "expired",
        }
    }

    fn due_reason(self) -> DueReason {
        match self {
            DeadKey::Gone => DueReason::CurrentGone,
            DeadKey::Suspended => DueReason::CurrentSuspended,
            DeadKey::Expired => DueReason::Expiring,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LineageContext {
    pub lineage: LineageId,
    pub policy: Policy,
    /// The lineage's keys as listed at the start of the sweep.
    pub keys: Vec<ApiKey>,
    pub vault: Option<VaultView>,
    /// Whether `vault` was read from Vault during this sweep (not from the cache).
    pub vault_fresh: bool,
    pub open_rotation: Option<RotationRecord>,
    pub retirements: Vec<RetirementRecord>,
    /// Keys of the team proved working (shared by all its lineages).
    pub verified: std::sync::Arc<HashSet<String>>,
}

impl LineageContext {
    fn key(&self, id: &str) -> Option<&ApiKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    fn retirement(&self, key_id: &str) -> Option<&RetirementRecord> {
        self.retirements.iter().find(|r| r.key_id == key_id)
    }
}

/// Carries out actions against MASV and Vault, recording each step.
pub struct Executor<'a, K, S> {
    pub keys: &'a K,
    pub secrets: &'a S,
    pub records: &'a Records,
    pub clock: &'a SharedClock,
    pub failpoints: &'a Failpoints,
}

impl<K: KeyApi, S: SecretStore> Executor<'_, K, S> {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn entry(
        &self,
        lineage: &LineageId,
        key_id: Option<&str>,
        action: AuditAction,
        outcome: Outcome,
        detail: impl Into<String>,
        rotation_id: Option<&str>,
    ) -> NewAuditEntry {
        NewAuditEntry {
            at: self.now(),
            team_id: Some(lineage.team_id.clone()),
            key_id: key_id.map(str::to_string),
            key_name: Some(lineage.name.clone()),
            action,
            outcome,
            detail: detail.into(),
            rotation_id: rotation_id.map(str::to_string),
        }
    }

    fn phase(rotation_id: &str, phase: RotationPhase) -> Change {
        Change::Rotation {
            rotation_id: rotation_id.to_string(),
            phase,
            new_key_id: None,
            vault_version: None,
            stored_at: None,
            error: None,
        }
    }

    fn phase_failed(
        rotation_id: &str,
        phase: RotationPhase,
        error: &dyn std::fmt::Display,
    ) -> Change {
        Change::Rotation {
            rotation_id: rotation_id.to_string(),
            phase,
            new_key_id: None,
            vault_version: None,
            stored_at: None,
            error: Some(error.to_string()),
        }
    }

    // ---------------------------------------------------------------- rotation

    /// Starts a new rotation of the lineage.
    #[tracing::instrument(skip_all, fields(team_id = %ctx.lineage.team_id, key_name = %ctx.lineage.name, rotation_id, reason = %reason))]
    pub async fn rotate(
        &self,
        ctx: &LineageContext,
        reason: DueReason,
        cas: u64,
    ) -> Result<(), StepError> {
        let rotation_id = ulid::Ulid::new().to_string();
        tracing::Span::current().record("rotation_id", rotation_id.as_str());
        let lineage = &ctx.lineage;

        // Look at Vault right before acting (unless this sweep just did): the write
        // must replace what is there now. Check-and-set still guards the write itself.
        let fresh_view = if ctx.vault_fresh {
            ctx.vault.clone()
        } else {
            let fresh = self.secrets.read(&lineage.team_id, &lineage.name).await?;
            fresh.as_ref().map(|s| VaultView {
                key_id: s.secret.key_id.clone(),
                version: s.version,
            })
        };
        if fresh_view.as_ref().map_or(0, |v| v.version) != cas {
            self.records
                .apply(
                    vec![Change::Vault {
                        lineage: lineage.clone(),
                        view: fresh_view.clone(),
                    }],
                    vec![],
                )
                .await?;
            return Err(StepError::Guard(format!(
                "Vault changed under {lineage} (expected version {cas}); re-planned on the next sweep"
            )));
        }
        let old_key_id = fresh_view.as_ref().map(|v| v.key_id.clone());
        let now = self.now();
        let record = RotationRecord {
            rotation_id: rotation_id.clone(),
            lineage: lineage.clone(),
            reason,
            old_key_id: old_key_id.clone(),
            new_key_id: None,
            phase: RotationPhase::Creating,
            cas,
            vault_version: None,
            started_at: now,
            stored_at: None,
            last_error: None,
        };
        self.records
            .apply(vec![Change::StartRotation(record.clone())], vec![])
            .await?;
        self.failpoints.check(Boundary::BeforeCreate)?;

        let expiry = now
            + chrono::Duration::from_std(ctx.policy.new_key_lifetime)
                .unwrap_or(chrono::Duration::MAX);
        let new = NewApiKey {
            name: lineage.name.clone(),
            description: marker::description(&rotation_id),
            expiry: Some(expiry),
            state: KeyAction::Inactive,
        };
        let created = match self.keys.create_key(&lineage.team_id, &new).await {
            Ok(created) => created,
            Err(e @ MasvError::OutcomeUnknown { .. }) => {
                // The key may exist. Stay in "creating": the next sweep's list finds it by its marker.
                let detail = format!("{e}; the next sweep looks for the key by its marker");
                self.records
                    .apply(
                        vec![Self::phase_failed(
                            &rotation_id,
                            RotationPhase::Creating,
                            &e,
                        )],
                        vec![self.entry(
                            lineage,
                            None,
                            AuditAction::Create,
                            Outcome::Failed,
                            detail,
                            Some(&rotation_id),
                        )],
                    )
                    .await?;
                return Err(e.into());
            }
            Err(e) => {
                self.records
                    .apply(
                        vec![Self::phase_failed(
                            &rotation_id,
                            RotationPhase::RolledBack,
                            &e,
                        )],
                        vec![self.entry(
                            lineage,
                            None,
                            AuditAction::Create,
                            Outcome::Failed,
                            e.to_string(),
                            Some(&rotation_id),
                        )],
                    )
                    .await?;
                return Err(e.into());
            }
        };
        self.failpoints.check(Boundary::AfterCreate)?;
        let new_id = created.key.id.clone();
        info!(key_id = %new_id, "created the new key (inactive until its secret is stored)");
        self.records
            .apply(
                vec![
                    Change::Rotation {
                        rotation_id: rotation_id.clone(),
                        phase: RotationPhase::Created,
                        new_key_id: Some(new_id.clone()),
                        vault_version: None,
                        stored_at: None,
                        error: None,
                    },
                    Change::SnapshotKey {
                        team_id: lineage.team_id.clone(),
                        key: created.key.clone(),
                    },
                    // The next step's intent rides in the same commit.
                    Self::phase(&rotation_id, RotationPhase::Storing),
                ],
                vec![self.entry(
                    lineage,
                    Some(&new_id),
                    AuditAction::Create,
                    Outcome::Ok,
                    format!(
                        "created inactive, expires {}, replacing {} ({reason})",
                        crate::masv::time::format(created.key.expiry),
                        old_key_id.as_deref().unwrap_or("no stored key")
                    ),
                    Some(&rotation_id),
                )],
            )
            .await?;
        let record = RotationRecord {
            new_key_id: Some(new_id),
            phase: RotationPhase::Storing,
            ..record
        };
        self.store_new(ctx, &record, created.secret, &created.key)
            .await
    }

    /// Writes the new secret to Vault (CAS, read back); rolls back if it cannot land.
    /// The "storing" intent was recorded with the create's outcome.
    async fn store_new(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
        secret: SecretString,
        key: &ApiKey,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let new_id = key.id.clone();
        self.failpoints.check(Boundary::BeforeStore)?;
        let stored_at = self.now();
        let value = LineageSecret {
            api_key: secret.clone(),
            key_id: new_id.clone(),
            key_name: lineage.name.clone(),
            team_id: lineage.team_id.clone(),
            expiry: key.expiry,
            created_at: key.created_at,
            rotated_at: stored_at,
            rotation_id: rid.to_string(),
        };
        let version = match self.secrets.write_verified(&value, rot.cas).await {
            Ok(version) => {
                self.failpoints.check(Boundary::AfterStore)?;
                version
            }
            Err(e) => {
                // The write may have landed before the error (a timeout, a failed read-back).
                // Look before undoing anything: rolling back a stored key would strand Vault.
                match self.secrets.read(&lineage.team_id, &lineage.name).await {
                    Ok(Some(now_there)) if now_there.secret.key_id == new_id => now_there.version,
                    Ok(other) => {
                        let view = other.map(|s| VaultView {
                            key_id: s.secret.key_id,
                            version: s.version,
                        });
                        self.records
                            .apply(
                                vec![
                                    Self::phase_failed(rid, RotationPhase::Storing, &e),
                                    Change::Vault {
                                        lineage: lineage.clone(),
                                        view,
                                    },
                                ],
                                vec![self.entry(
                                    lineage,
                                    Some(&new_id),
                                    AuditAction::Store,
                                    Outcome::Failed,
                                    e.to_string(),
                                    Some(rid),
                                )],
                            )
                            .await?;
                        self.rollback(lineage, rid, &new_id).await?;
                        return Err(e.into());
                    }
                    Err(read_err) => {
                        let detail = format!("{e}; Vault unreadable afterwards ({read_err}): resumed on the next sweep");
                        self.records
                            .apply(
                                vec![Self::phase_failed(rid, RotationPhase::Storing, &e)],
                                vec![self.entry(
                                    lineage,
                                    Some(&new_id),
                                    AuditAction::Store,
                                    Outcome::Failed,
                                    detail,
                                    Some(rid),
                                )],
                            )
                            .await?;
                        return Err(e.into());
                    }
                }
            }
        };
        self.record_stored(
            lineage,
            rid,
            &new_id,
            version,
            stored_at,
            "written with check-and-set and read back",
        )
        .await?;
        let rot = RotationRecord {
            phase: RotationPhase::Activating,
            vault_version: Some(version),
            stored_at: Some(stored_at),
            ..rot.clone()
        };
        self.activate_and_verify(ctx, &rot, Some(secret)).await
    }

    async fn record_stored(
        &self,
        lineage: &LineageId,
        rid: &str,
        new_id: &str,
        version: u64,
        stored_at: DateTime<Utc>,
        how: &str,
    ) -> Result<(), StepError> {
        info!(key_id = %new_id, version, "stored the new secret in Vault");
        self.records
            .apply(
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
                    Self::phase(rid, RotationPhase::Activating),
                ],
                vec![self.entry(
                    lineage,
                    Some(new_id),
                    AuditAction::Store,
                    Outcome::Ok,
                    format!("Vault version {version}, {how}"),
                    Some(rid),
                )],
            )
            .await?;
        Ok(())
    }

    /// Activates the stored key, then proves it works. `rot.phase` says whether
    /// the "activating" intent is already on record.
    async fn activate_and_verify(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
        secret: Option<SecretString>,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let new_id = rot
            .new_key_id
            .clone()
            .ok_or_else(|| StepError::Guard(format!("rotation {rid} has no new key")))?;
        if rot.phase != RotationPhase::Activating {
            self.records
                .apply(vec![Self::phase(rid, RotationPhase::Activating)], vec![])
                .await?;
        }
        self.failpoints.check(Boundary::BeforeActivate)?;
        if let Err(e) = self.keys.set_key_state(&new_id, KeyAction::Active).await {
            self.records
                .apply(
                    vec![Self::phase_failed(rid, RotationPhase::Activating, &e)],
                    vec![self.entry(
                        lineage,
                        Some(&new_id),
                        AuditAction::Activate,
                        Outcome::Failed,
                        e.to_string(),
                        Some(rid),
                    )],
                )
                .await?;
            return Err(e.into());
        }
        self.failpoints.check(Boundary::AfterActivate)?;
        self.records
            .apply(
                vec![
                    Self::phase(rid, RotationPhase::Active),
                    Change::SnapshotState {
                        key_id: new_id.clone(),
                        state: KeyState::Active,
                    },
                ],
                vec![self.entry(
                    lineage,
                    Some(&new_id),
                    AuditAction::Activate,
                    Outcome::Ok,
                    "new key activated",
                    Some(rid),
                )],
            )
            .await?;
        self.verify(ctx, rot, &new_id, secret).await
    }

    /// Uses the new key once (`X-API-KEY`); on success the old keys start retiring.
    async fn verify(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
        new_id: &str,
        secret: Option<SecretString>,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let secret = match secret {
            Some(s) => s,
            None => match self.secrets.read(&lineage.team_id, &lineage.name).await? {
                Some(stored) if stored.secret.key_id == new_id => stored.secret.api_key,
                _ => {
                    return Err(StepError::Guard(format!(
                        "Vault no longer holds key {new_id} for {lineage}; not verifying"
                    )))
                }
            },
        };
        if let Err(e) = self.keys.check_key(&lineage.team_id, &secret).await {
            self.records
                .apply(
                    vec![Self::phase_failed(rid, RotationPhase::Active, &e)],
                    vec![self.entry(
                        lineage,
                        Some(new_id),
                        AuditAction::Verify,
                        Outcome::Failed,
                        format!("{e}; retried on the next sweep, old key kept"),
                        Some(rid),
                    )],
                )
                .await?;
            return Err(e.into());
        }
        self.failpoints.check(Boundary::AfterVerify)?;
        let replaced_at = rot.stored_at.unwrap_or_else(|| self.now());
        let mut changes = vec![
            Self::phase(rid, RotationPhase::Verified),
            Change::Verified {
                lineage: lineage.clone(),
                key_id: new_id.to_string(),
            },
        ];
        let mut retiring = Vec::new();
        for k in &ctx.keys {
            if k.id != new_id && k.state == KeyState::Active && ctx.retirement(&k.id).is_none() {
                retiring.push(k.id.clone());
                changes.push(Change::Retirement(RetirementRecord {
                    key_id: k.id.clone(),
                    lineage: lineage.clone(),
                    rotation_id: Some(rid.to_string()),
                    replaced_at,
                    phase: RetirePhase::Waiting,
                    deactivated_at: None,
                }));
            }
        }
        let detail = if retiring.is_empty() {
            "new key works; nothing to retire".to_string()
        } else {
            format!("new key works; retiring {}", retiring.join(", "))
        };
        info!(key_id = %new_id, "verified the new key");
        self.records
            .apply(
                changes,
                vec![self.entry(
                    lineage,
                    Some(new_id),
                    AuditAction::Verify,
                    Outcome::Ok,
                    detail,
                    Some(rid),
                )],
            )
            .await?;
        Ok(())
    }

    /// Deletes a new key whose secret did not (or may not any more) reach Vault.
    async fn rollback(
        &self,
        lineage: &LineageId,
        rid: &str,
        new_id: &str,
    ) -> Result<(), StepError> {
        self.records
            .apply(
                vec![Change::Rotation {
                    rotation_id: rid.to_string(),
                    phase: RotationPhase::RollingBack,
                    new_key_id: Some(new_id.to_string()),
                    vault_version: None,
                    stored_at: None,
                    error: None,
                }],
                vec![],
            )
            .await?;
        self.failpoints.check(Boundary::BeforeRollback)?;
        match self.keys.delete_key(new_id).await {
            Ok(()) | Err(MasvError::NotFound { .. }) => {
                self.failpoints.check(Boundary::AfterRollback)?;
                warn!(key_id = %new_id, "rolled back: deleted the new key; the old key is untouched");
                self.records
                    .apply(
                        vec![Self::phase(rid, RotationPhase::RolledBack), Change::SnapshotRemove { key_id: new_id.to_string() }],
                        vec![self.entry(lineage, Some(new_id), AuditAction::Rollback, Outcome::Ok, "deleted the new key (its secret never reached Vault); old key untouched", Some(rid))],
                    )
                    .await?;
                Ok(())
            }
            Err(e) => {
                self.records
                    .apply(
                        vec![Self::phase_failed(rid, RotationPhase::RollingBack, &e)],
                        vec![self.entry(
                            lineage,
                            Some(new_id),
                            AuditAction::Rollback,
                            Outcome::Failed,
                            format!("{e}; retried on the next sweep"),
                            Some(rid),
                        )],
                    )
                    .await?;
                Err(e.into())
            }
        }
    }

    /// Finishes or undoes a rotation left unfinished by a crash or a failed step.
    #[tracing::instrument(skip_all, fields(team_id = %ctx.lineage.team_id, key_name = %ctx.lineage.name, rotation_id = %rot.rotation_id, phase = %rot.phase))]
    pub async fn resume(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
    ) -> Result<Resumed, StepError> {
        let rid = rot.rotation_id.as_str();
        info!("resuming an unfinished rotation");
        if rot.phase.secret_stored() {
            let new_id = rot.new_key_id.clone().unwrap_or_default();
            if let Some(why) = self.dead_incoming(ctx, &new_id) {
                return self.abandon(ctx, rid, &new_id, why).await;
            }
        }
        self.resume_phase(ctx, rot).await
    }

    /// Why an incoming key whose secret reached Vault can never be verified, if so.
    /// Without this check a rotation whose new key expired (or was suspended or
    /// deleted by someone) before it could be verified would be resumed forever.
    fn dead_incoming(&self, ctx: &LineageContext, new_id: &str) -> Option<DeadKey> {
        match ctx.key(new_id) {
            None => Some(DeadKey::Gone),
            Some(k) if k.state == KeyState::Suspended => Some(DeadKey::Suspended),
            Some(k) if k.expiry.is_some_and(|e| e <= self.now()) => Some(DeadKey::Expired),
            Some(_) => None,
        }
    }

    /// Gives up a rotation whose stored new key can never work. Nothing in MASV or
    /// Vault is changed: the old keys stay as they are (invariant 1), the dead key's
    /// version stays in Vault's history, and an inactive dead key is handed to the
    /// normal deletion path so it is not left behind (invariant 3).
    async fn abandon(
        &self,
        ctx: &LineageContext,
        rid: &str,
        new_id: &str,
        why: DeadKey,
    ) -> Result<Resumed, StepError> {
        let lineage = &ctx.lineage;
        let now = self.now();
        let mut changes = vec![Self::phase_failed(
            rid,
            RotationPhase::Abandoned,
            &format!("the new key {}", why.as_str()),
        )];
        let mut disposal = "";
        match ctx.key(new_id).map(|k| k.state) {
            None => changes.push(Change::SnapshotRemove {
                key_id: new_id.to_string(),
            }),
            Some(KeyState::Inactive) => {
                // Created inactive by the daemon and never served: deleted after
                // `delete_after`, like a key the daemon deactivated.
                disposal = "; it stays inactive and is deleted after delete_after";
                changes.push(Change::Retirement(RetirementRecord {
                    key_id: new_id.to_string(),
                    lineage: lineage.clone(),
                    rotation_id: Some(rid.to_string()),
                    replaced_at: now,
                    phase: RetirePhase::Inactive,
                    deactivated_at: Some(now),
                }));
            }
            // An active dead key retires once its replacement is verified; a
            // suspended one cannot be toggled and is reported.
            Some(_) => {}
        }
        warn!(key_id = %new_id, reason = why.as_str(), "abandoned the rotation: its new key can never be verified");
        self.records
            .apply(
                changes,
                vec![self.entry(
                    lineage,
                    Some(new_id),
                    AuditAction::Abandon,
                    Outcome::Ok,
                    format!(
                        "the new key {} before it was verified; old keys untouched{disposal}; a new rotation replaces it",
                        why.as_str()
                    ),
                    Some(rid),
                )],
            )
            .await?;
        Ok(Resumed::Abandoned(why.due_reason()))
    }

    /// Starts the rotation that replaces an abandoned one, in the same sweep, so
    /// Vault does not keep pointing at a dead key until the next one.
    pub async fn replace_abandoned(
        &self,
        ctx: &LineageContext,
        reason: DueReason,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let view = self
            .secrets
            .read(&lineage.team_id, &lineage.name)
            .await?
            .map(|s| VaultView {
                key_id: s.secret.key_id.clone(),
                version: s.version,
            });
        let cas = view.as_ref().map_or(0, |v| v.version);
        let fresh = LineageContext {
            vault: view,
            vault_fresh: true,
            open_rotation: None,
            ..ctx.clone()
        };
        self.rotate(&fresh, reason, cas).await
    }

    async fn resume_phase(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
    ) -> Result<Resumed, StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let finished = match rot.phase {
            RotationPhase::Creating => {
                let found = ctx
                    .keys
                    .iter()
                    .find(|k| marker::rotation_id(&k.description) == Some(rid));
                match found {
                    Some(k) => {
                        // Created, but its secret was never seen (lost response or crash): undo.
                        self.records
                            .apply(
                                vec![Change::Rotation {
                                    rotation_id: rid.to_string(),
                                    phase: RotationPhase::Created,
                                    new_key_id: Some(k.id.clone()),
                                    vault_version: None,
                                    stored_at: None,
                                    error: None,
                                }],
                                vec![self.entry(lineage, Some(&k.id), AuditAction::Create, Outcome::Ok, "found by its marker after the create response was lost; its secret is unknown, so it is rolled back", Some(rid))],
                            )
                            .await?;
                        let k_id = k.id.clone();
                        self.rollback(lineage, rid, &k_id).await
                    }
                    None => {
                        self.records
                            .apply(
                                vec![Self::phase_failed(
                                    rid,
                                    RotationPhase::RolledBack,
                                    &"no key was created",
                                )],
                                vec![self.entry(
                                    lineage,
                                    None,
                                    AuditAction::Rollback,
                                    Outcome::Ok,
                                    "no key carries this rotation's marker: nothing was created",
                                    Some(rid),
                                )],
                            )
                            .await?;
                        Ok(())
                    }
                }
            }
            RotationPhase::Created | RotationPhase::RollingBack => {
                let new_id = rot.new_key_id.clone().unwrap_or_default();
                self.rollback(lineage, rid, &new_id).await
            }
            RotationPhase::Storing => {
                let new_id = rot.new_key_id.clone().unwrap_or_default();
                match self.secrets.read(&lineage.team_id, &lineage.name).await? {
                    Some(stored) if stored.secret.key_id == new_id => {
                        let stored_at = stored.secret.rotated_at;
                        self.record_stored(
                            lineage,
                            rid,
                            &new_id,
                            stored.version,
                            stored_at,
                            "found in Vault after a restart",
                        )
                        .await?;
                        if let Some(why) = self.dead_incoming(ctx, &new_id) {
                            return self.abandon(ctx, rid, &new_id, why).await;
                        }
                        let rot = RotationRecord {
                            phase: RotationPhase::Activating,
                            vault_version: Some(stored.version),
                            stored_at: Some(stored_at),
                            ..rot.clone()
                        };
                        self.activate_and_verify(ctx, &rot, None).await
                    }
                    _ => {
                        self.records
                            .apply(
                                vec![],
                                vec![self.entry(
                                    lineage,
                                    Some(&new_id),
                                    AuditAction::Store,
                                    Outcome::Failed,
                                    "the new secret is not in Vault after a restart",
                                    Some(rid),
                                )],
                            )
                            .await?;
                        self.rollback(lineage, rid, &new_id).await
                    }
                }
            }
            RotationPhase::Stored | RotationPhase::Activating => {
                self.activate_and_verify(ctx, rot, None).await
            }
            RotationPhase::Active => {
                let new_id = rot.new_key_id.clone().unwrap_or_default();
                if ctx
                    .key(&new_id)
                    .is_some_and(|k| k.state == KeyState::Inactive)
                {
                    // Deactivated by someone since we activated it: activate again.
                    self.activate_and_verify(ctx, rot, None).await
                } else {
                    self.verify(ctx, rot, &new_id, None).await
                }
            }
            RotationPhase::Verified | RotationPhase::RolledBack | RotationPhase::Abandoned => {
                Ok(())
            }
        };
        finished.map(|()| Resumed::Finished)
    }

    // -------------------------------------------------------------- retirement

    /// Deactivates a replaced key, after re-checking invariant 1.
    #[tracing::instrument(skip_all, fields(team_id = %ctx.lineage.team_id, key_name = %ctx.lineage.name, key_id = %key_id))]
    pub async fn deactivate(
        &self,
        ctx: &LineageContext,
        key_id: &str,
        reason: DeactivateReason,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let current = ctx.vault.as_ref().map(|v| v.key_id.as_str());
        let guard_ok = current.is_some_and(|c| {
            c != key_id
                && ctx.verified.contains(c)
                && ctx.key(c).is_some_and(|k| k.state == KeyState::Active)
        });
        let Some(r) = ctx.retirement(key_id).filter(|_| guard_ok) else {
            return Err(StepError::Guard(format!(
                "not deactivating {key_id}: no verified, active replacement in Vault"
            )));
        };
        let rotation_id = r.rotation_id.clone();
        let with_phase = |phase, deactivated_at| {
            Change::Retirement(RetirementRecord {
                phase,
                deactivated_at,
                ..r.clone()
            })
        };
        self.records
            .apply(vec![with_phase(RetirePhase::Deactivating, None)], vec![])
            .await?;
        self.failpoints.check(Boundary::BeforeDeactivate)?;
        let why = match reason {
            DeactivateReason::GraceAndIdle => "grace period over and idle",
            DeactivateReason::MaxOverlap => "max_overlap reached",
        };
        match self.keys.set_key_state(key_id, KeyAction::Inactive).await {
            Ok(()) => {
                self.failpoints.check(Boundary::AfterDeactivate)?;
                info!(reason = why, "deactivated the replaced key");
                self.records
                    .apply(
                        vec![
                            with_phase(RetirePhase::Inactive, Some(self.now())),
                            Change::SnapshotState {
                                key_id: key_id.to_string(),
                                state: KeyState::Inactive,
                            },
                        ],
                        vec![self.entry(
                            lineage,
                            Some(key_id),
                            AuditAction::Deactivate,
                            Outcome::Ok,
                            format!("{why}; replaced by {}", current.unwrap_or("?")),
                            rotation_id.as_deref(),
                        )],
                    )
                    .await?;
                Ok(())
            }
            Err(e) => {
                let back = match e {
                    MasvError::Conflict { .. } => RetirePhase::Waiting,
                    MasvError::NotFound { .. } => RetirePhase::Deleted,
                    _ => RetirePhase::Deactivating,
                };
                self.records
                    .apply(
                        vec![with_phase(back, None)],
                        vec![self.entry(
                            lineage,
                            Some(key_id),
                            AuditAction::Deactivate,
                            Outcome::Failed,
                            e.to_string(),
                            rotation_id.as_deref(),
                        )],
                    )
                    .await?;
                Err(e.into())
            }
        }
    }

    /// Deletes a key the daemon deactivated (or an inactive orphan it created).
    #[tracing::instrument(skip_all, fields(team_id = %ctx.lineage.team_id, key_name = %ctx.lineage.name, key_id = %key_id))]
    pub async fn delete(
        &self,
        ctx: &LineageContext,
        key_id: &str,
        orphan_of: Option<&str>,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        if ctx
            .key(key_id)
            .is_some_and(|k| k.state != KeyState::Inactive)
        {
            return Err(StepError::Guard(format!(
                "not deleting {key_id}: it is not inactive"
            )));
        }
        let now = self.now();
        let record = match (ctx.retirement(key_id), orphan_of) {
            (Some(r), _) if r.deactivated_at.is_some() => r.clone(),
            // An orphan: created inactive by the daemon and never stored.
            (_, Some(rid)) => RetirementRecord {
                key_id: key_id.to_string(),
                lineage: lineage.clone(),
                rotation_id: Some(rid.to_string()),
                replaced_at: now,
                phase: RetirePhase::Deleting,
                deactivated_at: Some(now),
            },
            _ => {
                return Err(StepError::Guard(format!(
                    "not deleting {key_id}: the daemon did not deactivate it"
                )))
            }
        };
        let action = if orphan_of.is_some() {
            AuditAction::CleanupOrphan
        } else {
            AuditAction::Delete
        };
        let rotation_id = record.rotation_id.clone();
        let with_phase = |phase| {
            Change::Retirement(RetirementRecord {
                phase,
                ..record.clone()
            })
        };
        self.records
            .apply(vec![with_phase(RetirePhase::Deleting)], vec![])
            .await?;
        self.failpoints.check(Boundary::BeforeDelete)?;
        match self.keys.delete_key(key_id).await {
            Ok(()) | Err(MasvError::NotFound { .. }) => {
                self.failpoints.check(Boundary::AfterDelete)?;
                info!("deleted the key");
                let detail = match orphan_of {
                    Some(rid) => format!(
                        "inactive key created by rotation {rid} whose secret never reached Vault"
                    ),
                    None => "deactivated by the daemon delete_after ago".to_string(),
                };
                self.records
                    .apply(
                        vec![
                            with_phase(RetirePhase::Deleted),
                            Change::SnapshotRemove {
                                key_id: key_id.to_string(),
                            },
                        ],
                        vec![self.entry(
                            lineage,
                            Some(key_id),
                            action,
                            Outcome::Ok,
                            detail,
                            rotation_id.as_deref(),
                        )],
                    )
                    .await?;
                Ok(())
            }
            Err(e) => {
                self.records
                    .apply(
                        vec![],
                        vec![self.entry(
                            lineage,
                            Some(key_id),
                            action,
                            Outcome::Failed,
                            e.to_string(),
                            rotation_id.as_deref(),
                        )],
                    )
                    .await?;
                Err(e.into())
            }
        }
    }

    /// Starts tracking an extra active key so it retires like a replaced one.
    pub async fn track(&self, ctx: &LineageContext, key_id: &str) -> Result<(), StepError> {
        self.records
            .apply(
                vec![Change::Retirement(RetirementRecord {
                    key_id: key_id.to_string(),
                    lineage: ctx.lineage.clone(),
                    rotation_id: None,
                    replaced_at: self.now(),
                    phase: RetirePhase::Waiting,
                    deactivated_at: None,
                })],
                vec![],
            )
            .await?;
        Ok(())
    }

    /// Closes a retirement whose key MASV no longer lists.
    pub async fn forget(&self, ctx: &LineageContext, key_id: &str) -> Result<(), StepError> {
        let Some(r) = ctx.retirement(key_id) else {
            return Ok(());
        };
        // A delete was sent but its outcome never recorded (crash): the key is gone, so it happened.
        let audit = if r.phase == RetirePhase::Deleting {
            vec![self.entry(
                &ctx.lineage,
                Some(key_id),
                AuditAction::Delete,
                Outcome::Ok,
                "gone after the delete was sent (recorded after a restart)",
                r.rotation_id.as_deref(),
            )]
        } else {
            vec![]
        };
        self.records
            .apply(
                vec![Change::Retirement(RetirementRecord {
                    phase: RetirePhase::Deleted,
                    ..r.clone()
                })],
                audit,
            )
            .await?;
        Ok(())
    }
}
