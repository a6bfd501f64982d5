//! Reconciliation after a takeover (docs/design.md): instance A, with its own
//! database, crashes at every boundary of a rotation's life; instance B, with a
//! fresh database of its own, sweeps the same simulator and Vault until quiet
//! and must finish or clean up what A left from MASV and Vault alone. Then A
//! comes back, is handed over (as the daemon does when it takes the lease from
//! another holder) and sweeps: nothing doubles, nothing harmful happens.
//! Consumers read the lineage's path and use its key throughout: none may
//! ever be refused.

use chrono::Duration;
use masv_key_rotator::engine::{Boundary, SweepMode};
use masv_key_rotator::exit::Exit;
use masv_key_rotator::store::{AuditAction, AuditFilter, Outcome};

use crate::helpers::consumers::{Rig, Tally, QUICK_PACE};
use crate::helpers::vault::TestVault;
use crate::helpers::world::{Peer, RealEngine, World, TEAM};

const NAME: &str = "ci-build";

/// Whether `b` lies inside a rotation, from its create to its promotion
/// (not in a rollback or a retirement).
fn in_rotation(b: Boundary) -> bool {
    !matches!(
        b,
        Boundary::BeforeRollback
            | Boundary::AfterRollback
            | Boundary::BeforeDeactivate
            | Boundary::AfterDeactivate
            | Boundary::BeforeDelete
            | Boundary::AfterDelete
    )
}

/// Sweeps with `engine` until a sweep changes nothing; each must succeed.
async fn sweep_until_quiet(engine: &RealEngine, what: &str) {
    for _ in 0..6 {
        let r = engine.sweep(&SweepMode::Apply).await.expect("sweep");
        assert_eq!(
            r.exit(),
            Exit::Success,
            "{what}: {:?} {:?}",
            r.outcomes,
            r.errors
        );
        if r.outcomes.is_empty() {
            return;
        }
    }
    panic!("{what}: still acting after 6 sweeps");
}

/// Keys created (every create request reached MASV here) and what became of
/// them, as seen from outside: the keys named by a version of the lineage's
/// path, and the keys deleted without ever being named there (rolled back or
/// cleaned up; the hand-made `seeded` key is not the daemon's).
struct Ledger {
    created: usize,
    versions: usize,
    stored: std::collections::HashSet<String>,
    rolled_back: usize,
}

async fn ledger(w: &World, seeded: &str) -> Ledger {
    let mutations = w.sim.mutations();
    let created = mutations
        .iter()
        .filter(|m| m.method == "POST" && m.path.ends_with("/api_keys"))
        .count();
    let vault = w.vault.store().await;
    let versions = vault.versions(TEAM, NAME).await.unwrap_or_default();
    let mut stored = std::collections::HashSet::new();
    for v in &versions {
        let secret = vault.read_version(TEAM, NAME, v.version).await.unwrap();
        stored.insert(secret.secret.key_id);
    }
    let deleted: std::collections::HashSet<&str> = mutations
        .iter()
        .filter(|m| m.method == "DELETE" && m.status / 100 == 2)
        .filter_map(|m| m.path.rsplit('/').next())
        .collect();
    let rolled_back = deleted
        .iter()
        .filter(|id| **id != seeded && !stored.contains(**id))
        .count();
    Ledger {
        created,
        versions: versions.len(),
        stored,
        rolled_back,
    }
}

/// Settled: the lineage's path names an active key whose secret is the one
/// stored, the pending path is empty, `versions` versions were written, no key
/// the daemon created is left that never reached the lineage's path, and no
/// more keys were created than were stored or rolled back.
/// `audited`: every mutation has its audit row in one of the databases (not
/// so while a crashed instance has not come back to record its last outcome).
async fn assert_settled(w: &World, peers: &[&Peer], c: &Case, audited: bool, what: &str) {
    if audited {
        w.assert_invariants_with(peers).await;
    } else {
        w.assert_safe_with(peers).await;
    }
    w.assert_current_works(NAME).await;
    let vault = w.vault.store().await;
    assert!(
        vault.read_staged(TEAM, NAME).await.unwrap().is_none(),
        "{what}: the pending entry was left behind"
    );
    let l = ledger(w, &c.seeded).await;
    assert_eq!(
        l.versions, c.versions,
        "{what}: exactly one new current key"
    );
    assert!(
        l.created <= l.versions + l.rolled_back,
        "{what}: {} keys created, {} stored, {} rolled back",
        l.created,
        l.versions,
        l.rolled_back
    );
    for k in w.sim.keys(TEAM) {
        if k.description.starts_with("managed by masv-key-rotator") {
            assert!(
                l.stored.contains(&k.id),
                "{what}: orphan {} ({:?})",
                k.id,
                k.state
            );
        }
    }
}

