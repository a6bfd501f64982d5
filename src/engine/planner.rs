//! The planner: a pure function from what the daemon sees to what is due.
//!
//! Input is one [`LineageSnapshot`] (the lineage's keys from the team's list call,
//! the Vault view, the engine's records, the policy and `now`); output is a
//! [`LineagePlan`]: the actions to take and, for every key, what happens next and
//! when. No I/O happens here, so every rule of the policy (docs/design.md, section 4) and the safety guards of
//! invariants 1 and 2 are tested as a table and as properties, without a network.
//!
//! The executor re-checks the guards right before each call (defence in depth),
//! but a plan that would break an invariant is a bug here first.

pub mod recovery;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::marker;
use super::model::{
    DueReason, LineageId, RetirePhase, RetirementRecord, RotationPhase, RotationRecord, VaultView,
};
use crate::config::Policy;
use crate::masv::{ApiKey, KeyState};

/// Everything the planner knows about one lineage at one instant.
#[derive(Debug, Clone)]
pub struct LineageSnapshot<'a> {
    pub lineage: LineageId,
    /// The team's listed keys with this lineage's name.
    pub keys: Vec<&'a ApiKey>,
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
}

impl Action {
    /// Whether carrying this action out changes MASV or Vault.
    pub fn mutates(&self) -> bool {
        !matches!(self, Action::Track { .. } | Action::Forget { .. })
    }

    pub fn key_id(&self) -> Option<&str> {
        match self {
            Action::Rotate { old_key_id, .. } => old_key_id.as_deref(),
            Action::Resume { .. } => None,
            Action::Deactivate { key_id, .. }
            | Action::Delete { key_id }
            | Action::CleanupOrphan { key_id, .. }
            | Action::Track { key_id }
            | Action::Forget { key_id } => Some(key_id),
        }
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

/// Per-key outlook, for `status` and `report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyOutlook {
    pub key_id: String,
    pub role: KeyRole,
    pub next: NextStep,
    /// When the next step is due (None: not scheduled).
    pub next_at: Option<DateTime<Utc>>,
}

/// The plan for one lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineagePlan {
    pub lineage: LineageId,
    pub actions: Vec<Action>,
    pub notes: Vec<Note>,
    pub keys: Vec<KeyOutlook>,
}

