//! Reconciliation after a takeover (docs/design.md, section 9): what a leader
//! with its own database does with what another instance left in MASV and
//! Vault. It sees only the keys' markers, the lineage's path (with the
//! `rotation_id` its promotion wrote) and, when this module asks for it, the
//! lineage's pending path.
//!
//! * R1 — the current key counts as verified when it is active and its marker
//!   names the rotation that promoted it ([`proven`]);
//! * R2 — a *foreign* key (a marker of a rotation the local records do not
//!   know, neither current nor the local open rotation's, not being retired)
//!   is adopted and resumed, discarded, cleaned up, retired or tracked,
//!   depending on the pending path and its state;
//! * R3 — the current key's rotation, unknown locally, is recorded (and its
//!   pending entry removed if the promotion's removal did not land).
//!
//! The pending path is read at most once per lineage and sweep, and only when
//! [`needs_pending`] says so: never in steady state.

use std::collections::HashSet;

use super::super::key::{Key, KeyState};
use super::super::marker;
use super::super::model::{RotationPhase, VaultView};
use super::recovery::{dead_key, DeadKey};
use super::{Action, Draft, Facts, KeyRole, LineageSnapshot, NextStep, Why};

/// What the lineage's pending path held when the sweep looked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Pending {
    /// Not read: nothing called for it.
    #[default]
    NotRead,
    /// Read: nothing there.
    Empty,
    /// Read: a staged secret naming this key, staged by this rotation.
    Holds { key_id: String, rotation_id: String },
}

impl Pending {
    fn holds(&self, key_id: &str, rotation_id: &str) -> bool {
        matches!(self, Pending::Holds { key_id: k, rotation_id: r } if k == key_id && r == rotation_id)
    }
}

/// R1: `key` is the lineage's current key, active, and its marker names the
/// rotation whose promotion wrote the lineage's path. A promotion comes only
/// after the key was verified, so the key was verified (by whichever instance).
pub fn proven(key: &Key, view: &VaultView) -> bool {
    key.state == KeyState::Active
        && key.id == view.key_id
        && view
            .rotation_id
            .as_deref()
            .is_some_and(|rid| marker::rotation_id(&key.description) == Some(rid))
}

/// The keys of the lineage that carry a marker of a rotation the local records
/// do not know, with that rotation id: not the current key, not the local open
/// rotation's key, not a key a retirement tracks.
fn foreign<'s>(s: &'s LineageSnapshot<'_>) -> Vec<(&'s Key, &'s str)> {
    let current = s.vault.as_ref().map(|v| v.key_id.as_str());
    let open = s.open_rotation.as_ref();
    s.keys
        .iter()
        .filter_map(|k| marker::rotation_id(&k.description).map(|rid| (*k, rid)))
        .filter(|(k, rid)| {
            !s.known_rotations.contains(*rid)
                && Some(k.id.as_str()) != current
                && !open.is_some_and(|o| {
                    o.rotation_id == *rid || o.new_key_id.as_deref() == Some(k.id.as_str())
                })
                && !s.retirements.iter().any(|r| r.key_id == k.id)
        })
        .collect()
}

/// R3: the rotation that promoted the current key, when the key is proven
/// (R1) and the rotation unknown locally (another instance promoted it).
fn unknown_promotion<'s>(s: &'s LineageSnapshot<'_>) -> Option<(&'s Key, &'s VaultView, &'s str)> {
    let view = s.vault.as_ref()?;
    let rid = view.rotation_id.as_deref()?;
    let current = s.keys.iter().find(|k| k.id == view.key_id)?;
    (proven(current, view) && !s.known_rotations.contains(rid)).then_some((*current, view, rid))
}

/// Whether the sweep must read the lineage's pending path before planning:
/// a foreign key is listed, or the current key's rotation is unknown locally.
pub fn needs_pending(s: &LineageSnapshot<'_>) -> bool {
    !foreign(s).is_empty() || unknown_promotion(s).is_some()
}

/// What the takeover rules decided, for the other parts of the planner.
#[derive(Debug, Default)]
pub(crate) struct Taken<'s> {
    /// Keys whose fate is decided here (the other parts plan no action for them).
    pub handled: HashSet<&'s str>,
    /// Another instance's rotation is adopted: it is the lineage's rotation in flight.
    pub adopting: bool,
}

