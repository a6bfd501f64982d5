//! The engine end to end: the MASV simulator over HTTP, a real OpenBao, SQLite.
//! One test per SPEC §2 rule and invariant; a crash at every boundary.

use std::time::Duration as StdDuration;

use chrono::Duration;
use masv_key_rotator::engine::{Boundary, SweepMode};
use masv_key_rotator::exit::Exit;
use masv_key_rotator::masv::KeyState;
use masv_key_rotator::simulator::{Fault, FaultKind, SeedKey};
use masv_key_rotator::store::{AuditAction, Outcome};
use reqwest::Method;

use crate::helpers::vault::TestVault;
use crate::helpers::world::{World, TEAM};

#[tokio::test]
async fn whole_lifecycle_adopt_store_verify_deactivate_delete() {
    let w = World::new().await;
    let old = w.seed("ci-build", Duration::days(10), Some(Duration::days(20)));
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    let current = w.current("ci-build").await.expect("adopted into Vault");
    assert_eq!(current.version, 1);
    let new_key = w.sim.key(&current.secret.key_id).unwrap();
    assert_eq!(new_key.state, KeyState::Active);
    assert_eq!(
        new_key.secret,
        secrecy::ExposeSecret::expose_secret(&current.secret.api_key).to_string()
    );
    assert!(
        new_key.last_request_at.is_some(),
        "verified with one X-API-KEY call"
    );
    let lifetime = new_key.expiry.unwrap() - w.now();
    assert!(
        (lifetime - Duration::days(30)).num_milliseconds().abs() <= 1,
        "new_key_lifetime: {lifetime}"
    );
    assert!(
        new_key.description.contains(&current.secret.rotation_id),
        "marker names the rotation"
    );
    assert_eq!(w.state(&old.id), Some(KeyState::Active));

    w.clock.advance(Duration::minutes(61));
    w.sweep().await;
    assert_eq!(
        w.state(&old.id),
        Some(KeyState::Inactive),
        "idle past grace: deactivated"
    );
    w.clock.advance(Duration::days(6));
    w.sweep().await;
    assert_eq!(
        w.state(&old.id),
        Some(KeyState::Inactive),
        "not yet delete_after"
    );
    w.clock.advance(Duration::days(1));
    w.sweep().await;
    assert_eq!(
        w.state(&old.id),
        None,
        "deleted delete_after after deactivation"
    );
    let actions: Vec<AuditAction> = w
        .audit()
        .await
        .iter()
        .filter(|a| a.outcome == Outcome::Ok)
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::Create,
            AuditAction::Stage,
            AuditAction::Activate,
            AuditAction::Verify,
            AuditAction::Promote,
            AuditAction::Deactivate,
            AuditAction::Delete
        ]
    );
    w.assert_invariants().await;
}

#[tokio::test]
async fn idle_gating_waits_for_idle_and_max_overlap_overrides_it() {
    let w = World::new().await;
    let busy = w.seed("ci-busy", Duration::days(1), Some(Duration::days(60)));
    let idle = w.seed("ci-idle", Duration::days(1), Some(Duration::days(60)));
    w.sweep().await;
    w.clock.advance(Duration::hours(2));
    w.sim.touch_key(&busy.id);
    w.sweep().await;
    assert_eq!(w.state(&idle.id), Some(KeyState::Inactive));
    assert_eq!(w.state(&busy.id), Some(KeyState::Active), "in use: kept");
    for _ in 0..6 {
        w.clock.advance(Duration::days(1));
        w.sim.touch_key(&busy.id);
        w.sweep().await;
        assert_eq!(
            w.state(&busy.id),
            Some(KeyState::Active),
            "in use within max_overlap"
        );
    }
    w.clock.advance(Duration::hours(23));
    w.sim.touch_key(&busy.id);
    w.sweep().await;
    assert_eq!(
        w.state(&busy.id),
        Some(KeyState::Inactive),
        "max_overlap reached"
    );
    w.assert_invariants().await;
}

