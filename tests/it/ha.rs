//! Several `run` processes, one sweeping: three instances of the real binary,
//! each with its own database, on one simulator and one OpenBao, with `[ha]`
//! and a 3 s lease. The holder is killed (`kill -9`), stopped (SIGTERM) or cut
//! off from Vault, and the others must take over in time, without two of
//! them ever mutating at once and with every invariant intact across the
//! three databases. A watcher reads `_leader` every 50 ms to time takeovers
//! and to tell which instance each fencing token belonged to.
//! `HA_KILLS` sets the number of kills (default 6).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use masv_key_rotator::masv::KeyState;
use masv_key_rotator::simulator::{Fault, FaultKind};
use masv_key_rotator::store::Store;
use rand::Rng;

use crate::helpers::bin::{self, Daemon};
use crate::helpers::consumers::{Rig, APP_PACE};
use crate::helpers::continuous::{count_from_env, due_lineages, FAST_POLICY};
use crate::helpers::vault_proxy::VaultProxy;
use crate::helpers::world::{Peer, World, TEAM};
use crate::helpers::write_private;
use crate::notify::{Hook, Reply};

const TTL: StdDuration = StdDuration::from_secs(3);
/// FAST_POLICY sweeps every second.
const SWEEP: StdDuration = StdDuration::from_secs(1);

/// One instance: its config, database and log, and its process if running.
struct Node {
    id: String,
    config: PathBuf,
    db: PathBuf,
    log: PathBuf,
    daemon: Option<Daemon>,
}

impl Node {
    /// A config like the world's, with its own database, `[ha]` and, if given,
    /// its own Vault address and extra tables.
    fn new(w: &World, base: &str, id: &str, vault_address: Option<&str>, extra: &str) -> Node {
        let dir = w.db_path.parent().unwrap();
        let db = dir.join(format!("{id}.db"));
        let mut text = base.replace(
            &format!("path = \"{}\"", w.db_path.display()),
            &format!("path = \"{}\"", db.display()),
        );
        if let Some(address) = vault_address {
            text = text.replace(
                &format!("address = \"{}\"", w.vault.address),
                &format!("address = \"{address}\""),
            );
        }
        text.push_str(&format!(
            "\n[ha]\ninstance_id = \"{id}\"\nlease_ttl = \"{}s\"\n{extra}",
            TTL.as_secs()
        ));
        let config = dir.join(format!("{id}.toml"));
        write_private(&config, &text);
        Node {
            id: id.to_string(),
            config,
            db,
            log: dir.join(format!("{id}.log")),
            daemon: None,
        }
    }

    fn start(&mut self) {
        assert!(self.daemon.is_none());
        self.daemon = Some(Daemon::start_logging(&self.config, &self.log));
    }

    async fn kill9(&mut self) {
        self.daemon.take().expect("running").kill9().await;
    }

