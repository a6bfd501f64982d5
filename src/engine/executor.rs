//! The executor: carries out one lineage's planned actions, one step at a time.
//!
//! Each action is one small state machine in a file of its own, written as a
//! flat sequence of steps that all go through the step runner (`step.rs`):
//!
//! * `rotation` — create inactive, store, activate, verify
//!   (and roll back a key whose secret did not reach Vault);
//! * `resume` — finish or undo a rotation left unfinished, as
//!   the planner's recovery rules say;
//! * `retirement` — deactivate, delete, track, forget;
//! * `takeover` — adopt, discard or accept what another instance left
//!   (docs/design.md, section 9).
//!
//! ```text
//! creating ─create(inactive, marker)→ created ─→ storing ─CAS write→ stored
//!    │ lost/crash: find by marker          │ crash: secret lost     │ failed: rollback
//!    └────────────→ rolling_back ←─────────┴────────────────────────┘
//! stored → activating ─activate→ active ─X-API-KEY check→ verified (old keys start retiring)
//! ```
//!
//! New keys are created *inactive* so that a key whose secret never reached Vault
//! can be deleted without ever deleting an active key (invariant 2 in
//! docs/design.md), and no key is deactivated unless a newer active key of its
//! lineage is stored and verified (invariant 1, re-checked right before the call).

use std::collections::HashSet;
use std::sync::Arc;

use super::key::Key;
use super::model::{LineageId, RetirementRecord, RotationRecord, VaultView};
use super::planner::Action;
use super::policy::Policy;
use super::ports::{KeyApi, SecretStore};
pub use super::step::StepError;
use super::step::StepRunner;
use super::takeover::Adopted;

/// A rotation that reached its end: the new key is stored and verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rotated {
    pub rotation_id: String,
    pub new_key_id: String,
    /// The key Vault named before (None: the lineage had no stored key).
    pub previous_key_id: Option<String>,
}

impl Rotated {
    /// The record of a rotation whose new key is known.
    pub(super) fn of(rot: &RotationRecord) -> Self {
        Rotated {
            rotation_id: rot.rotation_id.clone(),
            new_key_id: rot.new_key_id.clone().unwrap_or_default(),
            previous_key_id: rot.old_key_id.clone(),
        }
    }
}

/// What one lineage sees during one sweep.
#[derive(Debug, Clone)]
pub struct LineageContext {
    pub lineage: LineageId,
    pub policy: Policy,
    /// The lineage's keys as listed at the start of the sweep.
    pub keys: Vec<Key>,
    pub vault: Option<VaultView>,
    /// Whether `vault` was read from Vault during this sweep (not from the cache).
    pub vault_fresh: bool,
    pub open_rotation: Option<RotationRecord>,
    pub retirements: Vec<RetirementRecord>,
    /// Keys of the team proved working (shared by all its lineages).
    pub verified: Arc<HashSet<String>>,
}

impl LineageContext {
    pub(super) fn key(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub(super) fn retirement(&self, key_id: &str) -> Option<&RetirementRecord> {
        self.retirements.iter().find(|r| r.key_id == key_id)
    }
}

/// Carries out actions against the key API and the secret store, one recorded
/// step at a time.
pub struct Executor<'a, K, S> {
    pub keys: &'a K,
    pub secrets: &'a S,
    pub(super) steps: StepRunner<'a>,
}

impl<K: KeyApi, S: SecretStore> Executor<'_, K, S> {
    /// Carries out one planned action; a rotation that completed says so.
    pub async fn carry_out(
        &self,
        ctx: &LineageContext,
        action: &Action,
    ) -> Result<Option<Rotated>, StepError> {
        let done = match action {
            Action::Rotate { reason, cas, .. } => {
                return self.rotate(ctx, *reason, *cas).await.map(Some)
            }
            Action::Resume { .. } => match &ctx.open_rotation {
                Some(rot) => return self.resume(ctx, rot).await,
                None => Ok(()),
            },
            Action::Deactivate { key_id, reason } => self.deactivate(ctx, key_id, *reason).await,
            Action::Delete { key_id } => self.delete(ctx, key_id, None).await,
            Action::CleanupOrphan {
                key_id,
                rotation_id,
            } => self.delete(ctx, key_id, Some(rotation_id)).await,
            Action::Track { key_id } => self.track(ctx, key_id).await,
            Action::Forget { key_id } => self.forget(ctx, key_id).await,
            Action::Adopt {
                rotation_id,
                key_id,
                phase,
                old_key_id,
                cas,
            } => {
                let adopted = Adopted {
                    rotation_id,
                    key_id,
                    phase: *phase,
                    old_key_id: old_key_id.as_deref(),
                    cas: *cas,
                };
                return self.adopt(ctx, adopted).await;
            }
            Action::Discard {
                rotation_id,
                key_id,
                why,
                unstage,
            } => self.discard(ctx, rotation_id, key_id, *why, *unstage).await,
            Action::AcceptPromoted {
                rotation_id,
                key_id,
                version,
                unstage,
            } => {
                self.accept_promoted(ctx, rotation_id, key_id, *version, *unstage)
                    .await
            }
            Action::RetireInactive {
                key_id,
                rotation_id,
            } => self.retire_inactive(ctx, key_id, rotation_id).await,
        };
        done.map(|()| None)
    }
}