#[tokio::test]
async fn expiry_and_max_age_make_keys_due_and_zero_expiry_does_not() {
    let w = World::new().await;
    w.seed("ci-a", Duration::days(1), Some(Duration::days(60)));
    w.seed("ci-b", Duration::days(1), None);
    w.sweep().await; // adoption of both
    let a1 = w.current("ci-a").await.unwrap().secret.key_id;
    let b1 = w.current("ci-b").await.unwrap().secret.key_id;
    // new keys expire in 30 days: at 23 days, 7 days are left => due
    w.clock.advance(Duration::days(22));
    w.sweep().await;
    assert_eq!(
        w.current("ci-a").await.unwrap().secret.key_id,
        a1,
        "not due yet"
    );
    w.clock.advance(Duration::days(1));
    w.sweep().await;
    assert_ne!(
        w.current("ci-a").await.unwrap().secret.key_id,
        a1,
        "rotated before expiry"
    );
    assert_ne!(w.current("ci-b").await.unwrap().secret.key_id, b1);
    w.assert_invariants().await;
}

#[tokio::test]
async fn unmanaged_keys_are_never_touched() {
    let w = World::new().await;
    let mine = w.seed(
        "personal-laptop",
        Duration::days(400),
        Some(Duration::days(1)),
    );
    let r = w.sweep().await;
    assert_eq!(r.scope.unmanaged_keys, 1);
    assert_eq!(r.scope.lineages, 0);
    assert!(w.sim.mutations().is_empty());
    assert!(w.current("personal-laptop").await.is_none());
    assert_eq!(w.state(&mine.id), Some(KeyState::Active));
    assert!(w.audit().await.is_empty());
}

#[tokio::test]
async fn suspended_current_key_is_replaced_without_toggling_it() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(1), Some(Duration::days(60)));
    w.sweep().await;
    let current = w.current("ci-build").await.unwrap().secret.key_id;
    w.sim.set_key_state(&current, KeyState::Suspended);
    let before = w.sim.mutations().len();
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    assert_ne!(w.current("ci-build").await.unwrap().secret.key_id, current);
    for _ in 0..3 {
        w.clock.advance(Duration::days(8));
        w.sweep().await;
    }
    assert!(
        w.sim.mutations()[before..]
            .iter()
            .all(|m| !m.path.contains(&current)),
        "never toggled or deleted"
    );
    assert_eq!(w.state(&current), Some(KeyState::Suspended));
    w.assert_invariants().await;
}

#[tokio::test]
async fn read_only_vault_token_rolls_back_and_keeps_the_old_key() {
    let w = World::new().await;
    let old = w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let token = w.vault.read_only_token().await;
    let engine = w.engine_with_vault(w.vault_store(&token).await).await;
    let r = engine.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(r.exit(), Exit::ActionFailed, "{:?}", r.outcomes);
    assert_eq!(w.state(&old.id), Some(KeyState::Active), "old key kept");
    let keys = w.sim.keys(TEAM);
    assert_eq!(keys.len(), 1, "the new key was rolled back (deleted)");
    let audit = w.audit().await;
    assert!(audit.iter().any(|a| a.action == AuditAction::Stage
        && a.outcome == Outcome::Failed
        && a.detail.contains("permission denied")));
    assert!(audit
        .iter()
        .any(|a| a.action == AuditAction::Rollback && a.outcome == Outcome::Ok));
    w.assert_invariants().await;
}

#[tokio::test]
async fn vault_down_fails_with_exit_3_and_changes_nothing() {
    let vault = TestVault::start().await;
    let w = World::with_vault(vault).await;
    let old = w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let mut settings = w.vault.settings(masv_key_rotator::vault::VaultAuth::Token(
        secrecy::SecretString::from("root".to_string()),
    ));
    settings.address = crate::helpers::vault::dead_address();
    let down = masv_key_rotator::vault::VaultStore::connect(settings)
        .await
        .unwrap();
    let r = w
        .engine_with_vault(down)
        .await
        .sweep(&SweepMode::Apply)
        .await
        .unwrap();
    assert_eq!(r.exit(), Exit::Unreachable);
    assert!(
        w.sim.mutations().is_empty(),
        "nothing created while Vault cannot be read"
    );
    assert_eq!(w.state(&old.id), Some(KeyState::Active));
}

#[tokio::test]
async fn lost_create_response_orphan_is_found_by_marker_and_deleted() {
    let w = World::new().await;
    let old = w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    w.sim.inject(Fault::new(FaultKind::LoseCreateResponse));
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::ActionFailed);
    let orphan: Vec<_> = w
        .sim
        .keys(TEAM)
        .into_iter()
        .filter(|k| k.id != old.id)
        .collect();
    assert_eq!(orphan.len(), 1);
    assert_eq!(
        orphan[0].state,
        KeyState::Inactive,
        "created inactive: never a working stranger"
    );
    w.assert_invariants().await;
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    assert!(w.sim.key(&orphan[0].id).is_none(), "orphan deleted");
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    assert!(
        w.current("ci-build").await.is_some(),
        "then the lineage rotates"
    );
    assert_eq!(w.state(&old.id), Some(KeyState::Active));
    w.assert_invariants().await;
}