/// What a case expects once settled.
struct Case {
    /// The hand-made key the lineage started with.
    seeded: String,
    /// Versions at the lineage's path once settled.
    versions: usize,
}

/// Brings A to the moment before its crash, arms `boundary` and sweeps: A dies
/// there. `generation` 1: A's first rotation of the lineage (adoption of a
/// hand-made key); 2: A rotates a key it promoted itself earlier.
/// Returns the hand-made key's id and how many versions the lineage's path
/// had before the crash sweep.
async fn crash_a(w: &World, boundary: Boundary, generation: u32) -> (String, usize) {
    let seeded = w.seed(NAME, Duration::days(10), Some(Duration::days(2))).id;
    let mut before = usize::from(w.prepare_crash_at(boundary).await);
    if generation == 2 && in_rotation(boundary) {
        w.sweep().await;
        before = 1;
        // 30-day keys are due 7 days before they expire.
        w.clock.advance(Duration::days(24));
    }
    w.sweep_crashing_at(boundary).await;
    (seeded, before)
}

/// One case: A crashes at `boundary`; B (fresh database) takes over; A is
/// handed over and sweeps again; later sweeps retire what is left. Consumers
/// read the lineage's path and use its key all along; their tally is returned.
async fn takeover_case(
    vault: TestVault,
    boundary: Boundary,
    generation: u32,
) -> (TestVault, Tally) {
    let what = format!("{boundary:?} (generation {generation})");
    let w = World::with_vault(vault).await;
    let consumers = Rig::new(&w, QUICK_PACE)
        .await
        .reading_vault(&[NAME.to_string()], 2);
    let (seeded, before) = crash_a(&w, boundary, generation).await;
    let a_open: Vec<String> = sqlx::query_scalar(
        "SELECT rotation_id FROM rotations WHERE phase NOT IN ('verified', 'rolled_back', 'abandoned')",
    )
    .fetch_all(w.store.pool())
    .await
    .unwrap();

    // B: its own, fresh database; nothing of A's but MASV and Vault.
    let b_db = w.peer("instance-b").await;
    let b = w.engine_with_store(b_db.store.clone()).await;
    sweep_until_quiet(&b, &format!("B after {what}")).await;
    // A's rotation, or the one that replaced it, promoted one new key; after
    // a crash in a retirement the rotation had already finished.
    let c = Case {
        seeded,
        versions: if in_rotation(boundary) || is_rollback(boundary) {
            before + 1
        } else {
            before
        },
    };
    // A's last call, made but not recorded, is audited when A comes back.
    let audited = !matches!(
        boundary,
        Boundary::AfterRollback | Boundary::AfterDeactivate | Boundary::AfterDelete
    );
    assert_settled(&w, &[&b_db], &c, audited, &format!("B after {what}")).await;
    let (made, unmade) = expected_of_b(boundary);
    let done: Vec<AuditAction> = b_db
        .store
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|r| r.outcome == Outcome::Ok)
        .map(|r| r.action)
        .collect();
    for action in made {
        assert!(
            done.contains(action),
            "{what}: B did not {action:?}: {done:?}"
        );
    }
    for action in unmade {
        assert!(!done.contains(action), "{what}: B did {action:?}: {done:?}");
    }
    if generation == 2 || !in_rotation(boundary) && !is_rollback(boundary) {
        // The current key A promoted is recorded as such (R3).
        assert!(done.contains(&AuditAction::Adopt), "{what}: {done:?}");
    }
    let created = ledger(&w, &c.seeded).await.created;
    drop(b);

    // A comes back as leader: handed over first, as the daemon does.
    let a = w.engine().await;
    let handed = a.hand_over().await.expect("hand over");
    let closed: Vec<String> = handed
        .closed
        .iter()
        .map(|r| r.rotation_id.clone())
        .collect();
    assert_eq!(
        closed, a_open,
        "{what}: the hand-over closes what A had open"
    );
    let rows = w.audit().await;
    for rid in &closed {
        assert!(
            rows.iter()
                .any(|r| r.action == AuditAction::HandOver && r.rotation_id.as_deref() == Some(rid)),
            "{what}: no hand_over row for {rid}"
        );
    }
    sweep_until_quiet(&a, &format!("A back after {what}")).await;
    assert_settled(&w, &[&b_db], &c, true, &format!("A back after {what}")).await;
    assert_eq!(
        ledger(&w, &c.seeded).await.created,
        created,
        "{what}: A created a key after the takeover"
    );

    // Time passes with A leading: the replaced keys retire behind the current one.
    for advance in [Duration::hours(2), Duration::days(8)] {
        w.clock.advance(advance);
        sweep_until_quiet(&a, &format!("A later, after {what}")).await;
        assert_settled(&w, &[&b_db], &c, true, &format!("A later, after {what}")).await;
    }
    drop(a);
    let consumed = consumers.stop().await.in_case(&what);
    let World { vault, .. } = w;
    (vault, consumed)
}

