//! Table tests of the takeover rules R1–R3 (docs/design.md, "Reconciliation
//! after a takeover"): each branch, and when the pending path is read at all.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::super::{plan_lineage, Action, LineagePlan, LineageSnapshot, Note};
use super::*;
use crate::engine::model::{DueReason, LineageId, RetirePhase, RetirementRecord, RotationRecord};
use crate::engine::policy::Policy;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// A key of rotation `rid` (None: made by hand), created `age_days` ago.
fn key(id: &str, state: KeyState, rid: Option<&str>, age_days: i64) -> Key {
    Key {
        id: id.into(),
        name: "ci-build".into(),
        description: rid.map(marker::description).unwrap_or_default(),
        state,
        created_at: Some(t0() - Duration::days(age_days)),
        expiry: Some(t0() + Duration::days(20)),
        last_request_at: None,
    }
}

struct Case {
    keys: Vec<Key>,
    vault: Option<VaultView>,
    known: HashSet<String>,
    open: Option<RotationRecord>,
    retirements: Vec<RetirementRecord>,
    verified: HashSet<String>,
    pending: Pending,
}

impl Case {
    /// The current key C (rotation R0, promoted by another instance, 5 days
    /// old) at Vault version 4, and the hand-made key it replaced.
    fn after_takeover() -> Case {
        Case {
            keys: vec![
                key("C", KeyState::Active, Some("R0"), 5),
                key("H", KeyState::Active, None, 40),
            ],
            vault: Some(VaultView {
                key_id: "C".into(),
                version: 4,
                rotation_id: Some("R0".into()),
            }),
            known: HashSet::new(),
            open: None,
            retirements: vec![],
            verified: HashSet::new(),
            pending: Pending::NotRead,
        }
    }

    /// The same, with R0 known locally (steady state for this instance).
    fn steady() -> Case {
        let mut c = Case::after_takeover();
        c.known.insert("R0".into());
        c
    }

    fn with(mut self, k: Key) -> Case {
        self.keys.push(k);
        self
    }

    fn pending(mut self, key_id: &str, rid: &str) -> Case {
        self.pending = Pending::Holds {
            key_id: key_id.into(),
            rotation_id: rid.into(),
        };
        self
    }

    fn read_empty(mut self) -> Case {
        self.pending = Pending::Empty;
        self
    }

    fn snapshot(&self) -> LineageSnapshot<'_> {
        LineageSnapshot {
            lineage: LineageId::new("T1", "ci-build"),
            keys: self.keys.iter().collect(),
            vault: self.vault.clone(),
            open_rotation: self.open.clone(),
            rolled_back: HashSet::new(),
            known_rotations: self.known.clone(),
            retirements: self.retirements.clone(),
            verified: &self.verified,
            policy: Policy::default(),
            now: t0(),
            rotate_now: false,
            pending: self.pending.clone(),
        }
    }

    fn needs_pending(&self) -> bool {
        needs_pending(&self.snapshot())
    }

    fn plan(&self) -> LineagePlan {
        plan_lineage(&self.snapshot())
    }
}

fn open_rotation(rid: &str, new_key: Option<&str>) -> RotationRecord {
    RotationRecord {
        rotation_id: rid.into(),
        lineage: LineageId::new("T1", "ci-build"),
        reason: DueReason::MaxAge,
        old_key_id: Some("C".into()),
        new_key_id: new_key.map(str::to_string),
        phase: RotationPhase::Creating,
        cas: 4,
        vault_version: None,
        started_at: t0(),
        stored_at: None,
        last_error: None,
    }
}

#[test]
fn r1_the_current_key_is_proven_by_its_marker_and_the_secrets_rotation_id() {
    let c = Case::after_takeover();
    let view = c.vault.clone().unwrap();
    assert!(proven(&c.keys[0], &view));
    // another rotation's marker, no marker, no rotation id in the view, inactive: not proven
    assert!(!proven(&key("C", KeyState::Active, Some("R9"), 5), &view));
    assert!(!proven(&key("C", KeyState::Active, None, 5), &view));
    let mut bare = view.clone();
    bare.rotation_id = None;
    assert!(!proven(&c.keys[0], &bare));
    assert!(!proven(&key("C", KeyState::Inactive, Some("R0"), 5), &view));
    assert!(!proven(&c.keys[1], &view), "not the key Vault names");
    // Proven, the current key lets the lineage retire the key it replaced
    // (tracked, then deactivated behind it) although this instance never verified it.
    let plan = Case::steady().plan();
    assert_eq!(plan.actions, vec![Action::Track { key_id: "H".into() }]);
    let mut unproven = Case::steady();
    unproven.vault.as_mut().unwrap().rotation_id = Some("R9".into());
    assert!(unproven.plan().actions.is_empty(), "{:?}", unproven.plan());
}