#[tokio::test]
async fn faults_mid_sweep_are_survived() {
    let w = World::new().await;
    w.sim.set_jwt_ttl(Duration::minutes(30));
    let keys: Vec<_> = (0..4)
        .map(|i| {
            w.seed(
                &format!("ci-{i}"),
                Duration::days(10),
                Some(Duration::days(2)),
            )
        })
        .collect();
    w.sim
        .inject(Fault::new(FaultKind::Status(503)).on(Method::PUT).times(2));
    w.sim.inject(
        Fault::new(FaultKind::RateLimited {
            retry_after: Some(StdDuration::from_secs(0)),
        })
        .on(Method::GET)
        .times(2),
    );
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    // the user token expires between sweeps: one re-login, no failure
    w.clock.advance(Duration::hours(2));
    w.sim
        .inject(Fault::new(FaultKind::Status(401)).on(Method::PUT));
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    for k in &keys {
        assert_eq!(w.state(&k.id), Some(KeyState::Inactive));
    }
    assert!(
        w.sim
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/auth"))
            .count()
            >= 2
    );
    w.assert_invariants().await;
}

#[tokio::test]
async fn dry_run_mutates_nothing_anywhere() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let r = w.engine().await.sweep(&SweepMode::DryRun).await.unwrap();
    assert!(
        !r.plans[0].actions.is_empty(),
        "the plan shows the adoption"
    );
    assert!(w.sim.mutations().is_empty());
    assert!(w.current("ci-build").await.is_none());
    assert!(w.audit().await.is_empty());
    let lineages: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lineages")
        .fetch_one(w.store.pool())
        .await
        .unwrap();
    assert_eq!(lineages, 0, "not even the Vault cache is written");
}

#[tokio::test]
async fn rotate_now_rotates_one_lineage_only() {
    let w = World::new().await;
    w.seed("ci-a", Duration::days(1), Some(Duration::days(60)));
    w.seed("ci-b", Duration::days(1), Some(Duration::days(60)));
    w.sweep().await;
    let a = w.current("ci-a").await.unwrap().secret.key_id;
    let b = w.current("ci-b").await.unwrap().secret.key_id;
    let engine = w.engine().await;
    let r = engine
        .sweep(&SweepMode::RotateNow(
            masv_key_rotator::engine::LineageId::new(TEAM, "ci-a"),
        ))
        .await
        .unwrap();
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    assert_ne!(w.current("ci-a").await.unwrap().secret.key_id, a);
    assert_eq!(w.current("ci-b").await.unwrap().secret.key_id, b);
    let bad = engine
        .sweep(&SweepMode::RotateNow(
            masv_key_rotator::engine::LineageId::new(TEAM, "personal"),
        ))
        .await;
    assert!(bad.is_err(), "an unmanaged name is refused");
}

#[tokio::test]
async fn many_lineages_run_concurrently_and_one_rotation_per_lineage() {
    let w = World::new().await;
    for i in 0..12 {
        w.seed(&format!("render-{i}"), Duration::days(1), None);
    }
    w.sim
        .inject(Fault::new(FaultKind::Latency(StdDuration::from_millis(50))).times(100));
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    let rotations: Vec<(String, i64)> =
        sqlx::query_as("SELECT key_name, COUNT(*) FROM rotations GROUP BY key_name")
            .fetch_all(w.store.pool())
            .await
            .unwrap();
    assert_eq!(rotations.len(), 12);
    assert!(rotations.iter().all(|(_, n)| *n == 1));
    w.assert_invariants().await;
}

