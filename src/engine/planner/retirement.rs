//! Replaced keys on their way out: deactivated after the grace period once idle
//! (or at `max_overlap` regardless), deleted `delete_after` later.
//!
//! Only keys the daemon itself replaced are touched, never a suspended one, and
//! nothing is deactivated without a verified, active current key (invariant 1);
//! only keys the daemon deactivated are deleted, and only while inactive
//! (invariant 2).

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::super::key::{Key, KeyState};
use super::policy;
use super::{
    Action, DeactivateReason, Draft, Facts, KeyRole, LineageSnapshot, NextStep, Note, Why,
};
use crate::engine::model::{RetirePhase, RetirementRecord};

/// What happens next to a retiring key, and when.
type Step = (NextStep, Option<DateTime<Utc>>, Option<Why>);

const NO_STEP: Step = (NextStep::None, None, None);

/// Adds the retirement actions and notes; returns the key ids the retirements
/// track (the other listed keys are left to [`super::listed`]).
pub(super) fn plan<'s>(
    s: &'s LineageSnapshot<'_>,
    facts: &Facts<'_>,
    draft: &mut Draft,
) -> HashSet<&'s str> {
    let mut tracked = HashSet::new();
    for r in &s.retirements {
        tracked.insert(r.key_id.as_str());
        if r.phase == RetirePhase::Deleted {
            continue;
        }
        let Some(key) = facts.by_id.get(r.key_id.as_str()).copied() else {
            // MASV no longer lists it: deleted (by us, resumed, or by someone else).
            draft.actions.push(Action::Forget {
                key_id: r.key_id.clone(),
            });
            continue;
        };
        let (next, next_at, why) = match r.phase {
            // MASV suspended it: reported, never toggled, whatever the phase.
            _ if key.state == KeyState::Suspended => {
                draft.notes.push(Note::Suspended {
                    key_id: key.id.clone(),
                });
                NO_STEP
            }
            RetirePhase::Waiting | RetirePhase::Deactivating => {
                before_deactivation(s, facts, r, key, draft)
            }
            RetirePhase::Inactive | RetirePhase::Deleting => before_deletion(s, r, key, draft),
            RetirePhase::Deleted => NO_STEP,
        };
        draft.look(&key.id, KeyRole::Retiring, next, next_at);
        if let Some(why) = why {
            draft.because(&key.id, why);
        }
    }
    tracked
}

/// A replaced key (not suspended) not yet deactivated: deactivate it when its
/// time has come.
fn before_deactivation(
    s: &LineageSnapshot<'_>,
    facts: &Facts<'_>,
    r: &RetirementRecord,
    key: &Key,
    draft: &mut Draft,
) -> Step {
    if key.state == KeyState::Inactive && r.phase == RetirePhase::Waiting {
        // Deactivated by someone else: not ours to delete.
        return NO_STEP;
    }
    let key_id = key.id.clone();
    if Some(key.id.as_str()) == facts.current_id || facts.verified_current.is_none() {
        draft.notes.push(Note::NoVerifiedReplacement { key_id });
        return NO_STEP;
    }
    let due = policy::deactivation_due(r, key, &s.policy);
    if r.phase == RetirePhase::Deactivating || due.idle_end <= s.now {
        draft.actions.push(Action::Deactivate {
            key_id,
            reason: DeactivateReason::GraceAndIdle,
        });
    } else if due.overlap_end <= s.now {
        draft.actions.push(Action::Deactivate {
            key_id,
            reason: DeactivateReason::MaxOverlap,
        });
    } else if due.grace_end <= s.now {
        draft.notes.push(Note::InUse { key_id });
    }
    let why = Why::Deactivate(due.reason());
    (NextStep::Deactivate, Some(due.at()), Some(why))
}

/// A key (not suspended) the daemon deactivated: delete it `delete_after`
/// later, unless someone re-activated it.
fn before_deletion(
    s: &LineageSnapshot<'_>,
    r: &RetirementRecord,
    key: &Key,
    draft: &mut Draft,
) -> Step {
    let key_id = key.id.clone();
    if key.state == KeyState::Active {
        draft.notes.push(Note::Reactivated { key_id });
        return NO_STEP;
    }
    let delete_at = policy::deletion_due(r, &s.policy, s.now);
    if r.deactivated_at.is_some() && (r.phase == RetirePhase::Deleting || delete_at <= s.now) {
        draft.actions.push(Action::Delete { key_id });
    }
    (NextStep::Delete, Some(delete_at), Some(Why::DeleteAfter))
}