/// What B must have done (and must not have done) after A crashed at `boundary`.
fn expected_of_b(boundary: Boundary) -> (&'static [AuditAction], &'static [AuditAction]) {
    use AuditAction::*;
    match boundary {
        // Nothing of A's in MASV: B rotates itself.
        Boundary::BeforeCreate | Boundary::AfterRollback => (&[Create, Promote], &[CleanupOrphan]),
        // A's key exists, never staged: an orphan, deleted; B rotates itself.
        Boundary::AfterCreate | Boundary::BeforeStore | Boundary::BeforeRollback => {
            (&[CleanupOrphan, Create, Promote], &[])
        }
        // Staged, inactive: adopted, activated, verified, promoted; no new key.
        Boundary::AfterStore | Boundary::BeforeActivate => (
            &[Adopt, Activate, Verify, Promote],
            &[Create, CleanupOrphan],
        ),
        // Staged, active: adopted, verified, promoted; no new key.
        Boundary::AfterActivate | Boundary::AfterVerify | Boundary::BeforePromote => (
            &[Adopt, Verify, Promote],
            &[Create, Activate, CleanupOrphan],
        ),
        // Promoted: recorded, pending entry removed; nothing else.
        Boundary::AfterPromote => (&[Adopt], &[Create, Activate, Verify, Promote]),
        // In a retirement: the rotation was done; nothing to create.
        _ => (&[Adopt], &[Create, CleanupOrphan]),
    }
}

fn is_rollback(b: Boundary) -> bool {
    matches!(b, Boundary::BeforeRollback | Boundary::AfterRollback)
}

/// A crash at every boundary of a rotation, in A's first rotation of the
/// lineage and in a later one; B finishes or cleans up with a fresh database.
#[tokio::test]
async fn a_fresh_instance_finishes_or_cleans_up_a_rotation_left_at_every_boundary() {
    let mut vault = TestVault::start().await;
    let mut consumed = Tally::default();
    for generation in [1, 2] {
        for boundary in Boundary::ALL.into_iter().filter(|b| in_rotation(*b)) {
            let fresh = vault.renamed(&format!("{boundary:?}-g{generation}"));
            let (v, tally) = takeover_case(fresh, boundary, generation).await;
            vault = v;
            consumed.add(tally);
        }
    }
    println!("takeover in a rotation, consumers: {consumed}");
    consumed.assert_no_refusals("takeover in a rotation");
}

/// A crash in a rollback, a deactivation or a deletion: B picks up from MASV
/// and Vault, and A, handed over, neither doubles nor undoes anything.
#[tokio::test]
async fn a_fresh_instance_takes_over_after_a_crash_in_a_rollback_or_retirement() {
    let mut vault = TestVault::start().await;
    let mut consumed = Tally::default();
    for boundary in [
        Boundary::BeforeRollback,
        Boundary::AfterRollback,
        Boundary::BeforeDeactivate,
        Boundary::AfterDeactivate,
        Boundary::BeforeDelete,
        Boundary::AfterDelete,
    ] {
        let fresh = vault.renamed(&format!("{boundary:?}"));
        let (v, tally) = takeover_case(fresh, boundary, 1).await;
        vault = v;
        consumed.add(tally);
    }
    println!("takeover in a rollback or retirement, consumers: {consumed}");
    consumed.assert_no_refusals("takeover in a rollback or retirement");
}
