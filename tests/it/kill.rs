//! The kill matrix: the real `run` binary under continuous rotation (short key
//! lifetimes, every MASV call delayed), `kill -9`ed at random moments and
//! restarted, with the SPEC invariants checked from the outside after every kill
//! (simulator state, Vault versions, audit chain, `PRAGMA integrity_check`).
//! All along, consumers read each lineage's Vault path and call MASV with the
//! key they find: none may ever be refused, kills or not. After every kill
//! `history --verify` must pass: the audit anchor in Vault may lag the log a
//! kill cut short, never lead it (no false alarm).
//! `KILL_MATRIX_KILLS` sets the number of kills (default 100, which keeps the whole
//! suite within CI's 15 minutes on 2 cores; the figures in RELIABILITY.md use 200).

use std::process::{Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use masv_key_rotator::masv::KeyState;
use masv_key_rotator::simulator::{Fault, FaultKind};
use rand::Rng;

use crate::helpers::bin;
use crate::helpers::consumers::{Rig, APP_PACE};
use crate::helpers::continuous::{count_from_env, due_lineages, FAST_POLICY};
use crate::helpers::world::World;

#[tokio::test]
async fn kill_9_at_random_moments_never_breaks_an_invariant() {
    let kills = count_from_env("KILL_MATRIX_KILLS", 100) as usize;
    let w = World::realtime().await;
    let lineages = due_lineages(&w, 4);
    // every MASV request takes 15 ms, so kills land inside steps
    w.sim
        .inject(Fault::new(FaultKind::Latency(StdDuration::from_millis(15))).times(usize::MAX));
    let config = w.write_config(FAST_POLICY);
    let consumers = Rig::new(&w, APP_PACE).await.reading_vault(&lineages, 2);
    let mut rng = rand::thread_rng();
    let started = Instant::now();
    let mut killed_mid_flight = 0;
    let (mut anchor_lagged, mut anchor_level) = (0, 0);
    for n in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
            .args(["--config", config.to_str().unwrap(), "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let before = w.sim.mutations().len();
        tokio::time::sleep(StdDuration::from_millis(rng.gen_range(30..300))).await;
        let status = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(
            code.code().is_none(),
            "kill {n}: the daemon had already exited: {code:?}"
        );
        if w.sim.mutations().len() > before {
            killed_mid_flight += 1;
        }
        w.assert_safe_after_crash().await;
        let verified = bin::run(vec![
            "--config".into(),
            config.display().to_string(),
            "history".into(),
            "--verify".into(),
        ])
        .await;
        let said = String::from_utf8_lossy(&verified.stdout).into_owned();
        assert_eq!(
            verified.status.code(),
            Some(0),
            "kill {n}: history --verify: {said}{}",
            String::from_utf8_lossy(&verified.stderr)
        );
        if said.contains("not anchored yet") {
            anchor_lagged += 1;
        } else if said.contains("audit anchor matches") {
            anchor_level += 1;
        }
    }
    // Two uninterrupted `once` runs settle what the last kill left: the first
    // resumes or rolls back, the second rotates whatever the first rolled back.
    for _ in 0..2 {
        bin::once_succeeds(&config).await;
    }
    let consumed = consumers.stop().await;
    w.assert_invariants().await;
    // Liveness: nothing is left in flight, and every lineage's stored key works now.
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM rotations WHERE phase NOT IN ('verified', 'rolled_back', 'abandoned')",
    )
    .fetch_one(w.store.pool())
    .await
    .unwrap();
    assert_eq!(open, 0, "a rotation is still in flight after a clean sweep");
    for i in 0..4 {
        let name = format!("ci-{i}");
        let current = w.current(&name).await.expect("a stored key");
        let key = w.sim.key(&current.secret.key_id).expect("listed");
        assert_eq!(key.state, KeyState::Active, "{name}: stored key not active");
        assert!(
            key.expiry.is_none_or(|e| e > w.now()),
            "{name}: stored key expired"
        );
    }
    let rotations: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM rotations WHERE phase = 'verified'")
            .fetch_one(w.store.pool())
            .await
            .unwrap();
    let rolled_back: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM rotations WHERE phase = 'rolled_back'")
            .fetch_one(w.store.pool())
            .await
            .unwrap();
    let audit = w.audit().await.len();
    println!(
        "kill matrix: {kills} kills ({killed_mid_flight} while MASV was being changed) in {:.0} s; {rotations} rotations completed, {rolled_back} rolled back, {audit} audit rows, {} MASV mutations; every invariant held after every kill",
        started.elapsed().as_secs_f64(),
        w.sim.mutations().len()
    );
    println!(
        "kill matrix: history --verify passed after all {kills} kills: the anchor named the log's head after {anchor_level}, lagged it after {anchor_lagged}, was not written yet after {}",
        kills - anchor_level - anchor_lagged
    );
    println!("kill matrix consumers: {consumed}");
    assert!(rotations >= 4, "the daemon made progress between kills");
    assert!(
        killed_mid_flight > kills / 10,
        "kills landed mid-flight: {killed_mid_flight}"
    );
    consumed.assert_no_refusals("kill matrix");
}