/// Adds the takeover actions (first in the plan) and returns what was decided.
pub(super) fn plan<'s>(
    s: &'s LineageSnapshot<'_>,
    facts: &Facts<'_>,
    draft: &mut Draft,
) -> Taken<'s> {
    let mut taken = Taken::default();
    let foreign = foreign(s);
    if s.pending == Pending::NotRead {
        // Nothing can be decided about them without the pending path: left alone.
        for (k, _) in &foreign {
            taken.handled.insert(k.id.as_str());
            draft.look(&k.id, KeyRole::Other, NextStep::None, None);
        }
        return taken;
    }
    if let Some((current, view, rid)) = unknown_promotion(s) {
        draft.actions.push(Action::AcceptPromoted {
            rotation_id: rid.to_string(),
            key_id: current.id.clone(),
            version: view.version,
            unstage: s.pending.holds(&current.id, rid),
        });
    }
    for (key, rid) in foreign {
        let id = key.id.as_str();
        if s.pending.holds(id, rid) {
            taken.handled.insert(id);
            match dead_key(Some(key), s.now) {
                // R2a: alive at the pending path; adopted unless a local
                // rotation is already in flight (then it waits for that one).
                None if s.open_rotation.is_none() && !taken.adopting => {
                    taken.adopting = true;
                    let phase = if key.state == KeyState::Active {
                        RotationPhase::Active
                    } else {
                        RotationPhase::Stored
                    };
                    draft.actions.push(Action::Adopt {
                        rotation_id: rid.to_string(),
                        key_id: key.id.clone(),
                        phase,
                        old_key_id: facts.current_id.map(str::to_string),
                        cas: s.vault.as_ref().map_or(0, |v| v.version),
                    });
                    draft.look(id, KeyRole::Incoming, NextStep::None, None);
                }
                None => draft.look(id, KeyRole::Incoming, NextStep::None, None),
                // R2b: it can never be verified: the pending entry goes, an
                // inactive key is deleted, a suspended one only reported.
                Some(why) => {
                    draft.actions.push(Action::Discard {
                        rotation_id: rid.to_string(),
                        key_id: key.id.clone(),
                        why,
                        unstage: true,
                    });
                    dispose_dead(key, rid, draft);
                }
            }
            continue;
        }
        match key.state {
            // R2e: a previously-current key in its overlap: tracked and
            // retired behind a verified current key (`listed`).
            KeyState::Active => {}
            // Never toggled: recorded as another instance's abandoned rotation
            // (so the pending path is not read again for it), and reported.
            KeyState::Suspended => {
                taken.handled.insert(id);
                draft.actions.push(Action::Discard {
                    rotation_id: rid.to_string(),
                    key_id: key.id.clone(),
                    why: DeadKey::Suspended,
                    unstage: false,
                });
                draft.look(id, KeyRole::Other, NextStep::None, None);
            }
            KeyState::Inactive => {
                taken.handled.insert(id);
                if created_after_current(key, facts) {
                    // R2c: an orphan of a rotation that never promoted.
                    draft.actions.push(Action::CleanupOrphan {
                        key_id: key.id.clone(),
                        rotation_id: rid.to_string(),
                    });
                    draft.look(id, KeyRole::Orphan, NextStep::Delete, Some(s.now));
                    draft.because(id, Why::Orphan);
                } else {
                    // R2d: a key a previous leader retired (deactivated).
                    draft.actions.push(Action::RetireInactive {
                        key_id: key.id.clone(),
                        rotation_id: rid.to_string(),
                    });
                    let at = s.now
                        + chrono::Duration::from_std(s.policy.delete_after)
                            .unwrap_or(chrono::Duration::MAX);
                    draft.look(id, KeyRole::Retiring, NextStep::Delete, Some(at));
                    draft.because(id, Why::DeleteAfter);
                }
            }
        }
    }
    taken
}

/// A dead key found at the pending path: an inactive one is deleted (it was
/// never served), a suspended or active one is left to the other rules.
fn dispose_dead(key: &Key, rid: &str, draft: &mut Draft) {
    if key.state == KeyState::Inactive {
        draft.actions.push(Action::CleanupOrphan {
            key_id: key.id.clone(),
            rotation_id: rid.to_string(),
        });
        draft.look(&key.id, KeyRole::Orphan, NextStep::Delete, None);
        draft.because(&key.id, Why::Orphan);
    } else {
        draft.look(&key.id, KeyRole::Other, NextStep::None, None);
    }
}

/// Whether `key` was created after the lineage's current key, or there is no
/// listed current key. Unknown creation times count as "before" (the key is
/// then deleted `delete_after` later rather than now).
fn created_after_current(key: &Key, facts: &Facts<'_>) -> bool {
    match facts.current {
        None => true,
        Some(c) => matches!((key.created_at, c.created_at), (Some(k), Some(c)) if k > c),
    }
}

#[cfg(test)]
mod tests;
