//! Reconciliation after a takeover, carried out (docs/design.md, section 9;
//! the decisions are the planner's, `planner/takeover.rs`): adopt and resume
//! another instance's rotation, discard one whose key can never work, accept a
//! promotion another instance made, retire a key a previous leader
//! deactivated; and the hand-over that closes what this instance had in flight
//! when the lease comes from another holder.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::audit::{AuditAction, NewAuditEntry, Outcome};
use super::executor::{Executor, LineageContext, Rotated};
use super::model::{DueReason, RetirePhase, RetirementRecord, RotationPhase, RotationRecord};
use super::planner::recovery::DeadKey;
use super::ports::{KeyApi, RecordError, RecordStore, SecretStore, SecretStoreError};
use super::records::Change;
use super::step::{about, Recorded, Step, StepError};

/// Another instance's rotation, as the planner decided to adopt it.
pub(super) struct Adopted<'a> {
    pub rotation_id: &'a str,
    pub key_id: &'a str,
    /// `stored` (its key inactive) or `active`.
    pub phase: RotationPhase,
    pub old_key_id: Option<&'a str>,
    pub cas: u64,
}

impl<K: KeyApi, S: SecretStore> Executor<'_, K, S> {
    /// A rotation this instance did not start, with a record built from what
    /// MASV and Vault show.
    fn foreign_rotation(
        &self,
        ctx: &LineageContext,
        rotation_id: &str,
        key_id: &str,
        phase: RotationPhase,
    ) -> RotationRecord {
        RotationRecord {
            rotation_id: rotation_id.to_string(),
            lineage: ctx.lineage.clone(),
            reason: DueReason::Takeover,
            old_key_id: ctx.vault.as_ref().map(|v| v.key_id.clone()),
            new_key_id: Some(key_id.to_string()),
            phase,
            cas: ctx.vault.as_ref().map_or(0, |v| v.version),
            vault_version: None,
            started_at: self.steps.now(),
            stored_at: None,
            last_error: None,
        }
    }

    /// R2a: takes another instance's rotation (its key alive at the pending
    /// path) into the local records, then resumes it through the usual path:
    /// activate, verify, promote, unstage.
    #[tracing::instrument(skip_all, fields(team_id = %ctx.lineage.team_id, key_name = %ctx.lineage.name, rotation_id = %a.rotation_id))]
    pub(super) async fn adopt(
        &self,
        ctx: &LineageContext,
        a: Adopted<'_>,
    ) -> Result<Option<Rotated>, StepError> {
        let rot = RotationRecord {
            old_key_id: a.old_key_id.map(str::to_string),
            cas: a.cas,
            ..self.foreign_rotation(ctx, a.rotation_id, a.key_id, a.phase)
        };
        info!(key_id = %a.key_id, phase = %a.phase, "adopting a rotation another instance left in flight");
        let audit = about(
            &ctx.lineage,
            Some(a.key_id),
            Some(a.rotation_id),
            AuditAction::Adopt,
        );
        let detail = format!(
            "left in flight by another instance: its key is {} and staged at the pending path; resumed here (phase {}, check-and-set against Vault version {})",
            if a.phase == RotationPhase::Active { "active" } else { "inactive" },
            a.phase,
            a.cas
        );
        self.steps
            .record(
                vec![Change::KnownRotation(rot.clone())],
                Some((audit, Outcome::Ok, detail)),
            )
            .await?;
        self.resume(ctx, &rot).await
    }

    /// R2b (and a suspended foreign key): records another instance's rotation
    /// as abandoned, removing its pending entry first when it holds the key.
    /// Nothing in MASV is touched here.
    pub(super) async fn discard(
        &self,
        ctx: &LineageContext,
        rid: &str,
        key_id: &str,
        why: DeadKey,
        unstage: bool,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let rot = RotationRecord {
            last_error: Some(format!("the new key {}", why.as_str())),
            ..self.foreign_rotation(ctx, rid, key_id, RotationPhase::Abandoned)
        };
        let audit = about(lineage, Some(key_id), Some(rid), AuditAction::Abandon);
        let detail = format!(
            "a rotation another instance left: its key {} and can never be verified; old keys untouched",
            why.as_str()
        );
        if unstage {
            warn!(
                key_id,
                reason = why.as_str(),
                "removing a dead key's pending entry left by another instance"
            );
        }
        self.record_unstaging(
            ctx,
            audit,
            vec![Change::KnownRotation(rot)],
            detail,
            unstage,
        )
        .await
    }

    /// Records what was learnt with its audit row; with `unstage`, only once
    /// the lineage's pending entry is removed (a failed removal records
    /// nothing but its audit row: the next sweep decides again).
    async fn record_unstaging(
        &self,
        ctx: &LineageContext,
        audit: Step<'_>,
        changes: Vec<Change>,
        detail: String,
        unstage: bool,
    ) -> Result<(), StepError> {
        if !unstage {
            return self
                .steps
                .record(changes, Some((audit, Outcome::Ok, detail)))
                .await;
        }
        let lineage = &ctx.lineage;
        self.steps
            .run(
                audit,
                self.secrets.unstage(&lineage.team_id, &lineage.name),
                |_| Recorded::new(changes, format!("{detail}; its pending entry removed")),
                |e: &SecretStoreError| {
                    Recorded::new(
                        vec![],
                        format!("{e}; the pending entry stays, tried again next sweep"),
                    )
                },
            )
            .await??;
        Ok(())
    }

    /// R3: records the rotation that promoted the current key (another
    /// instance's), and the key as verified; removes the pending entry first
    /// when the promotion's own removal did not land.
    pub(super) async fn accept_promoted(
        &self,
        ctx: &LineageContext,
        rid: &str,
        key_id: &str,
        version: u64,
        unstage: bool,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let rot = RotationRecord {
            old_key_id: None,
            vault_version: Some(version),
            ..self.foreign_rotation(ctx, rid, key_id, RotationPhase::Verified)
        };
        let changes = vec![
            Change::KnownRotation(rot),
            Change::Verified {
                lineage: lineage.clone(),
                key_id: key_id.to_string(),
            },
        ];
        let audit = about(lineage, Some(key_id), Some(rid), AuditAction::Adopt);
        let detail = format!(
            "promoted by another instance (Vault version {version} names this rotation, the key's marker too): recorded as verified"
        );
        if unstage {
            info!(
                key_id,
                "removing the pending entry of a promotion another instance made"
            );
        }
        self.record_unstaging(ctx, audit, changes, detail, unstage)
            .await
    }

    /// R2d: an inactive key of another instance's rotation, older than the
    /// current key: a previous leader retired it. Recorded as deactivated now,
    /// so it is deleted `delete_after` from now (re-checked inactive then).
    pub(super) async fn retire_inactive(
        &self,
        ctx: &LineageContext,
        key_id: &str,
        rid: &str,
    ) -> Result<(), StepError> {
        let now = self.steps.now();
        let change = Change::Retirement(RetirementRecord {
            key_id: key_id.to_string(),
            lineage: ctx.lineage.clone(),
            rotation_id: Some(rid.to_string()),
            replaced_at: now,
            phase: RetirePhase::Inactive,
            deactivated_at: Some(now),
        });
        let audit = about(&ctx.lineage, Some(key_id), Some(rid), AuditAction::Adopt);
        let detail = "inactive key of a rotation another instance made, older than the current key: retired by a previous leader; deleted delete_after from now";
        self.steps
            .record(vec![change], Some((audit, Outcome::Ok, detail.to_string())))
            .await
    }
}

