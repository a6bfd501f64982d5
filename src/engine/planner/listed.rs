//! Every listed key that is neither current, incoming nor retiring: orphans of
//! failed rotations (deleted while inactive), extra active keys (tracked for
//! retirement), and the suspended and stale keys an operator should hear about.

use std::collections::HashSet;

use super::super::key::{Key, KeyState};
use super::policy;
use super::takeover::Taken;
use super::{Action, Draft, Facts, KeyRole, LineageSnapshot, NextStep, Note, Why};
use crate::engine::marker;

/// Adds the notes for every listed key, and the actions for the keys that no
/// other part plans (`tracked`: the keys the retirements hold; `taken`: the
/// keys the takeover rules decided).
pub(super) fn plan(
    s: &LineageSnapshot<'_>,
    facts: &Facts<'_>,
    tracked: &HashSet<&str>,
    taken: &Taken<'_>,
    draft: &mut Draft,
) {
    for key in &s.keys {
        let id = key.id.as_str();
        if key.state == KeyState::Suspended && !tracked.contains(id) {
            draft.notes.push(Note::Suspended {
                key_id: key.id.clone(),
            });
        }
        if policy::is_stale_active(key, &s.policy, s.now) {
            draft.notes.push(Note::Stale {
                key_id: key.id.clone(),
            });
        }
        if Some(id) == facts.current_id
            || tracked.contains(id)
            || facts.incoming == Some(id)
            || taken.handled.contains(id)
        {
            continue;
        }
        if let Some(rotation_id) = orphaned_by(s, key) {
            orphan(s, key, rotation_id, draft);
            continue;
        }
        if key.state == KeyState::Active
            && facts.verified_current.is_some()
            && s.open_rotation.is_none()
            && !taken.adopting
        {
            draft.actions.push(Action::Track {
                key_id: key.id.clone(),
            });
        }
        draft.look(id, KeyRole::Other, NextStep::None, None);
    }
}

/// The rotation whose orphan `key` is: it carries that rotation's create marker,
/// the rotation is not the open one, and it rolled back. (A marker of a
/// rotation the records do not know is a foreign key: `takeover` decides.)
fn orphaned_by<'k>(s: &LineageSnapshot<'_>, key: &'k Key) -> Option<&'k str> {
    marker::rotation_id(&key.description).filter(|rid| {
        let ours_open = s
            .open_rotation
            .as_ref()
            .is_some_and(|r| r.rotation_id == *rid);
        !ours_open && s.rolled_back.contains(*rid)
    })
}

/// An orphan is deleted while inactive; an active one is only reported.
fn orphan(s: &LineageSnapshot<'_>, key: &Key, rotation_id: &str, draft: &mut Draft) {
    if key.state == KeyState::Inactive {
        draft.actions.push(Action::CleanupOrphan {
            key_id: key.id.clone(),
            rotation_id: rotation_id.to_string(),
        });
        draft.look(&key.id, KeyRole::Orphan, NextStep::Delete, Some(s.now));
        draft.because(&key.id, Why::Orphan);
    } else {
        draft.notes.push(Note::ActiveOrphan {
            key_id: key.id.clone(),
        });
        draft.look(&key.id, KeyRole::Orphan, NextStep::None, None);
    }
}
