//! `run`: sweeps on a cron schedule never overlap, and SIGTERM stops it with exit 0.

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use masv_key_rotator::config::CronSchedule;
use masv_key_rotator::daemon::{sweep_loop, LoopHooks};
use masv_key_rotator::simulator::{Fault, FaultKind};
use reqwest::Method;
use tokio_util::sync::CancellationToken;

use crate::helpers::bin;
use crate::helpers::world::World;

/// A schedule for [`sweep_loop`], parsed as the config parses it.
fn cron(text: &str) -> CronSchedule {
    CronSchedule::parse(text).unwrap()
}

#[tokio::test]
async fn a_sweep_slower_than_its_interval_never_overlaps() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), None);
    // every list call takes 1.5 s; the schedule fires every second
    w.sim.inject(
        Fault::new(FaultKind::Latency(StdDuration::from_millis(1500)))
            .on(Method::GET)
            .path("/api_keys")
            .times(100),
    );
    let shutdown = CancellationToken::new();
    let engine = w.engine().await.with_shutdown(shutdown.clone());
    let stopper = {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(StdDuration::from_millis(4500)).await;
            s.cancel();
        })
    };
    let (mut teams, mut reports) = (0, 0);
    let mut on_team = |_: masv_key_rotator::engine::SweepReport| teams += 1;
    let mut on_sweep = |t: Option<&masv_key_rotator::engine::SweepTotals>| {
        assert_eq!(
            t.map(|t| t.scope.teams),
            Some(1),
            "one team, and no sweep ended early"
        );
        reports += 1
    };
    let hooks = LoopHooks {
        on_team: &mut on_team,
        on_sweep: &mut on_sweep,
        on_idle: &|| {},
        idle_every: StdDuration::from_secs(1),
        settle_after: StdDuration::from_secs(60),
        lease: None,
        sweep_at_start: true,
    };
    let stats = sweep_loop(&engine, &cron("* * * * * *"), shutdown, hooks)
        .await
        .unwrap();
    stopper.await.unwrap();
    assert!(stats.sweeps >= 2, "{stats:?}");
    assert_eq!(stats.max_concurrent, 1, "sweeps overlapped: {stats:?}");
    assert!(
        stats.skipped_ticks >= 1,
        "ticks during a sweep are skipped: {stats:?}"
    );
    assert_eq!(reports as u64, stats.sweeps);
    assert_eq!(
        teams as u64, stats.sweeps,
        "each sweep hands over its one team"
    );
    // the list calls themselves never overlapped: each began after the previous one ended
    let lists = w
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/api_keys"))
        .count() as u64;
    assert_eq!(lists, stats.sweeps);
}

/// Runs the loop for 1.5 s with a schedule whose next tick is on 1 January
/// (so the only sweep is the one at start, if any) and a 100 ms settle; its
/// stats and the number of idle ticks.
async fn idle_loop(sweep_at_start: bool) -> (masv_key_rotator::daemon::LoopStats, u64) {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), None);
    let shutdown = CancellationToken::new();
    let engine = w.engine().await.with_shutdown(shutdown.clone());
    let idle_ticks = std::sync::atomic::AtomicU64::new(0);
    let on_idle = || {
        idle_ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    };
    let mut on_team = |_: masv_key_rotator::engine::SweepReport| {};
    let mut on_sweep = |_: Option<&masv_key_rotator::engine::SweepTotals>| {};
    let hooks = LoopHooks {
        on_team: &mut on_team,
        on_sweep: &mut on_sweep,
        on_idle: &on_idle,
        idle_every: StdDuration::from_millis(20),
        settle_after: StdDuration::from_millis(100),
        lease: None,
        sweep_at_start,
    };
    let stopper = {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(StdDuration::from_millis(1500)).await;
            s.cancel();
        })
    };
    let stats = sweep_loop(&engine, &cron("0 0 0 1 1 *"), shutdown, hooks)
        .await
        .unwrap();
    stopper.await.unwrap();
    (stats, idle_ticks.load(std::sync::atomic::Ordering::SeqCst))
}