fn dur(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

/// When the current key falls due, and whether that is now.
fn current_due(
    key: &ApiKey,
    policy: &Policy,
    now: DateTime<Utc>,
) -> (Option<DueReason>, Option<DateTime<Utc>>) {
    match key.state {
        KeyState::Suspended => return (Some(DueReason::CurrentSuspended), Some(now)),
        KeyState::Inactive => return (Some(DueReason::CurrentInactive), Some(now)),
        KeyState::Active => {}
    }
    let by_expiry = key
        .expiry
        .map(|e| (DueReason::Expiring, e - dur(policy.rotate_before_expiry)));
    let by_age = key
        .created_at
        .map(|c| (DueReason::MaxAge, c + dur(policy.max_age)));
    let earliest = match (by_expiry, by_age) {
        (Some(a), Some(b)) => Some(if a.1 <= b.1 { a } else { b }),
        (a, b) => a.or(b),
    };
    match earliest {
        Some((reason, at)) if at <= now => (Some(reason), Some(at)),
        Some((_, at)) => (None, Some(at)),
        None => (None, None),
    }
}

/// Whether a key has gone unused for `unused_after` (never-used keys count from creation).
pub fn is_stale(key: &ApiKey, policy: &Policy, now: DateTime<Utc>) -> bool {
    let since = key.last_request_at.or(key.created_at);
    since.is_some_and(|t| now - t >= dur(policy.unused_after))
}

/// Plans one lineage.
pub fn plan_lineage(s: &LineageSnapshot<'_>) -> LineagePlan {
    let now = s.now;
    let p = &s.policy;
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    let mut outlook: BTreeMap<String, KeyOutlook> = BTreeMap::new();
    let by_id: BTreeMap<&str, &ApiKey> = s.keys.iter().map(|k| (k.id.as_str(), *k)).collect();

    let current_id = s.vault.as_ref().map(|v| v.key_id.as_str());
    let current = current_id.and_then(|id| by_id.get(id).copied());
    // Invariant 1's precondition for deactivating anything in this lineage.
    let verified_current = current
        .filter(|c| c.state == KeyState::Active && s.verified.contains(&c.id))
        .map(|c| c.id.as_str());

    // 1. The rotation: resume the open one, or start one if the current key is due.
    let incoming = s.open_rotation.as_ref().and_then(|r| r.new_key_id.clone());
    if let Some(open) = &s.open_rotation {
        actions.push(Action::Resume {
            rotation_id: open.rotation_id.clone(),
            phase: open.phase,
        });
    } else {
        let (reason, at) = match (s.vault.as_ref(), current) {
            (None, _) => (Some(DueReason::Adoption), Some(now)),
            (Some(_), None) => (Some(DueReason::CurrentGone), Some(now)),
            (Some(_), Some(c)) => current_due(c, p, now),
        };
        if let Some(c) = current {
            outlook.insert(
                c.id.clone(),
                KeyOutlook {
                    key_id: c.id.clone(),
                    role: KeyRole::Current,
                    next: if at.is_some() {
                        NextStep::Rotate
                    } else {
                        NextStep::None
                    },
                    next_at: at,
                },
            );
        }
        // A lineage known only from Vault whose keys are all gone is still
        // rotated: consumers read that secret.
        if let Some(reason) = reason {
            actions.push(Action::Rotate {
                reason,
                old_key_id: current_id.map(str::to_string),
                cas: s.vault.as_ref().map_or(0, |v| v.version),
            });
        }
    }
    if let (Some(c), Some(_)) = (current, &s.open_rotation) {
        outlook.insert(
            c.id.clone(),
            KeyOutlook {
                key_id: c.id.clone(),
                role: KeyRole::Current,
                next: NextStep::Rotate,
                next_at: Some(now),
            },
        );
    }
    if let Some(id) = &incoming {
        if by_id.contains_key(id.as_str()) {
            outlook.insert(
                id.clone(),
                KeyOutlook {
                    key_id: id.clone(),
                    role: KeyRole::Incoming,
                    next: NextStep::None,
                    next_at: None,
                },
            );
        }
    }

    // 2. Replaced keys: deactivate after grace + idle (or max overlap), delete after delete_after.
    let mut tracked: HashSet<&str> = HashSet::new();
    for r in &s.retirements {
        tracked.insert(r.key_id.as_str());
        if r.phase == RetirePhase::Deleted {
            continue;
        }
        let Some(key) = by_id.get(r.key_id.as_str()).copied() else {
            // MASV no longer lists it: deleted (by us, resumed, or by someone else).
            actions.push(Action::Forget {
                key_id: r.key_id.clone(),
            });
            continue;
        };
        let mut look = KeyOutlook {
            key_id: key.id.clone(),
            role: KeyRole::Retiring,
            next: NextStep::None,
            next_at: None,
        };
        match r.phase {
            RetirePhase::Waiting | RetirePhase::Deactivating => match key.state {
                KeyState::Suspended => notes.push(Note::Suspended {
                    key_id: key.id.clone(),
                }),
                KeyState::Inactive if r.phase == RetirePhase::Waiting => {
                    // Deactivated by someone else: not ours to delete.
                }
                _ => {
                    if Some(key.id.as_str()) == current_id || verified_current.is_none() {
                        notes.push(Note::NoVerifiedReplacement {
                            key_id: key.id.clone(),
                        });
                    } else {
                        let grace_end = r.replaced_at + dur(p.grace_period);
                        let overlap_end = r.replaced_at + dur(p.max_overlap);
                        let idle_end = key
                            .last_request_at
                            .map(|t| t + dur(p.idle_before_deactivate));
                        let gated_end = match idle_end {
                            Some(i) if i > grace_end => i,
                            _ => grace_end,
                        };
                        let due_at = gated_end.min(overlap_end);
                        look.next = NextStep::Deactivate;
                        look.next_at = Some(due_at);
                        if r.phase == RetirePhase::Deactivating || gated_end <= now {
                            actions.push(Action::Deactivate {
                                key_id: key.id.clone(),
                                reason: DeactivateReason::GraceAndIdle,
                            });
                        } else if overlap_end <= now {
                            actions.push(Action::Deactivate {
                                key_id: key.id.clone(),
                                reason: DeactivateReason::MaxOverlap,
                            });
                        } else if grace_end <= now {
                            notes.push(Note::InUse {
                                key_id: key.id.clone(),
                            });
                        }
                    }
                }
            },
            RetirePhase::Inactive | RetirePhase::Deleting => match key.state {
                KeyState::Active => notes.push(Note::Reactivated {
                    key_id: key.id.clone(),
                }),
                KeyState::Suspended => notes.push(Note::Suspended {
                    key_id: key.id.clone(),
                }),
                KeyState::Inactive => {
                    let delete_at = r
                        .deactivated_at
                        .map(|d| d + dur(p.delete_after))
                        .unwrap_or(now);
                    look.next = NextStep::Delete;
                    look.next_at = Some(delete_at);
                    if r.deactivated_at.is_some()
                        && (r.phase == RetirePhase::Deleting || delete_at <= now)
                    {
                        actions.push(Action::Delete {
                            key_id: key.id.clone(),
                        });
                    }
                }
            },
            RetirePhase::Deleted => {}
        }
        outlook.insert(key.id.clone(), look);
    }

    // 3. Everything else listed: orphans, extra keys, suspended and stale reports.
    for key in &s.keys {
        let id = key.id.as_str();
        if key.state == KeyState::Suspended && !tracked.contains(id) {
            notes.push(Note::Suspended {
                key_id: key.id.clone(),
            });
        }
        if key.state == KeyState::Active && is_stale(key, p, now) {
            notes.push(Note::Stale {
                key_id: key.id.clone(),
            });
        }
        if Some(id) == current_id || tracked.contains(id) || incoming.as_deref() == Some(id) {
            continue;
        }
        let marked = marker::rotation_id(&key.description);
        let orphan = marked.is_some_and(|rid| {
            let ours_open = s
                .open_rotation
                .as_ref()
                .is_some_and(|r| r.rotation_id == rid);
            !ours_open
                && (s.rolled_back.contains(rid)
                    || (!s.known_rotations.contains(rid) && key.state == KeyState::Inactive))
        });
        if orphan {
            let rotation_id = marked.unwrap_or_default().to_string();
            if key.state == KeyState::Inactive {
                actions.push(Action::CleanupOrphan {
                    key_id: key.id.clone(),
                    rotation_id,
                });
            } else {
                notes.push(Note::ActiveOrphan {
                    key_id: key.id.clone(),
                });
            }
            outlook.insert(
                key.id.clone(),
                KeyOutlook {
                    key_id: key.id.clone(),
                    role: KeyRole::Orphan,
                    next: if key.state == KeyState::Inactive {
                        NextStep::Delete
                    } else {
                        NextStep::None
                    },
                    next_at: (key.state == KeyState::Inactive).then_some(now),
                },
            );
            continue;
        }
        if key.state == KeyState::Active && verified_current.is_some() && s.open_rotation.is_none()
        {
            actions.push(Action::Track {
                key_id: key.id.clone(),
            });
        }
        outlook.insert(
            key.id.clone(),
            KeyOutlook {
                key_id: key.id.clone(),
                role: KeyRole::Other,
                next: NextStep::None,
                next_at: None,
            },
        );
    }

    LineagePlan {
        lineage: s.lineage.clone(),
        actions,
        notes,
        keys: outlook.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn key(id: &str, state: KeyState) -> ApiKey {
        ApiKey {
            id: id.into(),
            name: "ci-build".into(),
            description: String::new(),
            state,
            created_at: Some(t0() - Duration::days(10)),
            updated_at: None,
            expiry: Some(t0() + Duration::days(20)),
            last_request_at: Some(t0() - Duration::minutes(1)),
        }
    }

    #[derive(Debug, Clone)]
    struct World {
        keys: Vec<ApiKey>,
        vault: Option<VaultView>,
        open: Option<RotationRecord>,
        rolled_back: HashSet<String>,
        known: HashSet<String>,
        retirements: Vec<RetirementRecord>,
        verified: HashSet<String>,
        policy: Policy,
        now: DateTime<Utc>,
    }

    impl World {
        fn new(keys: Vec<ApiKey>) -> Self {
            World {
                keys,
                vault: None,
                open: None,
                rolled_back: HashSet::new(),
                known: HashSet::new(),
                retirements: vec![],
                verified: HashSet::new(),
                policy: Policy::default(),
                now: t0(),
            }
        }
        fn with_current(mut self, id: &str) -> Self {
            self.vault = Some(VaultView {
                key_id: id.into(),
                version: 3,
            });
            self.verified.insert(id.into());
            self
        }
        fn retiring(
            mut self,
            id: &str,
            replaced_ago: Duration,
            phase: RetirePhase,
            deactivated_ago: Option<Duration>,
        ) -> Self {
            self.retirements.push(RetirementRecord {
                key_id: id.into(),
                lineage: LineageId::new("T1", "ci-build"),
                rotation_id: Some("R0".into()),
                replaced_at: self.now - replaced_ago,
                phase,
                deactivated_at: deactivated_ago.map(|d| self.now - d),
            });
            self
        }
        fn plan(&self) -> LineagePlan {
            plan_lineage(&LineageSnapshot {
                lineage: LineageId::new("T1", "ci-build"),
                keys: self.keys.iter().collect(),
                vault: self.vault.clone(),
                open_rotation: self.open.clone(),
                rolled_back: self.rolled_back.clone(),
                known_rotations: self.known.clone(),
                retirements: self.retirements.clone(),
                verified: &self.verified,
                policy: self.policy,
                now: self.now,
            })
        }
    }

    fn rotate_reason(plan: &LineagePlan) -> Option<DueReason> {
        plan.actions.iter().find_map(|a| match a {
            Action::Rotate { reason, .. } => Some(*reason),
            _ => None,
        })
    }

    #[test]
    fn healthy_current_key_is_not_due() {
        let w = World::new(vec![key("A", KeyState::Active)]).with_current("A");
        let plan = w.plan();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        let a = &plan.keys[0];
        assert_eq!((a.role, a.next), (KeyRole::Current, NextStep::Rotate));
        // due 7 days before expiry (expiry in 20 days) => in 13 days
        assert_eq!(a.next_at, Some(t0() + Duration::days(13)));
    }

    #[test]
    fn no_vault_secret_means_adoption() {
        let w = World::new(vec![key("A", KeyState::Active)]);
        let plan = w.plan();
        assert_eq!(rotate_reason(&plan), Some(DueReason::Adoption));
        assert!(matches!(
            &plan.actions[0],
            Action::Rotate {
                cas: 0,
                old_key_id: None,
                ..
            }
        ));
    }

    #[test]
    fn expiry_head_start_makes_it_due_including_the_boundary() {
        let mut k = key("A", KeyState::Active);
        k.expiry = Some(t0() + Duration::days(7));
        let w = World::new(vec![k]).with_current("A");
        assert_eq!(rotate_reason(&w.plan()), Some(DueReason::Expiring));
    }

    #[test]
    fn already_expired_key_is_still_rotated() {
        let mut k = key("A", KeyState::Active);
        k.expiry = Some(t0() - Duration::days(3));
        let w = World::new(vec![k]).with_current("A");
        assert_eq!(rotate_reason(&w.plan()), Some(DueReason::Expiring));
    }

    #[test]
    fn zero_expiry_never_triggers_expiry_but_max_age_does() {
        let mut k = key("A", KeyState::Active);
        k.expiry = None;
        let w = World::new(vec![k.clone()]).with_current("A");
        assert_eq!(rotate_reason(&w.plan()), None);
        k.created_at = Some(t0() - Duration::days(90));
        let w = World::new(vec![k]).with_current("A");
        assert_eq!(rotate_reason(&w.plan()), Some(DueReason::MaxAge));
    }

    #[test]
    fn current_suspended_inactive_or_gone_is_due() {
        for (state, reason) in [
            (KeyState::Suspended, DueReason::CurrentSuspended),
            (KeyState::Inactive, DueReason::CurrentInactive),
        ] {
            let w = World::new(vec![key("A", state)]).with_current("A");
            assert_eq!(rotate_reason(&w.plan()), Some(reason));
        }
        let w = World::new(vec![key("B", KeyState::Active)]).with_current("A");
        assert_eq!(rotate_reason(&w.plan()), Some(DueReason::CurrentGone));
        let w = World::new(vec![]).with_current("A");
        assert_eq!(rotate_reason(&w.plan()), Some(DueReason::CurrentGone));
    }

    #[test]
    fn suspended_current_is_replaced_but_never_toggled() {
        let w = World::new(vec![key("A", KeyState::Suspended)]).with_current("A");
        let plan = w.plan();
        assert!(plan
            .actions
            .iter()
            .all(|a| !matches!(a, Action::Deactivate { .. } | Action::Delete { .. })));
    }

    #[test]
    fn open_rotation_is_resumed_never_doubled() {
        let mut w = World::new(vec![key("A", KeyState::Inactive)]).with_current("A");
        w.open = Some(RotationRecord {
            rotation_id: "R1".into(),
            lineage: LineageId::new("T1", "ci-build"),
            reason: DueReason::CurrentInactive,
            old_key_id: Some("A".into()),
            new_key_id: None,
            phase: RotationPhase::Creating,
            cas: 3,
            vault_version: None,
            started_at: t0(),
            stored_at: None,
            last_error: None,
        });
        let plan = w.plan();
        assert_eq!(
            plan.actions,
            vec![Action::Resume {
                rotation_id: "R1".into(),
                phase: RotationPhase::Creating
            }]
        );
    }

    #[test]
    fn in_use_key_waits_past_grace_until_idle() {
        let mut old = key("OLD", KeyState::Active);
        old.last_request_at = Some(t0() - Duration::minutes(5)); // idle gate: 15m
        let w = World::new(vec![old, key("NEW", KeyState::Active)])
            .with_current("NEW")
            .retiring("OLD", Duration::hours(2), RetirePhase::Waiting, None);
        let plan = w.plan();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert!(plan.notes.contains(&Note::InUse {
            key_id: "OLD".into()
        }));
        let look = plan.keys.iter().find(|k| k.key_id == "OLD").unwrap();
        assert_eq!(look.next_at, Some(t0() + Duration::minutes(10)));
    }

    #[test]
    fn idle_key_is_deactivated_after_grace() {
        let mut old = key("OLD", KeyState::Active);
        old.last_request_at = Some(t0() - Duration::minutes(20));
        let w = World::new(vec![old, key("NEW", KeyState::Active)])
            .with_current("NEW")
            .retiring("OLD", Duration::hours(2), RetirePhase::Waiting, None);
        assert_eq!(
            w.plan().actions,
            vec![Action::Deactivate {
                key_id: "OLD".into(),
                reason: DeactivateReason::GraceAndIdle
            }]
        );
    }

    #[test]
    fn idle_key_waits_for_grace() {
        let mut old = key("OLD", KeyState::Active);
        old.last_request_at = None;
        let w = World::new(vec![old, key("NEW", KeyState::Active)])
            .with_current("NEW")
            .retiring("OLD", Duration::minutes(30), RetirePhase::Waiting, None);
        assert!(w.plan().actions.is_empty());
    }

    #[test]
    fn busy_key_is_deactivated_at_max_overlap() {
        let mut old = key("OLD", KeyState::Active);
        old.last_request_at = Some(t0());
        let w = World::new(vec![old, key("NEW", KeyState::Active)])
            .with_current("NEW")
            .retiring("OLD", Duration::days(7), RetirePhase::Waiting, None);
        assert_eq!(
            w.plan().actions,
            vec![Action::Deactivate {
                key_id: "OLD".into(),
                reason: DeactivateReason::MaxOverlap
            }]
        );
    }

    #[test]
    fn no_deactivation_without_a_verified_active_replacement() {
        let old = key("OLD", KeyState::Active);
        // replacement stored but not verified
        let mut w = World::new(vec![old.clone(), key("NEW", KeyState::Active)])
            .with_current("NEW")
            .retiring("OLD", Duration::days(30), RetirePhase::Waiting, None);
        w.verified.clear();
        assert!(w
            .plan()
            .actions
            .iter()
            .all(|a| !matches!(a, Action::Deactivate { .. })));
        // replacement verified but suspended by MASV
        let w = World::new(vec![old, key("NEW", KeyState::Suspended)])
            .with_current("NEW")
            .retiring("OLD", Duration::days(30), RetirePhase::Waiting, None);
        assert!(w
            .plan()
            .actions
            .iter()
            .all(|a| !matches!(a, Action::Deactivate { .. })));
    }

    #[test]
    fn suspended_replaced_key_is_reported_not_toggled() {
        let w = World::new(vec![
            key("OLD", KeyState::Suspended),
            key("NEW", KeyState::Active),
        ])
        .with_current("NEW")
        .retiring("OLD", Duration::days(30), RetirePhase::Waiting, None);
        let plan = w.plan();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert!(plan.notes.contains(&Note::Suspended {
            key_id: "OLD".into()
        }));
    }

    #[test]
    fn delete_only_after_delete_after_and_only_if_inactive() {
        let base = || {
            World::new(vec![
                key("OLD", KeyState::Inactive),
                key("NEW", KeyState::Active),
            ])
            .with_current("NEW")
        };
        let w = base().retiring(
            "OLD",
            Duration::days(20),
            RetirePhase::Inactive,
            Some(Duration::days(6)),
        );
        assert!(w.plan().actions.is_empty());
        let w = base().retiring(
            "OLD",
            Duration::days(20),
            RetirePhase::Inactive,
            Some(Duration::days(7)),
        );
        assert_eq!(
            w.plan().actions,
            vec![Action::Delete {
                key_id: "OLD".into()
            }]
        );
        // re-activated by someone: never deleted
        let mut w = base().retiring(
            "OLD",
            Duration::days(20),
            RetirePhase::Inactive,
            Some(Duration::days(8)),
        );
        w.keys[0].state = KeyState::Active;
        let plan = w.plan();
        assert!(plan.actions.is_empty());
        assert!(plan.notes.contains(&Note::Reactivated {
            key_id: "OLD".into()
        }));
    }

    #[test]
    fn keys_deactivated_by_someone_else_are_never_deleted() {
        let w = World::new(vec![
            key("OLD", KeyState::Inactive),
            key("NEW", KeyState::Active),
        ])
        .with_current("NEW")
        .retiring("OLD", Duration::days(60), RetirePhase::Waiting, None);
        assert!(w.plan().actions.is_empty());
    }

    #[test]
    fn vanished_retirement_is_forgotten() {
        let w = World::new(vec![key("NEW", KeyState::Active)])
            .with_current("NEW")
            .retiring(
                "OLD",
                Duration::days(1),
                RetirePhase::Deleting,
                Some(Duration::days(8)),
            );
        assert_eq!(
            w.plan().actions,
            vec![Action::Forget {
                key_id: "OLD".into()
            }]
        );
    }

    #[test]
    fn inactive_marked_key_of_rolled_back_or_unknown_rotation_is_an_orphan() {
        let mut orphan = key("ORPH", KeyState::Inactive);
        orphan.description = marker::description("R9");
        let mut w = World::new(vec![key("A", KeyState::Active), orphan.clone()]).with_current("A");
        w.known.insert("R9".into());
        w.rolled_back.insert("R9".into());
        assert_eq!(
            w.plan().actions,
            vec![Action::CleanupOrphan {
                key_id: "ORPH".into(),
                rotation_id: "R9".into()
            }]
        );
        // unknown rotation (intent lost), inactive: orphan too
        let w = World::new(vec![key("A", KeyState::Active), orphan.clone()]).with_current("A");
        assert!(matches!(w.plan().actions[0], Action::CleanupOrphan { .. }));
        // but an active orphan is never deleted
        orphan.state = KeyState::Active;
        let mut w = World::new(vec![key("A", KeyState::Active), orphan]).with_current("A");
        w.rolled_back.insert("R9".into());
        let plan = w.plan();
        assert!(plan
            .actions
            .iter()
            .all(|a| !matches!(a, Action::CleanupOrphan { .. } | Action::Delete { .. })));
        assert!(plan.notes.contains(&Note::ActiveOrphan {
            key_id: "ORPH".into()
        }));
    }

    #[test]
    fn extra_active_key_is_tracked_once_current_is_verified() {
        let w = World::new(vec![key("A", KeyState::Active), key("X", KeyState::Active)])
            .with_current("A");
        assert_eq!(w.plan().actions, vec![Action::Track { key_id: "X".into() }]);
        let mut w = World::new(vec![key("A", KeyState::Active), key("X", KeyState::Active)])
            .with_current("A");
        w.verified.clear();
        assert!(w.plan().actions.is_empty());
    }

    #[test]
    fn stale_keys_are_reported() {
        let mut k = key("A", KeyState::Active);
        k.last_request_at = Some(t0() - Duration::days(31));
        let w = World::new(vec![k]).with_current("A");
        assert!(w.plan().notes.contains(&Note::Stale { key_id: "A".into() }));
        let mut k = key("B", KeyState::Active);
        k.last_request_at = None;
        k.created_at = Some(t0() - Duration::days(5));
        let w = World::new(vec![k]).with_current("B");
        assert!(w.plan().notes.is_empty());
    }

    // ---- properties: no plan breaks invariants 1 and 2 ----

    fn arb_state() -> impl Strategy<Value = KeyState> {
        prop_oneof![
            Just(KeyState::Active),
            Just(KeyState::Inactive),
            Just(KeyState::Suspended)
        ]
    }

    fn arb_phase() -> impl Strategy<Value = RetirePhase> {
        prop_oneof![
            Just(RetirePhase::Waiting),
            Just(RetirePhase::Deactivating),
            Just(RetirePhase::Inactive),
            Just(RetirePhase::Deleting),
            Just(RetirePhase::Deleted)
        ]
    }

    prop_compose! {
        fn arb_world()(
            states in proptest::collection::vec(arb_state(), 0..6),
            ages in proptest::collection::vec(0i64..200 * DAY, 6),
            used in proptest::collection::vec(proptest::option::of(0i64..40 * DAY), 6),
            current in proptest::option::of(0usize..7),
            verified in proptest::collection::vec(any::<bool>(), 7),
            retire in proptest::collection::vec(proptest::option::of((arb_phase(), 0i64..30 * DAY, proptest::option::of(0i64..30 * DAY))), 7),
            marked in proptest::collection::vec(any::<bool>(), 6),
            rolled in any::<bool>(),
        ) -> World {
            let now = t0();
            let keys: Vec<ApiKey> = states.iter().enumerate().map(|(i, st)| ApiKey {
                id: format!("K{i}"),
                name: "ci-build".into(),
                description: if marked[i] { marker::description(&format!("R{i}")) } else { String::new() },
                state: *st,
                created_at: Some(now - Duration::seconds(ages[i])),
                updated_at: None,
                expiry: Some(now + Duration::seconds(ages[i]) - Duration::days(60)),
                last_request_at: used[i].map(|u| now - Duration::seconds(u)),
            }).collect();
            let mut w = World::new(keys);
            // current may point at a listed key or at a gone one (index == len)
            if let Some(c) = current {
                w.vault = Some(VaultView { key_id: format!("K{c}"), version: 1 });
            }
            for (i, v) in verified.iter().enumerate() {
                if *v { w.verified.insert(format!("K{i}")); }
            }
            for (i, r) in retire.iter().enumerate() {
                if let Some((phase, replaced, deact)) = r {
                    let deactivated_at = match phase {
                        RetirePhase::Inactive | RetirePhase::Deleting => Some(now - Duration::seconds(deact.unwrap_or(0))),
                        _ => deact.map(|d| now - Duration::seconds(d)),
                    };
                    w.retirements.push(RetirementRecord {
                        key_id: format!("K{i}"),
                        lineage: LineageId::new("T1", "ci-build"),
                        rotation_id: None,
                        replaced_at: now - Duration::seconds(*replaced),
                        phase: *phase,
                        deactivated_at,
                    });
                }
            }
            for i in 0..6 {
                w.known.insert(format!("R{i}"));
                if rolled { w.rolled_back.insert(format!("R{i}")); }
            }
            w
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn invariant_1_no_deactivation_without_verified_newer_active_key(w in arb_world()) {
            let plan = w.plan();
            for a in &plan.actions {
                if let Action::Deactivate { key_id, .. } = a {
                    let current = w.vault.as_ref().map(|v| v.key_id.clone()).expect("a current key");
                    prop_assert_ne!(&current, key_id);
                    let c = w.keys.iter().find(|k| k.id == current).expect("current listed");
                    prop_assert_eq!(c.state, KeyState::Active);
                    prop_assert!(w.verified.contains(&current));
                    let k = w.keys.iter().find(|k| &k.id == key_id).unwrap();
                    prop_assert_ne!(k.state, KeyState::Suspended);
                }
            }
        }

        #[test]
        fn invariant_2_no_active_key_is_deleted_and_only_our_deactivations(w in arb_world()) {
            let plan = w.plan();
            for a in &plan.actions {
                match a {
                    Action::Delete { key_id } => {
                        let k = w.keys.iter().find(|k| &k.id == key_id).unwrap();
                        prop_assert_eq!(k.state, KeyState::Inactive);
                        let r = w.retirements.iter().find(|r| &r.key_id == key_id).unwrap();
                        prop_assert!(r.deactivated_at.is_some());
                    }
                    Action::CleanupOrphan { key_id, .. } => {
                        let k = w.keys.iter().find(|k| &k.id == key_id).unwrap();
                        prop_assert_eq!(k.state, KeyState::Inactive);
                        prop_assert_ne!(Some(key_id), w.vault.as_ref().map(|v| &v.key_id));
                    }
                    _ => {}
                }
            }
        }

        #[test]
        fn at_most_one_rotation_per_lineage(w in arb_world()) {
            let plan = w.plan();
            let n = plan.actions.iter().filter(|a| matches!(a, Action::Rotate { .. } | Action::Resume { .. })).count();
            prop_assert!(n <= 1);
        }
    }
}
