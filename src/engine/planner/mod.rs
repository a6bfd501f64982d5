//! The planner: a pure function from what the daemon sees to what is due.
//!
//! Input is one [`LineageSnapshot`] (the lineage's keys from the team's list call,
//! the Vault view, the engine's records, the policy, `now`, and whether the
//! operator asked for a rotation); output is a [`LineagePlan`]: the actions to
//! take and, for every key, what happens next and when. No I/O happens here, so
//! every rule of the policy (docs/design.md, section 4) and the safety guards of
//! invariants 1 and 2 are tested as a table and as properties, without a network.
//!
//! The planner is the only place that decides. Its parts, one concern each:
//! `rotation` (resume the open rotation or start one), `retirement` (replaced
//! keys), `listed` (every other listed key), all asking `policy` for every time
//! and policy predicate; [`standing()`] answers `status` and `report` from the
//! same snapshot, so they show what the sweep would decide.
//!
//! The executor re-checks the guards right before each call (defence in depth),
//! but a plan that would break an invariant is a bug here first.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::key::{Key, KeyState};
use super::model::{
    DueReason, LineageId, RetirementRecord, RotationPhase, RotationRecord, VaultView,
};
use super::policy::Policy;
use super::records::TeamRecords;

mod listed;
mod policy;
pub mod recovery;
mod retirement;
mod rotation;
mod standing;
pub mod takeover;

pub use standing::{standing, KeyStanding, Standing};
pub use takeover::{needs_pending, proven, Pending};

/// Everything the planner knows about one lineage at one instant.
#[derive(Debug, Clone)]
pub struct LineageSnapshot<'a> {
    pub lineage: LineageId,
    /// The team's listed keys with this lineage's name.
    pub keys: Vec<&'a Key>,
    /// What Vault holds for the lineage (None: no secret yet).
    pub vault: Option<VaultView>,
    /// The lineage's unfinished rotation, if any (at most one: invariant 4, docs/design.md).
    pub open_rotation: Option<RotationRecord>,
    /// Rotations of this lineage that rolled back (their marked keys are orphans).
    pub rolled_back: HashSet<String>,
    /// Every rotation id the daemon knows for this lineage (terminal or not).
    pub known_rotations: HashSet<String>,
    /// Replaced keys on their way out.
    pub retirements: Vec<RetirementRecord>,
    /// Keys whose secret the daemon stored in Vault and proved working.
    pub verified: &'a HashSet<String>,
    pub policy: Policy,
    pub now: DateTime<Utc>,
    /// The operator asked to rotate this lineage now (`rotate --team --name`):
    /// a rotation starts even when none is due, unless one is already under way.
    pub rotate_now: bool,
    /// What the lineage's pending path held, when [`needs_pending`] had the sweep look.
    pub pending: Pending,
}

impl<'a> LineageSnapshot<'a> {
    /// The snapshot of `lineage` from its team's records and its listed `keys`,
    /// with the Vault view the caller holds (the records' own, or one read now).
    pub fn from_records(
        records: &'a TeamRecords,
        lineage: LineageId,
        keys: Vec<&'a Key>,
        vault: Option<VaultView>,
        policy: Policy,
        now: DateTime<Utc>,
    ) -> Self {
        let name = lineage.name.as_str();
        LineageSnapshot {
            keys,
            vault,
            open_rotation: records.open.get(name).cloned(),
            rolled_back: records.rolled_back.get(name).cloned().unwrap_or_default(),
            known_rotations: records.known.get(name).cloned().unwrap_or_default(),
            retirements: records.retirements.get(name).cloned().unwrap_or_default(),
            verified: &records.verified,
            policy,
            now,
            rotate_now: false,
            pending: Pending::NotRead,
            lineage,
        }
    }
}

/// Why a replaced key may now be deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeactivateReason {
    /// `grace_period` passed and the key has been idle for `idle_before_deactivate`.
    GraceAndIdle,
    /// `max_overlap` passed: deactivated even though it may still be in use.
    MaxOverlap,
}