/// After a sweep has settled, the loop gives freed memory back once, on an
/// idle tick, and not again until another sweep ran.
#[tokio::test]
async fn freed_memory_is_given_back_once_after_each_sweep() {
    let (stats, idle_ticks) = idle_loop(true).await;
    assert_eq!(stats.sweeps, 1, "{stats:?}");
    assert!(idle_ticks > 10, "the loop idled on {idle_ticks} ticks");
    assert_eq!(stats.memory_releases, 1, "{stats:?}");
}

/// An instance that has not swept (a standby, or one waiting for its first
/// tick) gives memory back once after its start has settled.
#[tokio::test]
async fn an_instance_that_never_swept_gives_memory_back_once_after_starting() {
    let (stats, idle_ticks) = idle_loop(false).await;
    assert_eq!(stats.sweeps, 0, "{stats:?}");
    assert!(idle_ticks > 10, "the loop idled on {idle_ticks} ticks");
    assert_eq!(stats.memory_releases, 1, "{stats:?}");
}

#[tokio::test]
async fn sigterm_finishes_and_exits_0_within_10_seconds() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config("\n[schedule]\ncron = \"*/2 * * * * *\"\n");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the first sweep has rotated the lineage
    let started = Instant::now();
    while w.current("ci-build").await.is_none() {
        assert!(
            started.elapsed() < StdDuration::from_secs(20),
            "the daemon never swept"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        signalled.elapsed() < StdDuration::from_secs(10),
        "took {:?}",
        signalled.elapsed()
    );
    assert_eq!(code.code(), Some(0));
    w.assert_invariants().await;
}