    async fn stop(&mut self) -> Option<i32> {
        self.daemon.take().expect("running").stop().await.code()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// One read of `_leader`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sample {
    version: u64,
    holder: String,
    acquired_at: chrono::DateTime<chrono::Utc>,
}

/// Reads `_leader` every 50 ms for the test's length.
struct LeaseWatch {
    samples: Arc<Mutex<Vec<(Instant, Sample)>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl LeaseWatch {
    async fn start(w: &World) -> LeaseWatch {
        let vault = w.vault_store(&w.vault.root_token).await;
        let samples: Arc<Mutex<Vec<(Instant, Sample)>>> = Arc::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let (s, st) = (samples.clone(), stop.clone());
        tokio::spawn(async move {
            while !st.is_cancelled() {
                if let Ok(Some(o)) = vault.read_lease().await {
                    let sample = Sample {
                        version: o.version,
                        holder: o.record.holder,
                        acquired_at: o.record.acquired_at,
                    };
                    let mut all = s.lock().unwrap();
                    if all.last().is_none_or(|(_, last)| *last != sample) {
                        all.push((Instant::now(), sample));
                    }
                }
                tokio::time::sleep(StdDuration::from_millis(50)).await;
            }
        });
        LeaseWatch { samples, stop }
    }

    fn last(&self) -> Option<Sample> {
        self.samples.lock().unwrap().last().map(|(_, s)| s.clone())
    }

    /// Waits for a term other than `not` (a different holder or acquisition);
    /// the new term and how long it took.
    async fn next_term(&self, not: Option<&Sample>, within: StdDuration) -> (Sample, StdDuration) {
        let started = Instant::now();
        loop {
            if let Some(s) = self.last() {
                let new_term =
                    not.is_none_or(|n| s.holder != n.holder || s.acquired_at != n.acquired_at);
                if !s.holder.is_empty() && new_term {
                    return (s, started.elapsed());
                }
            }
            assert!(
                started.elapsed() < within,
                "no new lease term within {within:?}; last {:?}",
                self.last()
            );
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }

    /// Who held the lease at version `token`, if the samples tell.
    fn holder_of(&self, token: u64) -> Option<String> {
        let all = self.samples.lock().unwrap();
        let below = all.iter().rev().find(|(_, s)| s.version <= token)?;
        let above = all.iter().find(|(_, s)| s.version >= token)?;
        (below.1.holder == above.1.holder && below.1.acquired_at == above.1.acquired_at)
            .then(|| below.1.holder.clone())
    }
}

impl Drop for LeaseWatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The instances' databases, opened by the test.
async fn peers(w: &World, nodes: &[Node]) -> Vec<Peer> {
    let mut out = vec![];
    for n in nodes {
        let peer = w.peer(&n.id).await;
        assert_eq!(peer.db_path, n.db);
        out.push(peer);
    }
    out
}

/// Every audit row with a fencing token was written by the instance that held
/// the lease under that token (invariant 8), and every create has one.
async fn assert_tokens_belong_to_their_holders(nodes: &[Node], peers: &[Peer], watch: &LeaseWatch) {
    let mut checked = 0;
    for (node, Peer { store, .. }) in nodes.iter().zip(peers) {
        let rows: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT action, lease_token FROM audit_log")
                .fetch_all(store.pool())
                .await
                .unwrap();
        for (action, token) in rows {
            if action == "create" {
                assert!(
                    token.is_some(),
                    "{}: a create without a fencing token",
                    node.id
                );
            }
            if let Some(t) = token {
                if let Some(holder) = watch.holder_of(t as u64) {
                    assert_eq!(holder, node.id, "{}: token {t} was {holder}'s", node.id);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0, "no fencing token could be checked");
}

/// Every key the daemon created ended stored in Vault (some version) or deleted:
/// keys created never exceed versions stored plus the rolled-back ones.
async fn assert_no_double_rotation(w: &World) -> (usize, usize, usize) {
    let vault = w.vault_store(&w.vault.root_token).await;
    let mutations = w.sim.mutations();
    let created = mutations
        .iter()
        .filter(|m| m.method == "POST" && m.path.ends_with("/api_keys") && m.status / 100 == 2)
        .count();
    let names: std::collections::BTreeSet<String> =
        w.sim.keys(TEAM).into_iter().map(|k| k.name).collect();
    let mut stored = std::collections::HashSet::new();
    for name in &names {
        for v in vault.versions(TEAM, name).await.unwrap_or_default() {
            if let Ok(s) = vault.read_version(TEAM, name, v.version).await {
                stored.insert(s.secret.key_id);
            }
        }
    }
    let cleaned = mutations
        .iter()
        .filter(|m| m.method == "DELETE" && m.status / 100 == 2)
        .filter_map(|m| m.path.rsplit('/').next())
        .filter(|id| !stored.contains(*id))
        .count();
    assert!(
        created <= stored.len() + cleaned,
        "{created} keys created, {} stored, {cleaned} rolled back or cleaned up",
        stored.len()
    );
    (created, stored.len(), cleaned)
}

fn seconds(d: &[StdDuration]) -> String {
    let mut s: Vec<f64> = d.iter().map(StdDuration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    format!(
        "min {:.2} s, median {:.2} s, max {:.2} s over {}",
        s[0],
        s[s.len() / 2],
        s[s.len() - 1],
        s.len()
    )
}

/// No lineage is due now: every current key has more than `rotate_before_expiry` (20 s) left.
async fn none_due(w: &World, lineages: &[String]) -> bool {
    for name in lineages {
        match w.current(name).await {
            Some(s) => {
                let left = s.secret.expiry.map(|e| e - w.now());
                if left.is_some_and(|l| l <= chrono::Duration::seconds(20)) {
                    return false;
                }
            }
            None => return false,
        }
    }
    true
}

#[tokio::test]
async fn kill_9_of_the_holder_hands_over_within_the_ttl_and_no_invariant_breaks() {
    let kills = count_from_env("HA_KILLS", 6) as usize;
    let w = World::realtime().await;
    let lineages = due_lineages(&w, 4);
    w.sim
        .inject(Fault::new(FaultKind::Latency(StdDuration::from_millis(15))).times(usize::MAX));
    let base = std::fs::read_to_string(w.write_config(FAST_POLICY)).unwrap();
    let mut nodes: Vec<Node> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|id| Node::new(&w, &base, id, None, ""))
        .collect();
    let watch = LeaseWatch::start(&w).await;
    let consumers = Rig::new(&w, APP_PACE).await.reading_vault(&lineages, 2);
    for n in &mut nodes {
        n.start();
    }
    let mut rng = rand::thread_rng();
    let mut takeovers = vec![];
    let mut rotated_after = vec![];
    watch.next_term(None, StdDuration::from_secs(10)).await;
    for k in 0..kills {
        tokio::time::sleep(StdDuration::from_millis(rng.gen_range(300..2500))).await;
        let holder = watch.last().unwrap();
        let i = nodes.iter().position(|n| n.id == holder.holder).unwrap();
        let killed_at = Instant::now();
        nodes[i].kill9().await;
        nodes[i].start(); // as systemd's Restart= would
        let (next, took) = watch
            .next_term(Some(&holder), TTL + 2 * SWEEP + StdDuration::from_secs(2))
            .await;
        takeovers.push(took);
        assert!(
            took <= TTL + 2 * SWEEP,
            "kill {k}: {} took over from {} after {took:?}",
            next.holder,
            holder.holder
        );
        // Every key due by now is rotated within ttl + 2 sweeps of the kill
        // (and the rotation's own few hundred milliseconds).
        let deadline = TTL + 2 * SWEEP + StdDuration::from_secs(2);
        loop {
            if none_due(&w, &lineages).await {
                rotated_after.push(killed_at.elapsed());
                break;
            }
            assert!(
                killed_at.elapsed() < deadline,
                "kill {k}: keys still due {deadline:?} after the kill\n{}",
                nodes
                    .iter()
                    .map(|n| format!("--- {}\n{}", n.id, n.log_text()))
                    .collect::<String>()
            );
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        assert!(w.sim.deleted_while_active().is_empty());
    }
    for n in &mut nodes {
        assert_eq!(n.stop().await, Some(0), "{} stops cleanly", n.id);
    }
    // Settle what the last kill left, with the lease taken by a one-shot.
    for _ in 0..2 {
        bin::once_succeeds(&nodes[0].config).await;
    }
    let opened = peers(&w, &nodes).await;
    w.assert_invariants_with(&opened.iter().collect::<Vec<_>>())
        .await;
    assert_tokens_belong_to_their_holders(&nodes, &opened, &watch).await;
    let consumed = consumers.stop().await;
    let (created, stored, cleaned) = assert_no_double_rotation(&w).await;
    for name in &lineages {
        let current = w.current(name).await.expect("a stored key");
        let key = w.sim.key(&current.secret.key_id).expect("listed");
        assert_eq!(
            key.state,
            KeyState::Active,
            "{name}: current key not active"
        );
    }
    println!(
        "HA kill matrix: {kills} kills of the holder; takeover {}; every due key rotated {}; {created} keys created, {stored} stored, {cleaned} cleaned up",
        seconds(&takeovers),
        seconds(&rotated_after)
    );
    println!("HA kill matrix consumers: {consumed}");
    consumed.assert_no_refusals("HA kill matrix");
}

#[tokio::test]
async fn sigterm_of_the_holder_hands_over_within_one_sweep_interval_with_events_and_metrics() {
    let w = World::realtime().await;
    due_lineages(&w, 2);
    let mut hook = Hook::start(&[Reply::Status(200)]).await;
    // Sweeps every 2 s here: a standby looks at the lease every ttl/3 = 1 s.
    let policy = FAST_POLICY.replace("cron = \"* * * * * *\"", "cron = \"*/2 * * * * *\"");
    let base = std::fs::read_to_string(w.write_config(&policy)).unwrap();
    let mut ports = vec![];
    let mut nodes: Vec<Node> = vec![];
    for id in ["node-a", "node-b", "node-c"] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        ports.push(port);
        nodes.push(Node::new(
            &w,
            &base,
            id,
            None,
            &format!(
                "\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[notify]\nwebhook_url = \"{}\"\nevents = [\"lease.acquired\", \"lease.lost\"]\n",
                hook.url
            ),
        ));
    }
    let watch = LeaseWatch::start(&w).await;
    for n in &mut nodes {
        n.start();
    }
    let (first, _) = watch.next_term(None, StdDuration::from_secs(10)).await;
    let i = nodes.iter().position(|n| n.id == first.holder).unwrap();
    let get = crate::helpers::local_get;
    // Metrics and health, holder and standbys, once the standbys have looked.
    tokio::time::sleep(TTL).await;
    for (j, port) in ports.iter().enumerate() {
        let (_, metrics) = get(*port, "/metrics").await;
        let leader = if j == i { 1 } else { 0 };
        assert!(
            metrics.contains(&format!("masv_key_rotator_leader {leader}\n")),
            "{}: {metrics}",
            nodes[j].id
        );
        assert!(metrics.contains("masv_key_rotator_lease_transitions_total"));
        if j != i {
            let (code, body) = get(*port, "/healthz").await;
            assert_eq!(code, 200, "a standby is healthy: {body}");
        }
    }
    // A standby is idle: one lease read per second here, nothing else.
    let standby = nodes.iter().find(|n| n.id != first.holder).unwrap();
    let daemon = standby.daemon.as_ref().unwrap();
    let before = daemon.cpu_time();
    tokio::time::sleep(StdDuration::from_secs(5)).await;
    let standby_cpu = (daemon.cpu_time() - before).as_secs_f64() / 5.0;
    assert!(
        standby_cpu < 0.02,
        "a standby used {:.1} % of a core",
        standby_cpu * 100.0
    );
    let acquired = hook.next().await;
    assert_eq!(acquired.json["event"], "lease.acquired");
    assert!(acquired.json["detail"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{} took the lease", first.holder)));
    assert!(acquired.json["team_id"].is_null() && acquired.json["key_id"].is_null());

    let stopped_at = Instant::now();
    assert_eq!(nodes[i].stop().await, Some(0));
    let (next, took) = watch
        .next_term(Some(&first), StdDuration::from_secs(5))
        .await;
    assert_ne!(next.holder, first.holder);
    assert!(
        took <= 2 * SWEEP,
        "a standby takes over within one sweep interval (2 s) of a SIGTERM: {took:?}"
    );
    let mut events = vec![];
    for _ in 0..2 {
        events.push(hook.next().await.json);
    }
    events.sort_by_key(|e| e["event"].as_str().unwrap().to_string());
    assert_eq!(events[0]["event"], "lease.acquired");
    assert!(events[0]["detail"].as_str().unwrap().starts_with(&format!(
        "{} took the lease after it was released",
        next.holder
    )));
    assert_eq!(events[1]["event"], "lease.lost");
    assert!(events[1]["detail"]
        .as_str()
        .unwrap()
        .contains("released at shutdown"));

    // `status` shows the holder and its expiry.
    let out = bin::run(vec![
        "--config".into(),
        nodes[i].config.to_str().unwrap().into(),
        "status".into(),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("HA lease: held by {} until ", next.holder)),
        "{text}"
    );
    // `check-config` reads the lease too.
    let out = bin::run(vec![
        "--config".into(),
        nodes[i].config.to_str().unwrap().into(),
        "check-config".into(),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "instance {}; lease at {}/data/{}/_leader: held by {}",
            nodes[i].id, w.vault.mount, w.vault.prefix, next.holder
        )),
        "{text}"
    );
    for n in nodes.iter_mut().filter(|n| n.daemon.is_some()) {
        assert_eq!(n.stop().await, Some(0));
    }
    println!(
        "HA SIGTERM: {} took over {took:?} after {} stopped (stop itself took {:?}); a standby used {:.2} % of a core",
        next.holder,
        first.holder,
        stopped_at.elapsed() - took,
        standby_cpu * 100.0
    );
}

#[tokio::test]
async fn a_holder_cut_off_from_vault_stops_mutating_within_the_ttl_and_a_standby_takes_over() {
    let w = World::realtime().await;
    let lineages = due_lineages(&w, 3);
    let proxy = VaultProxy::start(&w.vault.address).await;
    let base = std::fs::read_to_string(w.write_config(FAST_POLICY)).unwrap();
    let mut nodes = vec![Node::new(&w, &base, "node-a", Some(&proxy.address), "")];
    let watch = LeaseWatch::start(&w).await;
    nodes[0].start();
    let (first, _) = watch.next_term(None, StdDuration::from_secs(10)).await;
    assert_eq!(first.holder, "node-a");
    for id in ["node-b", "node-c"] {
        let mut n = Node::new(&w, &base, id, None, "");
        n.start();
        nodes.push(n);
    }
    // node-a rotates everything that is due, then loses Vault.
    let t = Instant::now();
    while !none_due(&w, &lineages).await {
        assert!(t.elapsed() < StdDuration::from_secs(10));
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    proxy.cut(true);
    let cut_at = chrono::Utc::now();
    let (next, took) = watch
        .next_term(Some(&first), TTL + 2 * SWEEP + StdDuration::from_secs(1))
        .await;
    assert_ne!(next.holder, "node-a");
    // Keys keep coming due (every 10 s): the new holder rotates them.
    tokio::time::sleep(StdDuration::from_secs(12)).await;
    assert!(
        none_due_within(&w, &lineages, StdDuration::from_secs(5)).await,
        "the new holder keeps the lineages rotated"
    );
    for n in &mut nodes {
        n.stop().await;
    }
    let a = Store::open(&nodes[0].db).await.unwrap();
    let last: Option<String> =
        sqlx::query_scalar("SELECT MAX(at) FROM audit_log WHERE lease_token IS NOT NULL")
            .fetch_one(a.pool())
            .await
            .unwrap();
    let last: chrono::DateTime<chrono::Utc> = last.expect("node-a mutated").parse().unwrap();
    assert!(
        last <= cut_at + chrono::Duration::from_std(TTL).unwrap(),
        "node-a mutated at {last}, more than the ttl after it was cut off at {cut_at}"
    );
    assert!(
        nodes[0].log_text().contains("lost the HA lease"),
        "{}",
        nodes[0].log_text()
    );
    bin::once_succeeds(&nodes[1].config).await;
    let opened = peers(&w, &nodes).await;
    w.assert_invariants_with(&opened.iter().collect::<Vec<_>>())
        .await;
    assert_tokens_belong_to_their_holders(&nodes, &opened, &watch).await;
    println!(
        "HA cut off: node-a's last mutation {:.2} s after the cut, {} took over {took:?} after it",
        (last - cut_at).num_milliseconds() as f64 / 1000.0,
        next.holder
    );
}

/// Whether, some time within `within`, no lineage is due.
async fn none_due_within(w: &World, lineages: &[String], within: StdDuration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if none_due(w, lineages).await {
            return true;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn once_waits_for_a_live_holder_then_exits_4_having_done_nothing() {
    let w = World::realtime().await;
    due_lineages(&w, 1);
    let base = std::fs::read_to_string(w.write_config(FAST_POLICY)).unwrap();
    let mut a = Node::new(&w, &base, "node-a", None, "");
    let b = Node::new(&w, &base, "node-b", None, "");
    let watch = LeaseWatch::start(&w).await;
    a.start();
    let (first, _) = watch.next_term(None, StdDuration::from_secs(10)).await;
    assert_eq!(first.holder, "node-a");
    let started = Instant::now();
    let out = bin::once(&b.config).await;
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("instance node-a holds the HA lease") && stderr.contains("nothing done"),
        "{stderr}"
    );
    // It waited as long as a dead holder's lease can take to be taken over, and no longer.
    assert!(waited >= TTL + TTL / 2, "{waited:?}");
    assert!(waited < TTL * 3, "{waited:?}");
    let b_store = Store::open(&b.db).await.unwrap();
    assert!(b_store
        .audit(&masv_key_rotator::store::AuditFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(a.stop().await, Some(0));
    // With the lease released, a one-shot takes it, sweeps and lets it go.
    bin::once_succeeds(&b.config).await;
    let lease = w
        .vault_store(&w.vault.root_token)
        .await
        .read_lease()
        .await
        .unwrap()
        .unwrap();
    assert!(
        lease.record.holder.is_empty(),
        "released after the sweep: {lease:?}"
    );
    assert!(
        lease.version > first.version + 1,
        "taken and released by node-b"
    );
}
