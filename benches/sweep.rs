//! The sweep benchmark (`scripts/bench`): the release binary against the MASV
//! simulator with a latency injected into every MASV request, and a real
//! OpenBao behind a latency proxy (in this process) that delays every Vault
//! request: production's Vault is a network hop away, and a loopback Vault
//! would hide the cost of each Vault round trip. Prints one table: wall time,
//! calls (Vault requests as the proxy saw them, and per rotation), the
//! round-trip bound ((MASV calls × L_masv + Vault calls × L_vault) ÷
//! max_concurrency), the ratio to it, peak RSS; then idle RSS and CPU of
//! `run`, binary size and audit rows per second.
//!
//! Needs `VAULT_ADDR` and `VAULT_TOKEN` (scripts/bench starts a throwaway OpenBao)
//! and `MASV_KEY_ROTATOR_BIN` (the release binary).
//! Options: --teams N --keys M --latency-ms L --vault-latency-ms LV --concurrency C
//! --baseline-keys K --idle-secs S --skip-baseline --smaps --steady-repeats R

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use masv_key_rotator::clock::SystemClock;
use masv_key_rotator::masv::KeyState;
use masv_key_rotator::simulator::{Fault, FaultKind, Role, SeedKey, Simulator};

struct Opts {
    teams: usize,
    keys: usize,
    latency_ms: u64,
    /// Added to every Vault request by the proxy.
    vault_latency_ms: u64,
    concurrency: usize,
    baseline_keys: usize,
    idle_secs: u64,
    /// Print the idle daemon's resident memory by mapping (from /proc/<pid>/smaps).
    smaps: bool,
    /// Leave out the two small adoptions at max_concurrency C and 1.
    skip_baseline: bool,
    /// How many times to run each kind of steady sweep (every current key used
    /// since the last sweep, nothing changed); more than once prints the spread.
    steady_repeats: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        teams: 20,
        keys: 500,
        latency_ms: 10,
        vault_latency_ms: 2,
        concurrency: 8,
        baseline_keys: 200,
        idle_secs: 60,
        smaps: false,
        skip_baseline: false,
        steady_repeats: 1,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match (args[i].as_str(), v) {
            ("--teams", Some(v)) => o.teams = v as usize,
            ("--keys", Some(v)) => o.keys = v as usize,
            ("--latency-ms", Some(v)) => o.latency_ms = v,
            ("--vault-latency-ms", Some(v)) => o.vault_latency_ms = v,
            ("--concurrency", Some(v)) => o.concurrency = v as usize,
            ("--baseline-keys", Some(v)) => o.baseline_keys = v as usize,
            ("--idle-secs", Some(v)) => o.idle_secs = v,
            ("--steady-repeats", Some(v)) => o.steady_repeats = (v as usize).max(1),
            ("--smaps", _) => {
                o.smaps = true;
                i += 1;
                continue;
            }
            ("--skip-baseline", _) => {
                o.skip_baseline = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// A TCP proxy in front of Vault: every byte from the daemon is passed on
/// `latency` after it arrived (answers come straight back), so each request's
/// round trip gains `latency`, as across a network; and the HTTP/1.1 requests
/// passing through are counted, a tally independent of the daemon's own.
struct LatencyProxy {
    address: String,
    requests: Arc<AtomicU64>,
}

impl LatencyProxy {
    async fn start(upstream: &str, latency: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Vault proxy");
        let (scheme, rest) = upstream.split_once("://").unwrap_or(("http", upstream));
        let upstream = rest.trim_end_matches('/').to_string();
        let address = format!("{scheme}://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let count = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(relay(client, upstream.clone(), latency, count.clone()));
            }
        });
        LatencyProxy { address, requests }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// One connection through the proxy.
async fn relay(
    client: tokio::net::TcpStream,
    upstream: String,
    latency: Duration,
    count: Arc<AtomicU64>,
) {
    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let requests = tokio::spawn(async move {
        while let Some((arrived, chunk)) = rx.recv().await {
            tokio::time::sleep_until(arrived + latency).await;
            if to_server.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_server.shutdown().await;
    });
    // Each request line ends with this; kept across reads by a short tail.
    const MARK: &[u8] = b" HTTP/1.1\r\n";
    let mut buf = vec![0u8; 16 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tail.extend_from_slice(&buf[..n]);
        let found = tail.windows(MARK.len()).filter(|w| *w == MARK).count();
        count.fetch_add(found as u64, Ordering::Relaxed);
        let keep = tail.len().min(MARK.len() - 1);
        tail.drain(..tail.len() - keep);
        if tx
            .send((tokio::time::Instant::now(), buf[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = requests.await;
    let _ = answers.await;
}

fn team_id(i: usize) -> String {
    format!("01BENCH{:019}", i)
}

struct World {
    sim: Simulator,
    base_url: String,
    dir: tempfile::TempDir,
    _running: masv_key_rotator::simulator::RunningSimulator,
}

async fn world(teams: usize, keys: usize, latency: Duration) -> World {
    let sim = Simulator::new(Arc::new(SystemClock));
    let ids: Vec<String> = (0..teams).map(team_id).collect();
    for t in &ids {
        sim.add_team(t, "bench");
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    sim.add_user("bench@bench.invalid", "bench-password", Role::Owner, &refs);
    for t in &ids {
        for k in 0..keys {
            sim.seed_key(t, SeedKey::active(&format!("render-{k:05}")));
        }
    }
    if !latency.is_zero() {
        sim.inject(Fault::new(FaultKind::Latency(latency)).times(usize::MAX));
    }
    let running = sim.spawn().await.expect("simulator");
    World {
        base_url: running.base_url.clone(),
        sim,
        dir: tempfile::tempdir().unwrap(),
        _running: running,
    }
}

fn write_config(
    w: &World,
    teams: usize,
    concurrency: usize,
    prefix: &str,
    vault_addr: &str,
) -> PathBuf {
    let dir = w.dir.path();
    std::fs::write(dir.join("pw"), "bench-password\n").unwrap();
    std::fs::write(
        dir.join("token"),
        format!("{}\n", std::env::var("VAULT_TOKEN").expect("VAULT_TOKEN")),
    )
    .unwrap();
    for f in ["pw", "token"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A Vault you point the bench at over plain http off loopback is your call.
    let insecure = if masv_key_rotator::plain_http::is_insecure(vault_addr) {
        "allow_insecure_http = true\n"
    } else {
        ""
    };
    let mut text = format!(
        "[masv]\nbase_url = \"{}\"\nemail = \"bench@bench.invalid\"\npassword_file = \"{}\"\nmax_concurrency = {concurrency}\ntimeout = \"60s\"\n\n[vault]\naddress = \"{vault_addr}\"\n{insecure}token_file = \"{}\"\npath_prefix = \"{prefix}\"\n\n[database]\npath = \"{}\"\n\n[schedule]\ncron = \"0 0 * * * *\"\n\n[log]\nlevel = \"warn\"\n",
        w.base_url,
        dir.join("pw").display(),
        dir.join("token").display(),
        dir.join("state.db").display(),
    );
    for t in 0..teams {
        text.push_str(&format!(
            "\n[[team]]\nid = \"{}\"\nkeys = [\"render-*\"]\n",
            team_id(t)
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    // Under any umask: the binary refuses a config that others may write.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[derive(Clone)]
struct Run {
    wall: f64,
    rss_kb: u64,
    /// CPU seconds (user + system) of the daemon, of this process (the
    /// simulator) and of the Vault server during the sweep.
    cpu: Cpu,
    masv: u64,
    /// Vault requests as the proxy counted them.
    vault: u64,
    /// Vault requests as the daemon counted them (`calls:` line).
    vault_daemon: u64,
    stdout: String,
}

#[derive(Default, Clone, Copy)]
struct Cpu {
    daemon: f64,
    simulator: f64,
    vault: f64,
}

/// The Vault server's pid, when scripts/bench started it.
fn vault_pid() -> Option<u32> {
    std::env::var("BENCH_VAULT_PID").ok()?.parse().ok()
}

fn once(bin: &Path, config: &Path, proxy: &LatencyProxy) -> Run {
    let vault_requests0 = proxy.requests();
    let sim0 = cpu_ticks(std::process::id()).unwrap_or(0);
    let vault0 = vault_pid().and_then(cpu_ticks).unwrap_or(0);
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "BENCH_RSS_KB=%M BENCH_CPU_S=%U+%S"])
        .arg(bin)
        .args(["--config", config.to_str().unwrap(), "once"])
        .output()
        .expect("run the binary");
    let wall = started.elapsed().as_secs_f64();
    let vault_requests = proxy.requests() - vault_requests0;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "once failed: {stdout}\n{stderr}");
    let sim1 = cpu_ticks(std::process::id()).unwrap_or(0);
    let vault1 = vault_pid().and_then(cpu_ticks).unwrap_or(0);
    let time_line = stderr
        .lines()
        .find(|l| l.starts_with("BENCH_RSS_KB="))
        .unwrap_or("");
    let rss_kb = time_line
        .strip_prefix("BENCH_RSS_KB=")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let daemon_cpu = time_line
        .split("BENCH_CPU_S=")
        .nth(1)
        .map(|v| {
            v.trim()
                .split('+')
                .filter_map(|x| x.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    let cpu = Cpu {
        daemon: daemon_cpu,
        simulator: (sim1 - sim0) as f64 / TICKS_PER_S,
        vault: (vault1 - vault0) as f64 / TICKS_PER_S,
    };
    let calls = stdout
        .lines()
        .find(|l| l.starts_with("calls:"))
        .unwrap_or("")
        .to_string();
    let num_after = |tag: &str| -> u64 {
        calls
            .split(tag)
            .nth(1)
            .and_then(|r| r.trim().split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Run {
        wall,
        rss_kb,
        cpu,
        masv: num_after("MASV "),
        vault: vault_requests,
        vault_daemon: num_after("Vault "),
        stdout,
    }
}

/// The two latencies.
#[derive(Clone, Copy)]
struct Latency {
    masv_ms: u64,
    vault_ms: u64,
}

/// The ids of a team's current keys in the simulator: active, and made by the
/// daemon (its marker opens the description).
fn current_keys(sim: &Simulator, team: &str) -> Vec<String> {
    sim.keys(team)
        .into_iter()
        .filter(|k| k.state == KeyState::Active && k.description.starts_with("managed by"))
        .map(|k| k.id)
        .collect()
}

/// One line for repeated runs of the same sweep: wall and daemon CPU, as
/// minimum, median and maximum.
fn spread(name: &str, runs: &[Run]) {
    fn three(mut v: Vec<f64>) -> String {
        v.sort_by(f64::total_cmp);
        format!(
            "{:.2} / {:.2} / {:.2} s",
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        )
    }
    println!(
        "{name}, {} runs (min / median / max): wall {}, daemon CPU {}",
        runs.len(),
        three(runs.iter().map(|r| r.wall).collect()),
        three(runs.iter().map(|r| r.cpu.daemon).collect()),
    );
}

/// One row; `rotations` the rotations the sweep made (Vault requests per rotation).
fn row(name: &str, r: &Run, l: Latency, concurrency: usize, rotations: usize) {
    let bound = (r.masv as f64 * l.masv_ms as f64 + r.vault as f64 * l.vault_ms as f64)
        / 1000.0
        / concurrency as f64;
    let ratio = if bound > 0.0 { r.wall / bound } else { 0.0 };
    let per_rotation = if rotations > 0 {
        format!("{:.3}", r.vault as f64 / rotations as f64)
    } else {
        "—".to_string()
    };
    if r.vault != r.vault_daemon {
        eprintln!(
            "note: {name}: the proxy counted {} Vault requests, the daemon {}",
            r.vault, r.vault_daemon
        );
    }
    println!(
        "| {name:<34} | {:>8.2} s | {:>7} | {:>7} | {per_rotation:>9} | {:>8.2} s | {:>5.2} | {:>7.1} MiB | {:>6.2} s | {:>6.2} s | {:>6.2} s |",
        r.wall,
        r.masv,
        r.vault,
        bound,
        ratio,
        r.rss_kb as f64 / 1024.0,
        r.cpu.daemon,
        r.cpu.simulator,
        r.cpu.vault,
    );
}

/// Seconds the benchmark lets `run` settle after its start-up sweep before
/// measuring it idle.
const SETTLE_SECS: u64 = 45;

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit(')').next()?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Resident and anonymous kB per mapping name (anonymous mappings as "[anon]"),
/// largest first.
fn resident_by_mapping(pid: u32) -> Vec<(String, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut totals: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut name = String::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            name = parts.nth(4).unwrap_or("[anon]").to_string();
            continue;
        }
        let kb = || {
            parts
                .clone()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match first {
            "Rss:" => totals.entry(name.clone()).or_default().0 += kb(),
            "Anonymous:" => totals.entry(name.clone()).or_default().1 += kb(),
            _ => {}
        }
    }
    let mut rows: Vec<(String, u64, u64)> = totals
        .into_iter()
        .filter(|(_, (rss, _))| *rss >= 64)
        .map(|(n, (r, a))| (n, r, a))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    rows
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches` runs this target without `--bench`; the
        // benchmark takes minutes and a Vault, so it runs only from scripts/bench.
        eprintln!("sweep benchmark: not run under `cargo test`; use scripts/bench");
        return;
    }
    let o = opts();
    // cargo sets this for bench targets: the binary built with the bench profile.
    let bin = PathBuf::from(
        std::env::var("MASV_KEY_ROTATOR_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_masv-key-rotator").into()),
    );
    if !bin.exists() {
        eprintln!("sweep benchmark: no binary at {}", bin.display());
        std::process::exit(2);
    }
    let latency = Duration::from_millis(o.latency_ms);
    let l = Latency {
        masv_ms: o.latency_ms,
        vault_ms: o.vault_latency_ms,
    };
    let proxy = LatencyProxy::start(
        &std::env::var("VAULT_ADDR").expect("VAULT_ADDR"),
        Duration::from_millis(o.vault_latency_ms),
    )
    .await;
    let total = o.teams * o.keys;
    println!("masv-key-rotator sweep benchmark: {} teams x {} keys = {total} keys, MASV latency L_masv = {} ms, Vault latency L_vault = {} ms, max_concurrency = {}", o.teams, o.keys, o.latency_ms, o.vault_latency_ms, o.concurrency);
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default()
    );
    println!();
    println!("CPU columns: seconds of CPU (user + system) spent during the sweep by the daemon, by the simulator and the Vault latency proxy (this process) and by the Vault server");
    println!("Vault: requests through the latency proxy; per rotation: that count over the rotations the sweep made");
    println!("RTT bound: (MASV calls x L_masv + Vault calls x L_vault) / max_concurrency");
    println!();
    println!("| sweep                              |     wall  | MASV    | Vault   | Vault/rot | RTT bound | ratio |  peak RSS   | daemon  | sim+proxy | Vault   |");
    println!("| ---------------------------------- | --------: | ------: | ------: | --------: | --------: | ----: | ----------: | ------: | ------: | ------: |");

    let w = world(o.teams, o.keys, latency).await;
    let prefix = format!("bench-{}", std::process::id());
    let config = write_config(&w, o.teams, o.concurrency, &prefix, &proxy.address);
    let adoption = once(&bin, &config, &proxy);
    assert!(
        adoption
            .stdout
            .contains(&format!("result: {total} action(s) ok, 0 failed")),
        "{}",
        adoption.stdout
    );
    row(
        &format!("adoption ({total} due)"),
        &adoption,
        l,
        o.concurrency,
        total,
    );
    let steady = once(&bin, &config, &proxy);
    row("steady (none due)", &steady, l, o.concurrency, 0);
    // The first sweep after the adoption records in the key snapshot each new
    // key's first use (the rotation's own check); a second finds nothing changed.
    let again = once(&bin, &config, &proxy);
    row(
        "steady again (nothing changed)",
        &again,
        l,
        o.concurrency,
        0,
    );
    // More steady sweeps of each kind: one sweep is too short to time alone on
    // a shared machine. Before each "used" sweep every current key is used, as
    // the rotations' own checks used them before the first.
    if o.steady_repeats > 1 {
        let mut used = vec![steady.clone()];
        let mut unchanged = vec![again.clone()];
        for _ in 1..o.steady_repeats {
            for t in 0..o.teams {
                for id in current_keys(&w.sim, &team_id(t)) {
                    w.sim.touch_key(&id);
                }
            }
            used.push(once(&bin, &config, &proxy));
            unchanged.push(once(&bin, &config, &proxy));
        }
        spread("steady, every current key used since", &used);
        spread("steady, nothing changed", &unchanged);
    }
    // mixed: MASV suspends 10 % of the current keys, which makes them due
    let mut suspended = 0;
    for t in 0..o.teams {
        for id in current_keys(&w.sim, &team_id(t)).iter().step_by(10) {
            w.sim.set_key_state(id, KeyState::Suspended);
            suspended += 1;
        }
    }
    let mixed = once(&bin, &config, &proxy);
    row(
        &format!("mixed ({suspended} due, 10 %)"),
        &mixed,
        l,
        o.concurrency,
        suspended,
    );

    // audit rows per second during adoption
    let rows = Command::new(&bin)
        .args(["--config", config.to_str().unwrap(), "history", "--json"])
        .output()
        .map(|out| {
            serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
                .map(|v| v.len())
                .unwrap_or(0)
        })
        .unwrap_or(0);

    // baseline: the same adoption at max_concurrency = 8 and = 1 on a smaller set
    let base_keys = o.baseline_keys;
    let mut speed = Vec::new();
    let baselines: &[usize] = if o.skip_baseline {
        &[]
    } else {
        &[o.concurrency, 1]
    };
    for &c in baselines {
        let bw = world(1, base_keys, latency).await;
        let cfg = write_config(&bw, 1, c, &format!("{prefix}-c{c}"), &proxy.address);
        let r = once(&bin, &cfg, &proxy);
        row(
            &format!("adoption of {base_keys}, max_concurrency {c}"),
            &r,
            l,
            c,
            base_keys,
        );
        speed.push(r.wall);
    }
    println!();
    if let [at_c, at_1] = speed[..] {
        println!(
            "speed-up of max_concurrency {} over 1: {:.2}x (ideal {})",
            o.concurrency,
            at_1 / at_c,
            o.concurrency
        );
    }
    println!(
        "audit rows written by the adoption sweep: {rows} ({:.0} rows/s)",
        rows as f64 / adoption.wall
    );

    // idle `run`: RSS and CPU over idle_secs with nothing due
    let mut child = Command::new(&bin)
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run");
    let pid = child.id();
    // The start-up sweep lists every key (under a second even for 10,000);
    // then the daemon settles: its idle connections close after 5 s and, at the
    // first idle tick (every 30 s) at least 15 s after the sweep, it gives freed
    // memory back. Idle is measured after that.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settle0 = cpu_ticks(pid).unwrap_or(0);
    let idle_requests0 = proxy.requests();
    tokio::time::sleep(Duration::from_secs(SETTLE_SECS)).await;
    let settle_cpu = (cpu_ticks(pid).unwrap_or(0) - settle0) as f64 / TICKS_PER_S;
    let t0 = cpu_ticks(pid).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(o.idle_secs)).await;
    let t1 = cpu_ticks(pid).unwrap_or(0);
    let idle_requests = proxy.requests() - idle_requests0;
    let rss_kb = proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let anon_kb = proc_field(pid, "status", "RssAnon:").unwrap_or(0);
    let file_kb = proc_field(pid, "status", "RssFile:").unwrap_or(0);
    let by_mapping = o.smaps.then(|| resident_by_mapping(pid));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let cpu_pct = (t1 - t0) as f64 / TICKS_PER_S / o.idle_secs as f64 * 100.0;
    println!(
        "run: start-up sweep, then {SETTLE_SECS} s settling (connections closed, freed memory returned) took {settle_cpu:.2} s of CPU"
    );
    println!(
        "idle run over the next {} s: RSS {:.1} MiB ({:.1} MiB anonymous, {:.1} MiB file-backed: the executable's pages), CPU {:.3} % of a core",
        o.idle_secs,
        rss_kb as f64 / 1024.0,
        anon_kb as f64 / 1024.0,
        file_kb as f64 / 1024.0,
        cpu_pct
    );
    println!(
        "Vault requests of the idle run from 5 s after its start to the end of the idle window: {idle_requests}"
    );
    if let Some(rows) = by_mapping {
        println!("idle run, resident memory by mapping (kB resident, kB anonymous):");
        for (name, rss, anon) in rows {
            println!("  {rss:>8} {anon:>8}  {name}");
        }
    }
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    println!(
        "binary size: {:.1} MiB ({})",
        size as f64 / 1024.0 / 1024.0,
        bin.display()
    );
}