#[tokio::test]
async fn sigterm_during_a_slow_step_finishes_that_step_and_leaves_the_rest() {
    let w = World::new().await;
    for i in 0..3 {
        w.seed(
            &format!("ci-{i}"),
            Duration::days(10),
            Some(Duration::days(2)),
        );
    }
    // every create takes 1.5 s: the signal lands while the first ones are in flight
    w.sim.inject(
        Fault::new(FaultKind::Latency(StdDuration::from_millis(1500)))
            .on(Method::POST)
            .path("/api_keys")
            .times(10),
    );
    let config = w.write_config("\n[schedule]\ncron = \"0 0 * * * *\"\n");
    let one_at_a_time = std::fs::read_to_string(&config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"5s\"\nmax_concurrency = 1");
    std::fs::write(&config, one_at_a_time).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !w
        .sim
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path.ends_with("/api_keys"))
    {
        assert!(
            started.elapsed() < StdDuration::from_secs(20),
            "the daemon never listed"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(code.code(), Some(0));
    // whatever was in flight finished cleanly: the next start settles everything
    w.assert_safe_after_crash().await;
    let r = w.sweep().await;
    assert_eq!(
        r.exit(),
        masv_key_rotator::exit::Exit::Success,
        "{:?}",
        r.outcomes
    );
    for i in 0..3 {
        assert!(w.current(&format!("ci-{i}")).await.is_some());
    }
    w.assert_invariants().await;
}

/// A `run` child with its stderr collected line by line.
struct Daemon {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    fn start(config: &std::path::Path, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"));
        cmd.args(["--config", config.to_str().unwrap(), "run"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// `run` under `umask` (set by a shell that then execs the binary: same pid).
    fn start_with_umask(config: &std::path::Path, umask: &str) -> Daemon {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "umask \"$0\" && exec \"$@\"", umask])
            .arg(env!("CARGO_BIN_EXE_masv-key-rotator"))
            .args(["--config", config.to_str().unwrap(), "run"]);
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: std::process::Command) -> Daemon {
        use std::io::BufRead;
        cmd.env_remove("MASV_KEY_ROTATOR_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Daemon { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn wait_for_log(&self, needle: &str) {
        let started = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                started.elapsed() < StdDuration::from_secs(20),
                "never logged {needle:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    async fn stop(self) -> Option<i32> {
        self.signal("-TERM");
        self.exited().await
    }

    /// Waits for the process to end; its exit code.
    async fn exited(mut self) -> Option<i32> {
        tokio::task::spawn_blocking(move || self.child.wait().unwrap().code())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn sd_notify_ready_then_watchdog_and_status() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config("\n[schedule]\ncron = \"*/2 * * * * *\"\n");
    let socket_path = config.with_file_name("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(StdDuration::from_millis(500)))
        .unwrap();
    let daemon = Daemon::start(
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let messages = tokio::task::spawn_blocking(move || {
        let mut got: Vec<String> = Vec::new();
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        while started.elapsed() < StdDuration::from_secs(15) {
            if let Ok(n) = socket.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            let ready = got.iter().any(|m| m.contains("READY=1"));
            let pings = got.iter().filter(|m| m.contains("WATCHDOG=1")).count();
            let status = got.iter().any(|m| m.starts_with("STATUS=last sweep"));
            if ready && pings >= 2 && status {
                break;
            }
        }
        got
    })
    .await
    .unwrap();
    let code = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert_eq!(
        messages.first().map(String::as_str),
        Some("READY=1\n"),
        "READY comes first: {messages:?}"
    );
    assert!(
        messages.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2,
        "{messages:?}"
    );
    let status = messages
        .iter()
        .find(|m| m.starts_with("STATUS="))
        .expect("a STATUS");
    assert!(
        status.contains("1 lineage(s)") && status.contains("0 failed"),
        "{status}"
    );
}

#[tokio::test]
async fn no_ready_when_the_first_login_fails() {
    let w = World::new().await;
    let config = w.write_config_with(
        "not-the-password",
        &w.vault.root_token.clone(),
        &w.vault.address.clone(),
        "",
    );
    let socket_path = config.with_file_name("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
            .args(["--config", config.to_str().unwrap(), "run"])
            .env("NOTIFY_SOCKET", &socket_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("first MASV login failed"));
    let mut buf = [0u8; 256];
    assert!(
        socket.recv(&mut buf).is_err(),
        "nothing was sent to systemd"
    );
}

#[tokio::test]
async fn sighup_reloads_a_valid_config_and_keeps_the_old_on_an_invalid_one() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    w.seed("laptop-7", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config("\n[schedule]\ncron = \"*/1 * * * * *\"\n");
    let daemon = Daemon::start(&config, &[]);
    daemon.wait_for_log("sweep finished").await;
    assert!(w.current("laptop-7").await.is_none(), "not managed yet");
    // a valid change: manage laptop-* too
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "keys = [\"ci-*\", \"render-*\"]",
        "keys = [\"ci-*\", \"render-*\", \"laptop-*\"]",
    );
    std::fs::write(&config, &text).unwrap();
    daemon.signal("-HUP");
    daemon.wait_for_log("config reloaded").await;
    let started = Instant::now();
    while w.current("laptop-7").await.is_none() {
        assert!(
            started.elapsed() < StdDuration::from_secs(20),
            "the reloaded config was not applied:\n{}",
            daemon.log()
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    // an invalid one: rejected, the daemon keeps running on the previous config
    std::fs::write(
        &config,
        text.replace("cron = \"*/1 * * * * *\"", "cron = \"every minute\""),
    )
    .unwrap();
    daemon.signal("-HUP");
    daemon.wait_for_log("reloaded config rejected").await;
    assert!(daemon.log().contains("schedule.cron"), "{}", daemon.log());
    let sweeps_before = daemon.log().matches("sweep finished").count();
    let started = Instant::now();
    while daemon.log().matches("sweep finished").count() <= sweeps_before {
        assert!(
            started.elapsed() < StdDuration::from_secs(20),
            "stopped sweeping after a bad reload"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert_eq!(daemon.stop().await, Some(0));
}

/// A reload says what it does: it waits for the step in flight, then an
/// applied config is swept once at once (even on an hourly schedule), and a
/// rejected one changes nothing, not even the schedule's rhythm.
#[tokio::test]
async fn sighup_logs_a_reload_not_a_stop_and_sweeps_at_once_only_when_applied() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    w.seed("laptop-7", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config("\n[schedule]\ncron = \"0 0 * * * *\"\n");
    let daemon = Daemon::start(&config, &[]);
    daemon.wait_for_log("sweep finished").await;
    let sweeps = || daemon.log().matches("sweep finished").count();
    let valid = std::fs::read_to_string(&config).unwrap().replace(
        "keys = [\"ci-*\", \"render-*\"]",
        "keys = [\"ci-*\", \"render-*\", \"laptop-*\"]",
    );
    std::fs::write(&config, &valid).unwrap();
    daemon.signal("-HUP");
    daemon
        .wait_for_log("config reloaded; sweeping once now")
        .await;
    let started = Instant::now();
    while w.current("laptop-7").await.is_none() || sweeps() < 2 {
        assert!(
            started.elapsed() < StdDuration::from_secs(20),
            "no sweep at once after the reload:\n{}",
            daemon.log()
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    // Rejected: no sweep. A valid reload after it sweeps once more, so three
    // sweeps in all prove the rejected one added none.
    std::fs::write(&config, valid.replace("0 0 * * * *", "every minute")).unwrap();
    daemon.signal("-HUP");
    daemon.wait_for_log("reloaded config rejected").await;
    std::fs::write(&config, &valid).unwrap();
    daemon.signal("-HUP");
    let started = Instant::now();
    while daemon.log().matches("config reloaded;").count() < 2 || sweeps() < 3 {
        assert!(
            started.elapsed() < StdDuration::from_secs(20),
            "the second valid reload was not swept:\n{}",
            daemon.log()
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let log = daemon.log();
    assert_eq!(
        log.matches("SIGHUP: re-reading the config").count(),
        3,
        "{log}"
    );
    assert!(
        !log.contains("stopping"),
        "a reload reads like a stop:\n{log}"
    );
    let after = daemon.log.clone();
    assert_eq!(daemon.stop().await, Some(0));
    let started = Instant::now();
    while !after
        .lock()
        .unwrap()
        .contains("stopping: the sweeps have ended")
    {
        assert!(
            started.elapsed() < StdDuration::from_secs(5),
            "{}",
            after.lock().unwrap()
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let log = after.lock().unwrap().clone();
    assert_eq!(log.matches("sweep finished").count(), 3, "{log}");
}

#[tokio::test]
async fn a_second_instance_on_the_same_database_is_refused() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config("\n[schedule]\ncron = \"0 0 * * * *\"\n");
    let daemon = Daemon::start(&config, &[]);
    daemon.wait_for_log("sweep finished").await;
    let out = bin::once(&config).await;
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another masv-key-rotator")
            && err.contains(&format!("pid {}", daemon.child.id())),
        "{err}"
    );
    let before = w.sim.mutations().len();
    assert_eq!(daemon.stop().await, Some(0));
    assert_eq!(
        w.sim.mutations().len(),
        before,
        "the refused instance changed nothing"
    );
}

#[tokio::test]
async fn run_serves_metrics_and_healthz_after_a_sweep() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let port = free_port();
    let config = w.write_config(&format!(
        "\n[schedule]\ncron = \"0 0 * * * *\"\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let daemon = Daemon::start(&config, &[]);
    daemon.wait_for_log("sweep finished").await;
    let http = reqwest::Client::new();
    let metrics = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("masv_key_rotator_sweeps_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    // The adapters count into the daemon's registry: a login, a key list and
    // the new key's check at MASV; writes and reads at Vault.
    for counted in [
        "masv_key_rotator_rotations_total{result=\"ok\"} 1",
        "masv_key_rotator_masv_requests_total{endpoint=\"login\",code=\"200\"} ",
        "masv_key_rotator_masv_requests_total{endpoint=\"list_keys\",code=\"200\"} ",
        "masv_key_rotator_masv_requests_total{endpoint=\"create_key\",code=\"201\"} 1",
        "masv_key_rotator_masv_requests_total{endpoint=\"check_key\",code=\"200\"} 1",
        "masv_key_rotator_vault_requests_total{op=\"write\",code=\"200\"} ",
        "masv_key_rotator_rotation_duration_seconds_count 1",
        &format!(
            "masv_key_rotator_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(metrics.contains(counted), "{counted} in {metrics}");
    }
    let health = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    assert_eq!(daemon.stop().await, Some(0));
}

#[tokio::test]
async fn a_failed_rotation_posts_a_webhook() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let ro = w.vault.read_only_token().await;
    let config = w.write_config_with(
        crate::helpers::world::PASSWORD,
        &ro,
        &w.vault.address.clone(),
        &format!("\n[notify]\nwebhook_url = \"{hook}\"\n"),
    );
    let out = bin::once(&config).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = received.lock().unwrap().clone();
    let failed = got
        .iter()
        .find(|e| e["event"] == "rotation.failed")
        .unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(failed["key_name"], "ci-build");
    let text = serde_json::to_string(&got).unwrap();
    for s in w.sim.issued_secrets().iter().chain([&ro]) {
        assert!(!text.contains(s.as_str()), "a secret in a webhook");
    }
}

#[tokio::test]
async fn sigterm_gives_a_hanging_webhook_a_bounded_few_seconds() {
    use crate::notify::{Hook, Reply};
    let mut hook = Hook::start(&[Reply::Hang]).await;
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config(&format!(
        "\n[schedule]\ncron = \"0 0 * * * *\"\n\n[notify]\nwebhook_url = \"{}\"\n",
        hook.url
    ));
    let daemon = Daemon::start(&config, &[]);
    daemon.wait_for_log("sweep finished").await;
    hook.next().await; // the adoption's event is out, and the webhook never answers
    let started = Instant::now();
    daemon.signal("-TERM");
    daemon
        .wait_for_log("webhook events abandoned at exit")
        .await;
    let log = daemon.log.clone();
    let code = daemon.exited().await;
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{}", log.lock().unwrap());
    let grace = masv_key_rotator::notify::DRAIN_GRACE;
    assert!(
        took < grace + StdDuration::from_secs(3),
        "stopped within the grace plus a margin: {took:?}"
    );
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Under umask 022 the database, its WAL and SHM (which exist while the daemon
/// runs) and the lock file come out 0600.
#[tokio::test]
async fn state_files_the_daemon_creates_are_0600_under_umask_022() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config("\n[schedule]\ncron = \"0 0 * * * *\"\n");
    let fresh = tempfile::tempdir().unwrap();
    let db = fresh.path().join("state.db");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("path = \"{}\"", w.db_path.display()),
        &format!("path = \"{}\"", db.display()),
    );
    crate::helpers::write_private(&config, &text);
    let daemon = Daemon::start_with_umask(&config, "022");
    daemon.wait_for_log("sweep finished").await;
    let wal = db.with_extension("db-wal");
    let shm = db.with_extension("db-shm");
    let lock = db.with_extension("db.lock");
    for p in [&db, &wal, &shm, &lock] {
        assert_eq!(mode_of(p), 0o600, "{}", p.display());
    }
    assert!(!daemon.log().contains("chmod"), "{}", daemon.log());
    assert_eq!(daemon.stop().await, Some(0));
    assert_eq!(mode_of(&db), 0o600);
}

/// A database left readable by others is used, and the operator is told the
/// exact `chmod` that makes it private.
#[tokio::test]
async fn a_database_readable_by_others_gets_a_warning_naming_the_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config("");
    std::fs::set_permissions(&w.db_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = bin::once(&config).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{} is 0644", w.db_path.display()))
            && err.contains(&format!("run `chmod 600 {}", w.db_path.display())),
        "{err}"
    );
    assert_eq!(mode_of(&w.db_path), 0o644, "warned, not changed");
}

/// A loopback port nothing listens on (for `[metrics] listen`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One lineage failing: `/healthz` (for alerting) is 503 with the reason, while
/// `/livez` (for a liveness probe) stays 200: nothing to restart over.
#[tokio::test]
async fn livez_is_200_while_healthz_is_503_for_a_failing_lineage() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let port = free_port();
    // A read-only Vault token: the rotation cannot store its secret and fails.
    let ro = w.vault.read_only_token().await;
    let metrics = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let config = w.write_config_with(
        crate::helpers::world::PASSWORD,
        &ro,
        &w.vault.address.clone(),
        &format!("\n[schedule]\ncron = \"0 0 * * * *\"\n\n{metrics}"),
    );
    let daemon = Daemon::start(&config, &[]);
    daemon.wait_for_log("sweep finished").await;
    let get = |path: &'static str| crate::helpers::local_get(port, path);
    let (status, body) = get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("action(s) failed"), "{body}");
    assert_eq!(get("/livez").await, (200, "alive\n".to_string()));
    assert_eq!(daemon.stop().await, Some(0));
}
