//! Finishing or undoing a rotation left unfinished by a crash or a failed step.
//!
//! The planner's recovery rules ([`plan_recovery`]) decide what to do from the
//! recorded phase, the listed keys and, when the phase leaves it in doubt, what
//! Vault holds; this file only carries the steps out, in order.

use tracing::{info, warn};

use super::audit::{AuditAction, Outcome};
use super::executor::{Executor, LineageContext, Rotated};
use super::key::KeyState;
use super::model::{
    DueReason, RetirePhase, RetirementRecord, RotationPhase, RotationRecord, VaultView,
};
use super::planner::recovery::{self, plan_recovery, DeadKey, Look, RecoveryStep, VaultHolding};
use super::ports::{KeyApi, SecretStore};
use super::records::Change;
use super::step::{about, StepError};

impl<K: KeyApi, S: SecretStore> Executor<'_, K, S> {
    /// Finishes or undoes a rotation left unfinished by a crash or a failed step.
    #[tracing::instrument(skip_all, fields(team_id = %ctx.lineage.team_id, key_name = %ctx.lineage.name, rotation_id = %rot.rotation_id, phase = %rot.phase))]
    pub async fn resume(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
    ) -> Result<Option<Rotated>, StepError> {
        info!("resuming an unfinished rotation");
        let vault = match recovery::needs_vault(rot) {
            Some(look) => self.holding(ctx, look).await?,
            None => None,
        };
        let steps = plan_recovery(rot, &ctx.keys, vault.as_ref(), self.steps.now());
        let mut rot = rot.clone();
        let mut rotated = None;
        for step in steps {
            rotated = self.recover(ctx, &mut rot, step).await?.or(rotated);
        }
        Ok(rotated)
    }

    /// Carries out one recovery step; `rot` follows what the steps record. A
    /// step that completes a rotation (a verify, or a replacement) says so.
    async fn recover(
        &self,
        ctx: &LineageContext,
        rot: &mut RotationRecord,
        step: RecoveryStep,
    ) -> Result<Option<Rotated>, StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.clone();
        let done = match step {
            RecoveryStep::RecordFound { key_id } => {
                let audit = about(lineage, Some(&key_id), Some(&rid), AuditAction::Create);
                let detail = "found by its marker after the create response was lost; its secret is unknown, so it is rolled back";
                let change = Change::phase_with_key(&rid, RotationPhase::Created, &key_id);
                self.steps
                    .record(vec![change], Some((audit, Outcome::Ok, detail.into())))
                    .await
            }
            RecoveryStep::NothingCreated => {
                let audit = about(lineage, None, Some(&rid), AuditAction::Rollback);
                let detail = "no key carries this rotation's marker: nothing was created";
                let change =
                    Change::phase_failed(&rid, RotationPhase::RolledBack, &"no key was created");
                self.steps
                    .record(vec![change], Some((audit, Outcome::Ok, detail.into())))
                    .await
            }
            RecoveryStep::SecretMissing { key_id } => {
                let audit = about(lineage, Some(&key_id), Some(&rid), AuditAction::Stage);
                let detail = "the new secret is not at the pending path after a restart";
                self.steps
                    .record(vec![], Some((audit, Outcome::Failed, detail.into())))
                    .await
            }
            RecoveryStep::RollBack { key_id } => self.rollback(lineage, &rid, &key_id).await,
            RecoveryStep::RecordStaged { version } => {
                self.record_found_staged(rot, version).await?;
                rot.phase = RotationPhase::Activating;
                Ok(())
            }
            RecoveryStep::Abandon { key_id, why } => self.abandon(ctx, &rid, &key_id, why).await,
            RecoveryStep::Replace { reason } => {
                return self.replace_abandoned(ctx, reason).await.map(Some)
            }
            RecoveryStep::Activate { intent_recorded } => {
                self.activate(ctx, rot, intent_recorded).await
            }
            RecoveryStep::Verify => self.verify(ctx, rot, None).await,
            RecoveryStep::Promote { cas } => {
                let staged = self.staged_secret(lineage, &rid).await?;
                *rot = self.promote(ctx, rot, staged, cas).await?;
                return Ok(Some(Rotated::of(rot)));
            }
            RecoveryStep::RecordPromoted {
                version,
                promoted_at,
            } => {
                self.record_promoted(ctx, rot, version, promoted_at).await?;
                return Ok(Some(Rotated::of(rot)));
            }
        };
        done.map(|()| None)
    }

    /// What Vault holds now where the recovery rules look.
    async fn holding(
        &self,
        ctx: &LineageContext,
        look: Look,
    ) -> Result<Option<VaultHolding>, StepError> {
        let lineage = &ctx.lineage;
        let stored = match look {
            Look::Staged => {
                self.secrets
                    .read_staged(&lineage.team_id, &lineage.name)
                    .await?
            }
            Look::Lineage => self.secrets.read(&lineage.team_id, &lineage.name).await?,
        };
        Ok(stored.map(|s| VaultHolding {
            key_id: s.secret.key_id,
            rotation_id: s.secret.rotation_id,
            version: s.version,
            rotated_at: s.secret.rotated_at,
        }))
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
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let now = self.steps.now();
        let mut changes = vec![Change::phase_failed(
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
        let detail = format!(
            "the new key {} before it was verified; old keys untouched{disposal}; a new rotation replaces it",
            why.as_str()
        );
        let audit = about(lineage, Some(new_id), Some(rid), AuditAction::Abandon);
        self.steps
            .record(changes, Some((audit, Outcome::Ok, detail)))
            .await
    }

    /// Starts the rotation that replaces an abandoned one, in the same sweep, so
    /// Vault does not keep pointing at a dead key until the next one.
    async fn replace_abandoned(
        &self,
        ctx: &LineageContext,
        reason: DueReason,
    ) -> Result<Rotated, StepError> {
        let view: Option<VaultView> = self.vault_view(&ctx.lineage).await?;
        let cas = view.as_ref().map_or(0, |v| v.version);
        let fresh = LineageContext {
            vault: view,
            vault_fresh: true,
            open_rotation: None,
            ..ctx.clone()
        };
        self.rotate(&fresh, reason, cas).await
    }
}
