use super::*;
use crate::engine::marker;
use crate::engine::model::RetirePhase;
use chrono::{Duration, TimeZone};
use proptest::prelude::*;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn key(id: &str, state: KeyState) -> Key {
    Key {
        id: id.into(),
        name: "ci-build".into(),
        description: String::new(),
        state,
        created_at: Some(t0() - Duration::days(10)),
        expiry: Some(t0() + Duration::days(20)),
        last_request_at: Some(t0() - Duration::minutes(1)),
    }
}

#[derive(Debug, Clone)]
struct World {
    keys: Vec<Key>,
    vault: Option<VaultView>,
    open: Option<RotationRecord>,
    rolled_back: HashSet<String>,
    known: HashSet<String>,
    retirements: Vec<RetirementRecord>,
    verified: HashSet<String>,
    policy: Policy,
    now: DateTime<Utc>,
    rotate_now: bool,
    pending: Pending,
}

impl World {
    fn new(keys: Vec<Key>) -> Self {
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
            rotate_now: false,
            pending: Pending::NotRead,
        }
    }
    fn with_current(mut self, id: &str) -> Self {
        self.vault = Some(VaultView {
            key_id: id.into(),
            version: 3,
            rotation_id: None,
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
        plan_lineage(&self.snapshot())
    }
    fn snapshot(&self) -> LineageSnapshot<'_> {
        LineageSnapshot {
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
            rotate_now: self.rotate_now,
            pending: self.pending.clone(),
        }
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
    // unknown rotation, inactive, created after the current key and not at
    // the pending path: an orphan too (takeover rule R2c)
    let mut late = orphan.clone();
    late.created_at = Some(t0());
    let mut w = World::new(vec![key("A", KeyState::Active), late]).with_current("A");
    w.pending = Pending::Empty;
    assert!(matches!(w.plan().actions[0], Action::CleanupOrphan { .. }));
    // but an active orphan is never deleted
    orphan.state = KeyState::Active;
    let mut w = World::new(vec![key("A", KeyState::Active), orphan]).with_current("A");
    w.known.insert("R9".into());
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
    let w =
        World::new(vec![key("A", KeyState::Active), key("X", KeyState::Active)]).with_current("A");
    assert_eq!(w.plan().actions, vec![Action::Track { key_id: "X".into() }]);
    let mut w =
        World::new(vec![key("A", KeyState::Active), key("X", KeyState::Active)]).with_current("A");
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

// ---- the operator's on-demand rotate ----

#[test]
fn manual_rotate_with_nothing_due_starts_a_manual_rotation() {
    let mut w = World::new(vec![key("A", KeyState::Active)]).with_current("A");
    assert!(w.plan().actions.is_empty());
    w.rotate_now = true;
    let plan = w.plan();
    assert_eq!(
        plan.actions,
        vec![Action::Rotate {
            reason: DueReason::Manual,
            old_key_id: Some("A".into()),
            cas: 3
        }]
    );
    // the outlook is what it would be without the request
    let a = &plan.keys[0];
    assert_eq!((a.role, a.next), (KeyRole::Current, NextStep::Rotate));
    assert_eq!(a.next_at, Some(t0() + Duration::days(13)));
}

#[test]
fn manual_rotate_with_a_rotation_due_keeps_its_reason() {
    let mut k = key("A", KeyState::Active);
    k.expiry = Some(t0() + Duration::days(1));
    let mut w = World::new(vec![k]).with_current("A");
    w.rotate_now = true;
    let plan = w.plan();
    assert_eq!(rotate_reason(&plan), Some(DueReason::Expiring));
    assert_eq!(plan.actions.len(), 1, "{:?}", plan.actions);
}

#[test]
fn manual_rotate_with_a_resume_open_only_resumes() {
    let mut w =
        World::new(vec![key("A", KeyState::Active), key("N", KeyState::Active)]).with_current("A");
    w.rotate_now = true;
    w.open = Some(RotationRecord {
        rotation_id: "R2".into(),
        lineage: LineageId::new("T1", "ci-build"),
        reason: DueReason::Manual,
        old_key_id: Some("A".into()),
        new_key_id: Some("N".into()),
        phase: RotationPhase::Stored,
        cas: 3,
        vault_version: Some(4),
        started_at: t0() - Duration::minutes(2),
        stored_at: Some(t0() - Duration::minutes(1)),
        last_error: None,
    });
    assert_eq!(
        w.plan().actions,
        vec![Action::Resume {
            rotation_id: "R2".into(),
            phase: RotationPhase::Stored
        }]
    );
}

#[test]
fn action_kinds_serialize_as_their_names() {
    let id = || "K".to_string();
    for action in [
        Action::Rotate {
            reason: DueReason::Manual,
            old_key_id: None,
            cas: 0,
        },
        Action::Resume {
            rotation_id: id(),
            phase: RotationPhase::Creating,
        },
        Action::Deactivate {
            key_id: id(),
            reason: DeactivateReason::MaxOverlap,
        },
        Action::Delete { key_id: id() },
        Action::CleanupOrphan {
            key_id: id(),
            rotation_id: id(),
        },
        Action::Track { key_id: id() },
        Action::Forget { key_id: id() },
    ] {
        let kind = action.kind();
        let tagged = serde_json::to_value(&action).unwrap();
        assert_eq!(tagged["action"], kind.as_str());
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        assert_eq!(kind.to_string(), kind.as_str());
    }
}

// ---- standing: what `status` and `report` show ----

#[test]
fn healthy_lineage_stands_within_policy() {
    let w = World::new(vec![key("A", KeyState::Active)]).with_current("A");
    let st = standing(&w.snapshot());
    assert_eq!(st.current_key_id.as_deref(), Some("A"));
    assert_eq!(st.next_due, Some(t0() + Duration::days(13)));
    assert!(!st.overdue && !st.stale && st.within_policy);
    assert!(st.suspended.is_empty() && st.over_max_age.is_empty());
    let a = &st.keys[0];
    assert_eq!(
        (a.role, a.next, a.stale),
        (KeyRole::Current, NextStep::Rotate, false)
    );
}

#[test]
fn lineage_without_a_stored_key_is_overdue() {
    let w = World::new(vec![key("A", KeyState::Active)]);
    let st = standing(&w.snapshot());
    assert_eq!(st.current_key_id, None);
    assert_eq!(st.next_due, None);
    assert!(st.overdue && !st.within_policy);
    assert_eq!(st.keys[0].role, KeyRole::Other);
}

#[test]
fn old_stale_and_suspended_keys_are_shown() {
    let mut a = key("A", KeyState::Active);
    a.created_at = Some(t0() - Duration::days(100));
    a.expiry = None;
    a.last_request_at = Some(t0() - Duration::days(40));
    let w = World::new(vec![a, key("S", KeyState::Suspended)]).with_current("A");
    let st = standing(&w.snapshot());
    assert!(st.stale && st.keys[0].stale);
    assert_eq!(st.over_max_age, vec!["A".to_string()]);
    assert_eq!(st.suspended, vec!["S".to_string()]);
    // due at max_age, 10 days ago: overdue, so not within policy
    assert_eq!(st.next_due, Some(t0() - Duration::days(10)));
    assert!(st.overdue && !st.within_policy);
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
        let keys: Vec<Key> = states.iter().enumerate().map(|(i, st)| Key {
            id: format!("K{i}"),
            name: "ci-build".into(),
            description: if marked[i] { marker::description(&format!("R{i}")) } else { String::new() },
            state: *st,
            created_at: Some(now - Duration::seconds(ages[i])),
            expiry: Some(now + Duration::seconds(ages[i]) - Duration::days(60)),
            last_request_at: used[i].map(|u| now - Duration::seconds(u)),
        }).collect();
        let mut w = World::new(keys);
        // current may point at a listed key or at a gone one (index == len)
        if let Some(c) = current {
            w.vault = Some(VaultView { key_id: format!("K{c}"), version: 1, rotation_id: None });
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