#[test]
fn no_foreign_key_and_a_known_current_rotation_read_no_pending_path() {
    assert!(!Case::steady().needs_pending());
    // Hand-made keys carry no marker: never foreign.
    let c = Case::steady().with(key("X", KeyState::Inactive, None, 1));
    assert!(!c.needs_pending());
    // The local open rotation's key and a key a retirement tracks are not foreign.
    let mut c = Case::steady().with(key("N", KeyState::Inactive, Some("R1"), 0));
    c.open = Some(open_rotation("R1", Some("N")));
    assert!(!c.needs_pending());
    let mut c = Case::steady().with(key("D", KeyState::Inactive, Some("R7"), 30));
    c.retirements.push(RetirementRecord {
        key_id: "D".into(),
        lineage: LineageId::new("T1", "ci-build"),
        rotation_id: Some("R7".into()),
        replaced_at: t0(),
        phase: RetirePhase::Inactive,
        deactivated_at: Some(t0()),
    });
    assert!(!c.needs_pending());
    // Lineages without a secret, or whose current key has no marker: no read either.
    let mut c = Case::steady();
    c.vault = None;
    assert!(!c.needs_pending());
    // Not read, a foreign key is left alone (nothing decided without the pending path).
    let c = Case::steady().with(key("N", KeyState::Inactive, Some("R1"), 0));
    assert!(c.needs_pending());
    assert!(c.plan().actions.iter().all(|a| a.key_id() != Some("N")));
}

#[test]
fn r3_the_current_keys_unknown_rotation_is_recorded_and_its_pending_entry_removed() {
    let c = Case::after_takeover();
    assert!(c.needs_pending());
    let accept = |unstage| Action::AcceptPromoted {
        rotation_id: "R0".into(),
        key_id: "C".into(),
        version: 4,
        unstage,
    };
    // The promotion landed, the removal of the pending entry did not.
    let plan = Case::after_takeover().pending("C", "R0").plan();
    assert_eq!(plan.actions[0], accept(true));
    // Nothing (or another key) at the pending path: only recorded.
    assert_eq!(
        Case::after_takeover().read_empty().plan().actions[0],
        accept(false)
    );
    let other = Case::after_takeover().pending("C", "R5").plan();
    assert_eq!(other.actions[0], accept(false));
    // Once known, no read: the steady case above.
    assert!(!Case::steady().needs_pending());
}

#[test]
fn r2a_a_live_foreign_key_at_the_pending_path_is_adopted_and_no_rotation_starts() {
    for (state, phase) in [
        (KeyState::Inactive, RotationPhase::Stored),
        (KeyState::Active, RotationPhase::Active),
    ] {
        let mut c = Case::steady()
            .with(key("N", state, Some("R1"), 0))
            .pending("N", "R1");
        // The current key is due (expiring): the adoption is that rotation.
        c.keys[0].expiry = Some(t0() + Duration::days(1));
        assert!(c.needs_pending());
        let plan = c.plan();
        assert_eq!(
            plan.actions,
            vec![Action::Adopt {
                rotation_id: "R1".into(),
                key_id: "N".into(),
                phase,
                old_key_id: Some("C".into()),
                cas: 4,
            }],
            "{state}"
        );
    }
    // No secret in Vault yet (the dead leader's adoption of the lineage): cas 0.
    let mut c = Case::steady()
        .with(key("N", KeyState::Inactive, Some("R1"), 0))
        .pending("N", "R1");
    c.vault = None;
    c.keys.remove(0);
    let plan = c.plan();
    assert!(
        matches!(
            &plan.actions[..],
            [Action::Adopt {
                cas: 0,
                old_key_id: None,
                ..
            }]
        ),
        "{plan:?}"
    );
    // A local rotation in flight goes first: the foreign key waits.
    let mut c = Case::steady()
        .with(key("N", KeyState::Inactive, Some("R1"), 0))
        .pending("N", "R1");
    c.open = Some(open_rotation("R2", None));
    let plan = c.plan();
    assert!(
        plan.actions.iter().all(|a| a.key_id() != Some("N")),
        "{plan:?}"
    );
    assert!(matches!(plan.actions[0], Action::Resume { .. }));
}

