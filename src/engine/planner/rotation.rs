//! The lineage's one rotation: resume the open one, else start one when the
//! current key is due or the operator asked for it.
//!
//! At most one rotation per lineage (invariant 4, docs/design.md): an open
//! rotation is always finished first, and an on-demand rotate adds nothing while
//! one is due or under way.

use super::policy;
use super::{Action, Draft, Facts, KeyRole, LineageSnapshot, NextStep, Why};
use crate::engine::model::DueReason;

/// Adds the rotation action, if any, and the outlook of the current and incoming keys.
/// `adopting`: another instance's rotation is being taken over (it is the one in flight).
pub(super) fn plan(s: &LineageSnapshot<'_>, facts: &Facts<'_>, adopting: bool, draft: &mut Draft) {
    if adopting {
        if let Some(c) = facts.current {
            draft.look(&c.id, KeyRole::Current, NextStep::Rotate, Some(s.now));
            draft.because(&c.id, Why::Due(DueReason::Takeover));
        }
    } else if let Some(open) = &s.open_rotation {
        draft.actions.push(Action::Resume {
            rotation_id: open.rotation_id.clone(),
            phase: open.phase,
        });
        if let Some(c) = facts.current {
            draft.look(&c.id, KeyRole::Current, NextStep::Rotate, Some(s.now));
            draft.because(&c.id, Why::UnderWay);
        }
    } else {
        let due = policy::rotation_due(s.vault.as_ref(), facts.current, &s.policy, s.now);
        if let Some(c) = facts.current {
            let next = if due.at().is_some() {
                NextStep::Rotate
            } else {
                NextStep::None
            };
            draft.look(&c.id, KeyRole::Current, next, due.at());
            if let Some(reason) = due.reason() {
                draft.because(&c.id, Why::Due(reason));
            }
        }
        // A lineage known only from Vault whose keys are all gone is still
        // rotated: consumers read that secret.
        let reason = due.by(s.now).or(s.rotate_now.then_some(DueReason::Manual));
        if let Some(reason) = reason {
            draft.actions.push(Action::Rotate {
                reason,
                old_key_id: facts.current_id.map(str::to_string),
                cas: s.vault.as_ref().map_or(0, |v| v.version),
            });
        }
    }
    if let Some(id) = facts.incoming {
        if facts.by_id.contains_key(id) {
            draft.look(id, KeyRole::Incoming, NextStep::None, None);
        }
    }
}