impl DeactivateReason {
    /// Why, in an operator's words (as [`crate::engine::model::DueReason::words`]).
    pub fn words(self) -> &'static str {
        match self {
            DeactivateReason::GraceAndIdle => {
                "grace_period passed and idle for idle_before_deactivate"
            }
            DeactivateReason::MaxOverlap => {
                "max_overlap has passed, though it may still have been in use"
            }
        }
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Start a new rotation.
    Rotate {
        reason: DueReason,
        old_key_id: Option<String>,
        /// The Vault version to write over (0: none).
        cas: u64,
    },
    /// Drive an unfinished rotation to its end (forward or back).
    Resume {
        rotation_id: String,
        phase: RotationPhase,
    },
    /// Deactivate a replaced key.
    Deactivate {
        key_id: String,
        reason: DeactivateReason,
    },
    /// Delete a key the daemon deactivated `delete_after` ago.
    Delete { key_id: String },
    /// Delete a key the daemon created whose secret never reached Vault.
    CleanupOrphan { key_id: String, rotation_id: String },
    /// Start tracking an extra active key of a lineage that already has a verified current key.
    Track { key_id: String },
    /// Stop tracking a retirement whose key MASV no longer lists.
    Forget { key_id: String },
    /// Take a rotation another instance left in flight (its key at the pending
    /// path, alive) into the local records and resume it (takeover rule R2a).
    Adopt {
        rotation_id: String,
        key_id: String,
        /// `stored` (the key is inactive) or `active`.
        phase: RotationPhase,
        old_key_id: Option<String>,
        /// The lineage's current Vault version, for the promotion's check-and-set.
        cas: u64,
    },
    /// Record another instance's rotation whose key can never be verified as
    /// abandoned, removing its pending entry when it holds the key (R2b).
    Discard {
        rotation_id: String,
        key_id: String,
        why: recovery::DeadKey,
        unstage: bool,
    },
    /// Record the current key's rotation, promoted by another instance, and
    /// remove its pending entry if it is still there (R3).
    AcceptPromoted {
        rotation_id: String,
        key_id: String,
        version: u64,
        unstage: bool,
    },
    /// Record an inactive key a previous leader retired as a retirement already
    /// deactivated: deleted `delete_after` from now (R2d).
    RetireInactive { key_id: String, rotation_id: String },
}

impl Action {
    /// Which kind of action this is.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Rotate { .. } => ActionKind::Rotate,
            Action::Resume { .. } => ActionKind::Resume,
            Action::Deactivate { .. } => ActionKind::Deactivate,
            Action::Delete { .. } => ActionKind::Delete,
            Action::CleanupOrphan { .. } => ActionKind::CleanupOrphan,
            Action::Track { .. } => ActionKind::Track,
            Action::Forget { .. } => ActionKind::Forget,
            Action::Adopt { .. } => ActionKind::Adopt,
            Action::Discard { .. } => ActionKind::Discard,
            Action::AcceptPromoted { .. } => ActionKind::AcceptPromoted,
            Action::RetireInactive { .. } => ActionKind::RetireInactive,
        }
    }

    /// Whether carrying this action out changes MASV or Vault.
    pub fn mutates(&self) -> bool {
        match self {
            Action::Track { .. } | Action::Forget { .. } | Action::RetireInactive { .. } => false,
            Action::Discard { unstage, .. } | Action::AcceptPromoted { unstage, .. } => *unstage,
            _ => true,
        }
    }

    pub fn key_id(&self) -> Option<&str> {
        match self {
            Action::Rotate { old_key_id, .. } => old_key_id.as_deref(),
            Action::Resume { .. } => None,
            Action::Deactivate { key_id, .. }
            | Action::Delete { key_id }
            | Action::CleanupOrphan { key_id, .. }
            | Action::Track { key_id }
            | Action::Forget { key_id }
            | Action::Adopt { key_id, .. }
            | Action::Discard { key_id, .. }
            | Action::AcceptPromoted { key_id, .. }
            | Action::RetireInactive { key_id, .. } => Some(key_id),
        }
    }
}