/// Crash at each boundary on the real adapters, restart, settle, check.
#[tokio::test]
async fn crash_at_every_boundary_then_restart_resumes_or_rolls_back() {
    let vault = TestVault::start().await;
    let mut vault = Some(vault);
    for boundary in Boundary::ALL {
        let v = vault.take().unwrap();
        let fresh = v.renamed(&format!("{boundary:?}"));
        let w = World::with_vault(fresh).await;
        let old = w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
        w.prepare_crash_at(boundary).await;
        w.sweep_crashing_at(boundary).await;
        for _ in 0..3 {
            let r = w.sweep().await;
            assert_eq!(r.exit(), Exit::Success, "{boundary:?}: {:?}", r.outcomes);
            w.assert_invariants().await;
        }
        let current = w
            .current("ci-build")
            .await
            .expect("settled with a stored key");
        assert_eq!(
            w.state(&current.secret.key_id),
            Some(KeyState::Active),
            "{boundary:?}"
        );
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM rotations WHERE phase NOT IN ('verified', 'rolled_back', 'abandoned')",
        )
        .fetch_one(w.store.pool())
        .await
        .unwrap();
        assert_eq!(open, 0, "{boundary:?}: a rotation left in flight");
        let _ = old;
        let World { vault: v, .. } = w;
        vault = Some(v);
    }
}

#[tokio::test]
async fn keys_already_expired_are_rotated_not_skipped() {
    let w = World::new().await;
    let gone = w.sim.seed_key(
        TEAM,
        SeedKey {
            expiry: Some(w.now() - Duration::days(3)),
            ..SeedKey::active("ci-expired")
        },
    );
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    let current = w.current("ci-expired").await.unwrap();
    assert_ne!(current.secret.key_id, gone.id);
    w.assert_invariants().await;
}

/// A sweep hands each team's report over once, as that team finishes: each
/// holds that team's lineages only, and the totals are their sum (the caller
/// never needs the whole fleet's details at once).
#[tokio::test]
async fn a_sweep_hands_over_each_teams_report_once_and_totals_them() {
    const OTHERS: [&str; 2] = ["01FB4S68W7RAW4M89801H1C4CS", "01FB4S68W7RAW4M89801H1C4CT"];
    let w = World::new().await;
    let engine = w.engine_for_teams(&OTHERS).await;
    for (team, names) in [
        (TEAM, &["ci-a", "ci-b"][..]),
        (OTHERS[0], &["ci-c"][..]),
        (OTHERS[1], &["ci-d", "ci-e", "ci-f"][..]),
    ] {
        for name in names {
            w.sim.seed_key(team, SeedKey::active(name));
        }
    }
    w.sim.seed_key(OTHERS[1], SeedKey::active("not-managed"));

    let mut reports = Vec::new();
    let totals = engine
        .sweep_by_team(&SweepMode::Apply, |team| reports.push(team))
        .await
        .unwrap();

    let mut seen: Vec<(String, usize)> = reports
        .iter()
        .map(|r| {
            let team = r.plans[0].lineage.team_id.clone();
            assert!(
                r.plans.iter().all(|p| p.lineage.team_id == team)
                    && r.outcomes.iter().all(|o| o.lineage.team_id == team),
                "a report holds one team: {r:?}"
            );
            assert_eq!((r.scope.teams, r.scope.lineages), (1, r.plans.len()));
            assert!(r.started_at <= r.finished_at && r.finished_at.is_some());
            (team, r.succeeded())
        })
        .collect();
    seen.sort();
    let mut want = vec![
        (TEAM.to_string(), 2),
        (OTHERS[0].to_string(), 1),
        (OTHERS[1].to_string(), 3),
    ];
    want.sort();
    assert_eq!(seen, want, "each team once, each lineage adopted");
    assert_eq!(
        (
            totals.scope.teams,
            totals.scope.lineages,
            totals.scope.managed_keys
        ),
        (3, 6, 6)
    );
    assert_eq!(
        (totals.scope.unmanaged_keys, totals.succeeded, totals.failed),
        (1, 6, 0)
    );
    assert_eq!(totals.exit(), Exit::Success);
    let mut whole = masv_key_rotator::engine::SweepReport::default();
    for r in reports {
        whole.absorb(r);
    }
    let folded = whole.totals();
    assert_eq!(
        (
            folded.scope.teams,
            folded.scope.lineages,
            folded.succeeded,
            folded.planned
        ),
        (
            totals.scope.teams,
            totals.scope.lineages,
            totals.succeeded,
            totals.planned
        )
    );

    // The next sweep, kept whole: the same teams, nothing due.
    let report = engine.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!((report.scope.teams, report.scope.lineages), (3, 6));
    assert!(report.outcomes.is_empty(), "{:?}", report.outcomes);
    assert!(
        report.plans.windows(2).all(|p| p[0].lineage < p[1].lineage),
        "the whole report's plans are in lineage order"
    );
}