#[test]
fn r2b_a_dead_foreign_key_at_the_pending_path_is_discarded_never_toggled() {
    // Expired and inactive: the pending entry goes, the key is deleted.
    let mut expired = key("N", KeyState::Inactive, Some("R1"), 31);
    expired.expiry = Some(t0() - Duration::hours(1));
    let plan = Case::steady().with(expired).pending("N", "R1").plan();
    assert_eq!(
        plan.actions,
        vec![
            Action::Discard {
                rotation_id: "R1".into(),
                key_id: "N".into(),
                why: DeadKey::Expired,
                unstage: true
            },
            Action::CleanupOrphan {
                key_id: "N".into(),
                rotation_id: "R1".into()
            },
            Action::Track { key_id: "H".into() },
        ]
    );
    // Suspended: the pending entry goes, the key is only reported.
    let plan = Case::steady()
        .with(key("N", KeyState::Suspended, Some("R1"), 0))
        .pending("N", "R1")
        .plan();
    assert_eq!(
        plan.actions[0],
        Action::Discard {
            rotation_id: "R1".into(),
            key_id: "N".into(),
            why: DeadKey::Suspended,
            unstage: true
        }
    );
    assert!(plan.actions[1..].iter().all(|a| a.key_id() != Some("N")));
    assert!(plan.notes.contains(&Note::Suspended { key_id: "N".into() }));
    // Suspended and not pending: recorded (no read next time), reported, untouched.
    let plan = Case::steady()
        .with(key("N", KeyState::Suspended, Some("R1"), 0))
        .read_empty()
        .plan();
    assert!(matches!(
        &plan.actions[0],
        Action::Discard { unstage: false, .. }
    ));
    assert!(plan.actions[1..].iter().all(|a| a.key_id() != Some("N")));
}

#[test]
fn r2c_an_inactive_foreign_key_newer_than_the_current_key_is_an_orphan() {
    let orphan = Action::CleanupOrphan {
        key_id: "N".into(),
        rotation_id: "R1".into(),
    };
    let plan = Case::steady()
        .with(key("N", KeyState::Inactive, Some("R1"), 0))
        .read_empty()
        .plan();
    assert_eq!(plan.actions[0], orphan);
    // The pending path holding another key changes nothing.
    let plan = Case::steady()
        .with(key("N", KeyState::Inactive, Some("R1"), 0))
        .pending("Z", "R9")
        .plan();
    assert_eq!(plan.actions[0], orphan);
    // No current key at all (the dead leader was adopting the lineage).
    let mut c = Case::steady()
        .with(key("N", KeyState::Inactive, Some("R1"), 0))
        .read_empty();
    c.vault = None;
    c.keys.remove(0);
    let plan = c.plan();
    assert_eq!(plan.actions[0], orphan);
    assert!(matches!(
        plan.actions[1],
        Action::Rotate {
            reason: DueReason::Adoption,
            ..
        }
    ));
}

#[test]
fn r2d_an_inactive_foreign_key_older_than_the_current_key_is_deleted_after_delete_after() {
    let retire = Action::RetireInactive {
        key_id: "P".into(),
        rotation_id: "R7".into(),
    };
    let c = Case::steady()
        .with(key("P", KeyState::Inactive, Some("R7"), 35))
        .read_empty();
    let plan = c.plan();
    assert!(plan.actions.contains(&retire), "{plan:?}");
    assert!(!plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::CleanupOrphan { .. })));
    // Unknown creation times count as older: never deleted at once.
    let mut undated = key("P", KeyState::Inactive, Some("R7"), 0);
    undated.created_at = None;
    let plan = Case::steady().with(undated).read_empty().plan();
    assert!(plan.actions.contains(&retire), "{plan:?}");
}

#[test]
fn r2e_an_active_foreign_key_not_pending_is_tracked_behind_a_verified_current_key() {
    let plan = Case::steady()
        .with(key("P", KeyState::Active, Some("R7"), 35))
        .read_empty()
        .plan();
    assert!(plan.actions.contains(&Action::Track { key_id: "P".into() }));
    // Without a verified current key nothing retires.
    let mut c = Case::steady()
        .with(key("P", KeyState::Active, Some("R7"), 35))
        .read_empty();
    c.vault.as_mut().unwrap().rotation_id = None;
    assert!(c.plan().actions.is_empty(), "{:?}", c.plan());
}

#[test]
fn r3_and_r2_share_one_read_and_come_before_the_rotation() {
    // The dead leader promoted C (R0), then started R1 and staged N.
    let mut c = Case::after_takeover()
        .with(key("N", KeyState::Inactive, Some("R1"), 0))
        .pending("N", "R1");
    c.keys[0].expiry = Some(t0() + Duration::days(1));
    let plan = c.plan();
    assert_eq!(
        plan.actions.iter().map(|a| a.kind()).collect::<Vec<_>>(),
        vec![
            super::super::ActionKind::AcceptPromoted,
            super::super::ActionKind::Adopt
        ]
    );
    assert!(matches!(
        plan.actions[0],
        Action::AcceptPromoted { unstage: false, .. }
    ));
}