/// Which kind of action an [`Action`] is, without its data: what an outcome,
/// an alert or a metric needs to say which action it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Rotate,
    Resume,
    Deactivate,
    Delete,
    CleanupOrphan,
    Track,
    Forget,
    Adopt,
    Discard,
    AcceptPromoted,
    RetireInactive,
}

impl ActionKind {
    /// The short name shown in summaries, logs, alerts and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Rotate => "rotate",
            ActionKind::Resume => "resume",
            ActionKind::Deactivate => "deactivate",
            ActionKind::Delete => "delete",
            ActionKind::CleanupOrphan => "cleanup_orphan",
            ActionKind::Track => "track",
            ActionKind::Forget => "forget",
            ActionKind::Adopt => "adopt",
            ActionKind::Discard => "discard",
            ActionKind::AcceptPromoted => "accept_promoted",
            ActionKind::RetireInactive => "retire_inactive",
        }
    }

    /// Whether it starts or finishes a rotation.
    pub fn is_rotation(self) -> bool {
        matches!(
            self,
            ActionKind::Rotate | ActionKind::Resume | ActionKind::Adopt
        )
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role a listed key plays in its lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Its id is in the lineage's Vault secret.
    Current,
    /// Replaced; on its way to deactivation and deletion.
    Retiring,
    /// Created by an unfinished rotation.
    Incoming,
    /// Created by the daemon but never stored: to be deleted.
    Orphan,
    /// Managed but neither current nor tracked (e.g. before adoption).
    Other,
}

impl KeyRole {
    /// Its name in output (`status --json`, `/metrics`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Current => "current",
            KeyRole::Retiring => "retiring",
            KeyRole::Incoming => "incoming",
            KeyRole::Orphan => "orphan",
            KeyRole::Other => "other",
        }
    }
}

/// What happens next to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NextStep {
    Rotate,
    Deactivate,
    Delete,
    /// Nothing the daemon will do (e.g. suspended, inactive and not ours).
    None,
}

/// Something worth telling an operator that is not an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum Note {
    /// MASV suspended this key; the daemon never toggles suspended keys.
    Suspended { key_id: String },
    /// Not used for `unused_after` (or never used and that old).
    Stale { key_id: String },
    /// A replaced key still in use; deactivation waits (up to `max_overlap`).
    InUse { key_id: String },
    /// A replaced key cannot be deactivated yet: no verified, active replacement.
    NoVerifiedReplacement { key_id: String },
    /// A key the daemon deactivated was re-activated by someone; it will not be deleted.
    Reactivated { key_id: String },
    /// An orphan that is active (someone activated it): never deleted while active.
    ActiveOrphan { key_id: String },
}

/// Why a key's next step comes when it does, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The lineage's rotation falls (or fell) due for this reason.
    Due(DueReason),
    /// A rotation of the lineage is under way.
    UnderWay,
    /// A replaced key's deactivation comes for this reason.
    Deactivate(DeactivateReason),
    /// `delete_after` after the daemon deactivated it.
    DeleteAfter,
    /// The daemon created it in a rotation that never stored it.
    Orphan,
}

impl Why {
    /// In an operator's words, the same as the plan lines'.
    pub fn words(self) -> &'static str {
        match self {
            Why::Due(reason) => reason.words(),
            Why::UnderWay => "a rotation is under way",
            Why::Deactivate(reason) => reason.words(),
            Why::DeleteAfter => "delete_after passed since it was deactivated",
            Why::Orphan => "created by a rotation that never stored it",
        }
    }
}

