//! Retiring replaced keys: deactivate once the planner says so (after grace and
//! idle, or at `max_overlap`), delete `delete_after` later; start tracking an
//! extra active key; close a retirement whose key is gone. The guards of
//! invariants 1 and 2 are re-checked here right before each call.

use tracing::info;

use super::audit::{AuditAction, Outcome};
use super::executor::{Executor, LineageContext};
use super::failpoints::Boundary;
use super::key::{KeyAction, KeyState};
use super::model::{RetirePhase, RetirementRecord};
use super::planner::{proven, DeactivateReason};
use super::ports::{KeyApi, SecretStore};
use super::ports::{KeyApiError, KeyErrorKind};
use super::records::Change;
use super::step::{about, Recorded, StepError};

impl<K: KeyApi, S: SecretStore> Executor<'_, K, S> {
    /// Deactivates a replaced key, after re-checking invariant 1.
    #[tracing::instrument(skip_all, fields(team_id = %ctx.lineage.team_id, key_name = %ctx.lineage.name, key_id = %key_id))]
    pub async fn deactivate(
        &self,
        ctx: &LineageContext,
        key_id: &str,
        reason: DeactivateReason,
    ) -> Result<(), StepError> {
        let current = ctx.vault.as_ref().map(|v| v.key_id.as_str());
        // Verified here, or by its provenance (takeover rule R1).
        let guard_ok = current.is_some_and(|c| {
            c != key_id
                && ctx.key(c).is_some_and(|k| {
                    k.state == KeyState::Active
                        && (ctx.verified.contains(c)
                            || ctx.vault.as_ref().is_some_and(|v| proven(k, v)))
                })
        });
        let Some(r) = ctx.retirement(key_id).filter(|_| guard_ok) else {
            return Err(StepError::Guard(format!(
                "not deactivating {key_id}: no verified, active replacement in Vault"
            )));
        };
        let with_phase = |phase, deactivated_at| {
            Change::Retirement(RetirementRecord {
                phase,
                deactivated_at,
                ..r.clone()
            })
        };
        let why = reason.words();
        let step = about(
            &ctx.lineage,
            Some(key_id),
            r.rotation_id.as_deref(),
            AuditAction::Deactivate,
        )
        .intent(vec![with_phase(RetirePhase::Deactivating, None)])
        .crash_points(
            Some(Boundary::BeforeDeactivate),
            Some(Boundary::AfterDeactivate),
        );
        self.steps
            .run(
                step,
                self.keys.set_key_state(key_id, KeyAction::Inactive),
                |_| {
                    info!(reason = why, "deactivated the replaced key");
                    Recorded::new(
                        vec![
                            with_phase(RetirePhase::Inactive, Some(self.steps.now())),
                            Change::SnapshotState {
                                key_id: key_id.to_string(),
                                state: KeyState::Inactive,
                            },
                        ],
                        format!("{why}; replaced by {}", current.unwrap_or("?")),
                    )
                },
                |e: &KeyApiError| {
                    let back = match e.kind() {
                        KeyErrorKind::Conflict => RetirePhase::Waiting,
                        KeyErrorKind::NotFound => RetirePhase::Deleted,
                        _ => RetirePhase::Deactivating,
                    };
                    Recorded::new(vec![with_phase(back, None)], e.to_string())
                },
            )
            .await??;
        Ok(())
    }

    /// Deletes a key the daemon deactivated (or an inactive orphan it created).
    #[tracing::instrument(skip_all, fields(team_id = %ctx.lineage.team_id, key_name = %ctx.lineage.name, key_id = %key_id))]
    pub async fn delete(
        &self,
        ctx: &LineageContext,
        key_id: &str,
        orphan_of: Option<&str>,
    ) -> Result<(), StepError> {
        let record = self.deletable(ctx, key_id, orphan_of)?;
        let action = if orphan_of.is_some() {
            AuditAction::CleanupOrphan
        } else {
            AuditAction::Delete
        };
        let with_phase = |phase| {
            Change::Retirement(RetirementRecord {
                phase,
                ..record.clone()
            })
        };
        let step = about(
            &ctx.lineage,
            Some(key_id),
            record.rotation_id.as_deref(),
            action,
        )
        .intent(vec![with_phase(RetirePhase::Deleting)])
        .crash_points(Some(Boundary::BeforeDelete), Some(Boundary::AfterDelete));
        self.steps
            .run(
                step,
                self.delete_if_there(key_id),
                |_| {
                    info!("deleted the key");
                    let detail = match orphan_of {
                        Some(rid) => format!(
                            "inactive key created by rotation {rid} whose secret never reached Vault"
                        ),
                        None => "deactivated by the daemon delete_after ago".to_string(),
                    };
                    Recorded::new(
                        vec![
                            with_phase(RetirePhase::Deleted),
                            Change::SnapshotRemove {
                                key_id: key_id.to_string(),
                            },
                        ],
                        detail,
                    )
                },
                |e: &KeyApiError| Recorded::new(vec![], e.to_string()),
            )
            .await??;
        Ok(())
    }

    /// The retirement a delete works on, after re-checking invariant 2: the key
    /// is inactive, and the daemon deactivated it or created it as an orphan.
    fn deletable(
        &self,
        ctx: &LineageContext,
        key_id: &str,
        orphan_of: Option<&str>,
    ) -> Result<RetirementRecord, StepError> {
        if ctx
            .key(key_id)
            .is_some_and(|k| k.state != KeyState::Inactive)
        {
            return Err(StepError::Guard(format!(
                "not deleting {key_id}: it is not inactive"
            )));
        }
        let now = self.steps.now();
        match (ctx.retirement(key_id), orphan_of) {
            (Some(r), _) if r.deactivated_at.is_some() => Ok(r.clone()),
            // An orphan: created inactive by the daemon and never stored.
            (_, Some(rid)) => Ok(RetirementRecord {
                key_id: key_id.to_string(),
                lineage: ctx.lineage.clone(),
                rotation_id: Some(rid.to_string()),
                replaced_at: now,
                phase: RetirePhase::Deleting,
                deactivated_at: Some(now),
            }),
            _ => Err(StepError::Guard(format!(
                "not deleting {key_id}: the daemon did not deactivate it"
            ))),
        }
    }

    /// Starts tracking an extra active key so it retires like a replaced one.
    pub async fn track(&self, ctx: &LineageContext, key_id: &str) -> Result<(), StepError> {
        let change = Change::Retirement(RetirementRecord {
            key_id: key_id.to_string(),
            lineage: ctx.lineage.clone(),
            rotation_id: None,
            replaced_at: self.steps.now(),
            phase: RetirePhase::Waiting,
            deactivated_at: None,
        });
        self.steps.record(vec![change], None).await
    }

    /// Closes a retirement whose key MASV no longer lists.
    pub async fn forget(&self, ctx: &LineageContext, key_id: &str) -> Result<(), StepError> {
        let Some(r) = ctx.retirement(key_id) else {
            return Ok(());
        };
        // A delete was sent but its outcome never recorded (crash): the key is gone, so it happened.
        let audit = (r.phase == RetirePhase::Deleting).then(|| {
            let step = about(
                &ctx.lineage,
                Some(key_id),
                r.rotation_id.as_deref(),
                AuditAction::Delete,
            );
            let detail = "gone after the delete was sent (recorded after a restart)";
            (step, Outcome::Ok, detail.to_string())
        });
        let change = Change::Retirement(RetirementRecord {
            phase: RetirePhase::Deleted,
            ..r.clone()
        });
        self.steps.record(vec![change], audit).await
    }
}