/// What a hand-over closed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HandOverReport {
    /// The local open rotations, as they were, now closed (`handed_over`).
    pub closed: Vec<RotationRecord>,
    /// Keys whose retirement this instance had not deactivated yet: forgotten.
    pub dropped_retirements: Vec<String>,
}

/// R4: closes what this instance had in flight, touching neither MASV nor
/// Vault, when it acquires the lease from a different holder: that holder may
/// have finished, rolled back or replaced any of it since. Open rotations end
/// `handed_over` (each with an audit row; their keys are then foreign and the
/// takeover rules decide), cached Vault views are dropped (re-read next
/// sweep), and retirements not yet deactivated by this instance are dropped
/// (an active key is tracked again behind a verified current key; an inactive
/// one with a marker is retired under R2d; one without a marker, deactivated
/// by someone, is left alone: only keys the daemon deactivated are deleted).
/// Nothing else changes, all in one transaction.
pub(super) async fn hand_over(
    records: &dyn RecordStore,
    now: DateTime<Utc>,
) -> Result<HandOverReport, RecordError> {
    let in_flight = records.in_flight().await?;
    let mut changes = Vec::new();
    let mut audit = Vec::new();
    for r in &in_flight.rotations {
        changes.push(Change::Rotation {
            rotation_id: r.rotation_id.clone(),
            phase: RotationPhase::HandedOver,
            new_key_id: None,
            vault_version: None,
            stored_at: None,
            error: Some("handed over: the lease came from another holder".into()),
        });
        audit.push(NewAuditEntry {
            at: now,
            team_id: Some(r.lineage.team_id.clone()),
            key_id: r.new_key_id.clone(),
            key_name: Some(r.lineage.name.clone()),
            action: AuditAction::HandOver,
            outcome: Outcome::Ok,
            detail: format!(
                "closed in phase {} without touching MASV or Vault: the lease came from another holder, which may have finished or undone it; its key is judged afresh from MASV and Vault",
                r.phase
            ),
            rotation_id: Some(r.rotation_id.clone()),
            lease_token: None,
        });
    }
    for r in &in_flight.undeactivated {
        changes.push(Change::ForgetRetirement {
            key_id: r.key_id.clone(),
        });
        // A deactivation may have been sent and never recorded: the row says so.
        if r.phase == RetirePhase::Deactivating {
            audit.push(NewAuditEntry {
                at: now,
                team_id: Some(r.lineage.team_id.clone()),
                key_id: Some(r.key_id.clone()),
                key_name: Some(r.lineage.name.clone()),
                action: AuditAction::HandOver,
                outcome: Outcome::Ok,
                detail: "retirement dropped while its deactivation was in flight (it may have been sent): the lease came from another holder; the key is judged afresh from MASV and Vault".into(),
                rotation_id: r.rotation_id.clone(),
                lease_token: None,
            });
        }
    }
    changes.push(Change::ForgetVaultViews);
    records.apply(now, changes, audit).await?;
    if !in_flight.rotations.is_empty() {
        info!(
            rotations = in_flight.rotations.len(),
            "handed over the rotations in flight"
        );
    }
    Ok(HandOverReport {
        closed: in_flight.rotations,
        dropped_retirements: in_flight
            .undeactivated
            .into_iter()
            .map(|r| r.key_id)
            .collect(),
    })
}