/// Per-key outlook, for `status` and `report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyOutlook {
    pub key_id: String,
    pub role: KeyRole,
    pub next: NextStep,
    /// When the next step is due (None: not scheduled).
    pub next_at: Option<DateTime<Utc>>,
    /// Why the next step comes then (None: no step, or nothing to say).
    #[serde(skip)]
    pub why: Option<Why>,
    /// When the key expires (None: never, or not listed), for `/metrics`.
    #[serde(skip)]
    pub expiry: Option<DateTime<Utc>>,
    /// When the key was last used (None: never, or not listed), for `/metrics`.
    #[serde(skip)]
    pub last_request_at: Option<DateTime<Utc>>,
}

/// The plan for one lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineagePlan {
    pub lineage: LineageId,
    pub actions: Vec<Action>,
    pub notes: Vec<Note>,
    pub keys: Vec<KeyOutlook>,
}

/// What the parts of the planner read about the lineage, worked out once.
struct Facts<'s> {
    by_id: BTreeMap<&'s str, &'s Key>,
    /// The key id in the lineage's Vault secret.
    current_id: Option<&'s str>,
    /// The listed key with that id.
    current: Option<&'s Key>,
    /// The current key if it is active and verified (by this instance, or by
    /// its provenance: takeover rule R1): invariant 1's precondition for
    /// deactivating anything in this lineage.
    verified_current: Option<&'s str>,
    /// The key the open rotation created, if it got that far.
    incoming: Option<&'s str>,
}

impl<'s> Facts<'s> {
    fn of(s: &'s LineageSnapshot<'_>) -> Self {
        let by_id: BTreeMap<&str, &Key> = s.keys.iter().map(|k| (k.id.as_str(), *k)).collect();
        let current_id = s.vault.as_ref().map(|v| v.key_id.as_str());
        let current = current_id.and_then(|id| by_id.get(id).copied());
        let verified_current = current
            .filter(|c| {
                c.state == KeyState::Active
                    && (s.verified.contains(&c.id)
                        || s.vault.as_ref().is_some_and(|v| proven(c, v)))
            })
            .map(|c| c.id.as_str());
        let incoming = s
            .open_rotation
            .as_ref()
            .and_then(|r| r.new_key_id.as_deref());
        Facts {
            by_id,
            current_id,
            current,
            verified_current,
            incoming,
        }
    }
}

/// The plan as the parts build it up, in order: a later part's outlook for a
/// key replaces an earlier one's.
#[derive(Default)]
struct Draft {
    actions: Vec<Action>,
    notes: Vec<Note>,
    outlook: BTreeMap<String, KeyOutlook>,
}

impl Draft {
    fn look(
        &mut self,
        key_id: &str,
        role: KeyRole,
        next: NextStep,
        next_at: Option<DateTime<Utc>>,
    ) {
        self.outlook.insert(
            key_id.to_string(),
            KeyOutlook {
                key_id: key_id.to_string(),
                role,
                next,
                next_at,
                why: None,
                expiry: None,
                last_request_at: None,
            },
        );
    }

    /// Says why `key_id`'s next step comes when it does.
    fn because(&mut self, key_id: &str, why: Why) {
        if let Some(look) = self.outlook.get_mut(key_id) {
            look.why = Some(why);
        }
    }
}

/// Plans one lineage: what another instance left (takeover) first, then the
/// rotation, then the replaced keys, then every other listed key.
pub fn plan_lineage(s: &LineageSnapshot<'_>) -> LineagePlan {
    let facts = Facts::of(s);
    let mut draft = Draft::default();
    let taken = takeover::plan(s, &facts, &mut draft);
    rotation::plan(s, &facts, taken.adopting, &mut draft);
    let tracked = retirement::plan(s, &facts, &mut draft);
    listed::plan(s, &facts, &tracked, &taken, &mut draft);
    LineagePlan {
        lineage: s.lineage.clone(),
        actions: draft.actions,
        notes: draft.notes,
        keys: draft
            .outlook
            .into_values()
            .map(|look| {
                let listed = facts.by_id.get(look.key_id.as_str());
                KeyOutlook {
                    expiry: listed.and_then(|k| k.expiry),
                    last_request_at: listed.and_then(|k| k.last_request_at),
                    ..look
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
