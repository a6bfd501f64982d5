//! Promotion: the last step of a rotation. The verified key's secret goes from
//! the pending path to the lineage's path with check-and-set, the pending entry
//! is removed, and the lineage's other active keys start retiring. Until this
//! step the lineage's path still names the old key, which keeps working: a
//! consumer never reads a key MASV would refuse (invariant 7).

use chrono::{DateTime, Utc};
use tracing::info;

use super::audit::{AuditAction, Outcome};
use super::executor::{Executor, LineageContext};
use super::failpoints::Boundary;
use super::key::{Key, KeyState};
use super::model::{RetirePhase, RetirementRecord, RotationPhase, RotationRecord, VaultView};
use super::ports::{KeyApi, SecretStore, SecretStoreError};
use super::records::Change;
use super::secret::{LineageSecret, StoredSecret};
use super::step::{about, Recorded, StepError};

/// A promotion that did not land.
#[derive(Debug)]
pub(super) struct NotPromoted {
    error: SecretStoreError,
    /// What the lineage's path holds instead, when it could be read.
    view: Option<Option<VaultView>>,
}

impl From<NotPromoted> for StepError {
    fn from(f: NotPromoted) -> Self {
        StepError::Vault(f.error)
    }
}

/// A promotion that landed, and whether the pending entry was removed after it.
pub(super) struct Promoted {
    version: u64,
    unstaged: Result<(), SecretStoreError>,
}

impl<K: KeyApi, S: SecretStore> Executor<'_, K, S> {
    /// Promotes `staged` (the verified key's secret) to the lineage's path,
    /// check-and-set against `cas`. The "promoting" intent is on record.
    pub(super) async fn promote(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
        staged: LineageSecret,
        cas: u64,
    ) -> Result<RotationRecord, StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let promoted_at = self.steps.now();
        let value = LineageSecret {
            rotated_at: promoted_at,
            ..staged
        };
        let new_id = value.key_id.clone();
        let step = about(lineage, Some(&new_id), Some(rid), AuditAction::Promote)
            .crash_points(Some(Boundary::BeforePromote), Some(Boundary::AfterPromote));
        self.steps
            .run(
                step,
                self.promote_or_find(&value, cas),
                |done: &Promoted| {
                    info!(key_id = %new_id, version = done.version, "promoted the new secret to the lineage's path");
                    promoted(ctx, rid, &new_id, done, promoted_at, "check-and-set")
                },
                |failed: &NotPromoted| {
                    let mut changes = vec![Change::phase_failed(
                        rid,
                        RotationPhase::Promoting,
                        &failed.error,
                    )];
                    if let Some(view) = &failed.view {
                        changes.push(Change::Vault {
                            lineage: lineage.clone(),
                            view: view.clone(),
                        });
                    }
                    Recorded::new(
                        changes,
                        format!("{}; the old key stays at the lineage's path, promotion retried on the next sweep", failed.error),
                    )
                },
            )
            .await??;
        Ok(RotationRecord {
            phase: RotationPhase::Verified,
            stored_at: Some(promoted_at),
            ..rot.clone()
        })
    }

    /// The promotion found already done after a restart (perhaps a late write
    /// whose answer was lost): recorded, and the pending entry removed.
    pub(super) async fn record_promoted(
        &self,
        ctx: &LineageContext,
        rot: &RotationRecord,
        version: u64,
        promoted_at: DateTime<Utc>,
    ) -> Result<(), StepError> {
        let lineage = &ctx.lineage;
        let rid = rot.rotation_id.as_str();
        let new_id = rot.new_key_id.clone().unwrap_or_default();
        let step = about(lineage, Some(&new_id), Some(rid), AuditAction::Promote);
        let unstaged = self.secrets.unstage(&lineage.team_id, &lineage.name).await;
        let done = Promoted { version, unstaged };
        let recorded = promoted(
            ctx,
            rid,
            &new_id,
            &done,
            promoted_at,
            "found after a restart",
        );
        self.steps
            .record(recorded.changes, Some((step, Outcome::Ok, recorded.detail)))
            .await
    }

    /// The check-and-set write; on an error, a look at the lineage's path by
    /// rotation id: a write that timed out may have landed. Then the pending
    /// entry is removed (best effort: the next rotation's staging replaces it).
    async fn promote_or_find(
        &self,
        value: &LineageSecret,
        cas: u64,
    ) -> Result<Promoted, NotPromoted> {
        let version = match self.secrets.promote(value, cas).await {
            Ok(version) => version,
            Err(error) => match self.secrets.read(&value.team_id, &value.key_name).await {
                Ok(Some(there)) if there.secret.rotation_id == value.rotation_id => there.version,
                Ok(other) => {
                    return Err(NotPromoted {
                        error,
                        view: Some(other.as_ref().map(StoredSecret::view)),
                    })
                }
                Err(_) => return Err(NotPromoted { error, view: None }),
            },
        };
        let unstaged = self.secrets.unstage(&value.team_id, &value.key_name).await;
        Ok(Promoted { version, unstaged })
    }
}

/// A promoted key's record: the rotation done, the Vault view, and a
/// retirement for every other active key of the lineage.
fn promoted(
    ctx: &LineageContext,
    rid: &str,
    new_id: &str,
    done: &Promoted,
    promoted_at: DateTime<Utc>,
    how: &str,
) -> Recorded {
    let mut changes = vec![
        Change::Rotation {
            rotation_id: rid.to_string(),
            phase: RotationPhase::Verified,
            new_key_id: None,
            vault_version: Some(done.version),
            stored_at: Some(promoted_at),
            error: None,
        },
        Change::Vault {
            lineage: ctx.lineage.clone(),
            view: Some(VaultView {
                key_id: new_id.to_string(),
                version: done.version,
                rotation_id: Some(rid.to_string()),
            }),
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
            replaced_at: promoted_at,
            phase: RetirePhase::Waiting,
            deactivated_at: None,
        }));
    }
    let retire = if retiring.is_empty() {
        "nothing to retire".to_string()
    } else {
        let ids: Vec<&str> = retiring.iter().map(|k| k.id.as_str()).collect();
        format!("retiring {}", ids.join(", "))
    };
    let pending = match &done.unstaged {
        Ok(()) => "pending entry removed".to_string(),
        Err(e) => format!("pending entry not removed ({e})"),
    };
    Recorded::new(
        changes,
        format!(
            "Vault version {} at the lineage's path ({how}); {retire}; {pending}",
            done.version
        ),
    )
}
