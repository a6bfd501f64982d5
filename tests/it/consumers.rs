//! A real client between Vault and the apps: OpenBao's own agent (`bao agent`)
//! renders each lineage's key to a file, re-reading Vault every second, and an
//! app per lineage reads its file every 0.2 s and calls MASV with the key,
//! while the real `run` binary rotates continuously (the kill matrix's policy)
//! with every one of its MASV calls slow, activations slowest. No call may be
//! refused: a key Vault names must already work. `CONSUMERS_AGENT_SECONDS` sets
//! how long the daemon runs (default 30).

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use masv_key_rotator::simulator::{Fault, FaultKind};
use reqwest::Method;

use crate::helpers::bao_agent::Agent;
use crate::helpers::bin::{self, Daemon};
use crate::helpers::consumers::Rig;
use crate::helpers::continuous::{count_from_env, due_lineages, FAST_POLICY};
use crate::helpers::world::World;

const LINEAGES: usize = 6;

/// How slow each of the daemon's MASV calls is.
const DAEMON_LATENCY: StdDuration = StdDuration::from_millis(250);

/// How slow an activation is: longer than the agent's render interval plus an
/// app's pause, so that a key reaching the lineage's Vault path before it is
/// active would be rendered and used in every rotation, whatever the agent's
/// timing.
const ACTIVATION_LATENCY: StdDuration = StdDuration::from_millis(1500);

/// How often an app reads its file.
const APP_READS: StdDuration = StdDuration::from_millis(200);

async fn verified_rotations(w: &World) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM rotations WHERE phase = 'verified'")
        .fetch_one(w.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn apps_reading_what_bao_agent_renders_are_never_refused() {
    let seconds = count_from_env("CONSUMERS_AGENT_SECONDS", 30);
    let w = World::realtime().await;
    let lineages = due_lineages(&w, LINEAGES);
    // The apps check with HEAD, which these faults do not match.
    w.sim.inject(
        Fault::new(FaultKind::Latency(ACTIVATION_LATENCY))
            .on(Method::PUT)
            .path("/active")
            .times(usize::MAX),
    );
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
        w.sim.inject(
            Fault::new(FaultKind::Latency(DAEMON_LATENCY))
                .on(method)
                .times(usize::MAX),
        );
    }
    let config = w.write_config(FAST_POLICY);
    // A first key in every lineage, so the agent renders every file from the start.
    bin::once_succeeds(&config).await;
    let rig = Rig::new(&w, APP_READS..=APP_READS).await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, PathBuf)> = lineages
        .iter()
        .map(|name| (name.clone(), dir.path().join(format!("{name}.key"))))
        .collect();
    let templates: Vec<(String, PathBuf)> = files
        .iter()
        .map(|(name, file)| (rig.vault().lineage_path(name), file.clone()))
        .collect();
    let token = w.vault.read_only_token().await;
    let mut agent = Agent::start(dir.path(), &w.vault.address, &token, &templates);
    let paths: Vec<PathBuf> = files.iter().map(|(_, f)| f.clone()).collect();
    agent
        .wait_rendered(&paths, StdDuration::from_secs(20))
        .await;
    let before = verified_rotations(&w).await;
    let daemon = Daemon::start(&config);
    let apps = rig.reading_files(&files);
    tokio::time::sleep(StdDuration::from_secs(seconds)).await;
    let consumed = apps.stop().await;
    daemon.stop().await;
    let rotations = verified_rotations(&w).await - before;
    println!(
        "bao agent consumers: {LINEAGES} lineages, daemon run {seconds} s, {rotations} rotations: {consumed}"
    );
    assert!(
        rotations >= LINEAGES as i64,
        "the daemon rotated while the apps ran: {rotations} rotations\n{}",
        agent.log()
    );
    assert!(consumed.calls > 0, "the apps made calls: {consumed}");
    consumed.assert_no_refusals("apps reading bao agent's files");
}
