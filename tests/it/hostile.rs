//! A careless or hostile upstream: MASV and Vault answers that echo the request
//! (and with it the password, tokens and keys), answers of any size, answers
//! that are slow or ask to wait, ids shaped like paths, and key names that
//! cannot be managed. Nothing may leak, grow without bound, or steer a request.

use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::body::Bytes;
use chrono::Duration;
use masv_key_rotator::clock::Clock;
use masv_key_rotator::config::SecretSource;
use masv_key_rotator::engine::admission::UnmanageableReason;
use masv_key_rotator::exit::Exit;
use masv_key_rotator::masv::{
    KeyAction, KeyState, MasvClient, MasvError, MasvSettings, RetryPolicy, UpdateApiKey,
};
use masv_key_rotator::metrics::Metrics;
use masv_key_rotator::simulator::{Fault, FaultKind, SeedKey};
use masv_key_rotator::vault::{VaultAuth, VaultError, VaultStore};
use reqwest::Method;
use secrecy::SecretString;

use crate::helpers::bin::run;
use crate::helpers::vault::TestVault;
use crate::helpers::vault_proxy::{VaultFault, VaultProxy};
use crate::helpers::world::{contains_any, fast_retry, World, EMAIL, PASSWORD, TEAM};

const VICTIM_NAME: &str = "render-victim";

fn client(w: &World, retry: RetryPolicy, timeout: StdDuration) -> MasvClient {
    MasvClient::new(MasvSettings {
        base_url: w.running.base_url.clone(),
        email: EMAIL.into(),
        password: SecretString::from(PASSWORD.to_string()),
        timeout,
        max_concurrency: 2,
        retry,
    })
    .unwrap()
}

/// The request is handled, then answered with `status` and exactly `body`.
fn replaced(status: u16, body: Bytes, chunked: bool) -> FaultKind {
    FaultKind::Replace {
        status,
        body,
        chunked,
    }
}

/// A create whose answer could not be taken may have happened: outcome unknown.
async fn assert_create_outcome_unknown(c: &MasvClient, name: &str) {
    let new = masv_key_rotator::masv::NewApiKey {
        name: name.into(),
        description: String::new(),
        expiry: None,
        state: KeyAction::Active,
    };
    let err = c.create_key(TEAM, &new).await.unwrap_err();
    assert!(matches!(err, MasvError::OutcomeUnknown { .. }), "{err}");
}

fn args(config: &std::path::Path, rest: &[&str]) -> Vec<String> {
    let mut a = vec!["--config".to_string(), config.display().to_string()];
    a.extend(rest.iter().map(|s| s.to_string()));
    a
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A webhook receiver that keeps every body it gets.
async fn webhook() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn an_echoing_masv_and_vault_leak_no_secret_at_any_call() {
    let w = World::realtime().await;
    let proxy = VaultProxy::start(&w.vault.address).await;
    // A random token (the dev server's "root" is a dictionary word).
    let token = w.vault.token_with_policy(&w.vault.writer_policy()).await;
    let (hook, bodies) = webhook().await;
    let config = w.write_config_with(
        PASSWORD,
        &token,
        &proxy.address,
        &format!(
            "[policy]\ngrace_period = \"1s\"\nidle_before_deactivate = \"1s\"\ndelete_after = \"1s\"\n\n[notify]\nwebhook_url = \"{hook}\"\n"
        ),
    );
    let old = w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let mut outputs = String::new();
    let once = |label: &'static str| {
        let config = config.clone();
        async move {
            let out = run(args(&config, &["--debug", "once"])).await;
            format!("== {label}: exit {:?}\n{}", out.status.code(), text(&out))
        }
    };
    let echo = |method: Method, path: &str, status: u16| {
        w.sim.inject(
            Fault::new(FaultKind::EchoRequest(status))
                .on(method)
                .path(path),
        );
    };

    echo(Method::POST, "/auth", 422);
    outputs += &once("login echoed").await;
    echo(Method::GET, "/api_keys", 400);
    outputs += &once("list echoed").await;
    echo(Method::POST, "/api_keys", 400);
    outputs += &once("create echoed").await;
    proxy.inject(Method::POST, "/data/", VaultFault::Echo(400), 1);
    outputs += &once("vault write echoed").await;
    echo(Method::PUT, "/active", 400);
    outputs += &once("activate echoed").await;
    echo(Method::GET, "/packages", 400);
    outputs += &once("key check echoed").await;
    outputs += &once("rotation").await;
    let current = w.current("ci-build").await.expect("rotated in the end");
    assert_ne!(current.secret.key_id, old.id);
    // Retirement: deactivate, then delete, each echoed once.
    echo(Method::PUT, "/inactive", 400);
    tokio::time::sleep(StdDuration::from_millis(1100)).await; // grace_period on the wall clock
    outputs += &once("deactivate echoed").await;
    outputs += &once("deactivate").await;
    assert_eq!(w.state(&old.id), Some(KeyState::Inactive), "{outputs}");
    echo(Method::DELETE, "/api_keys/", 400);
    tokio::time::sleep(StdDuration::from_millis(1100)).await; // delete_after
    outputs += &once("delete echoed").await;
    outputs += &once("delete").await;
    assert_eq!(w.state(&old.id), None, "{outputs}");

    // Every echo was served: each call's error really quoted the request.
    let echoed: Vec<String> = w
        .sim
        .requests()
        .iter()
        .filter(|r| r.status == 400 || r.status == 422)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    for (method, part) in [
        ("POST", "/auth"),
        ("GET", "/api_keys"),
        ("POST", "/api_keys"),
        ("PUT", "/active"),
        ("GET", "/packages"),
        ("PUT", "/inactive"),
        ("DELETE", "/api_keys/"),
    ] {
        assert!(
            echoed
                .iter()
                .any(|e| e.starts_with(method) && e.contains(part)),
            "no echo served for {method} {part}: {echoed:?}"
        );
    }
    assert!(
        proxy.log().iter().any(|l| l.ends_with("(echo)")),
        "{:?}",
        proxy.log()
    );

    let mut secrets = w.sim.issued_secrets();
    secrets.push(PASSWORD.to_string());
    secrets.push(token.clone());
    let needles: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
    assert!(secrets.len() >= 6, "{secrets:?}");
    assert!(
        !contains_any(outputs.as_bytes(), &needles),
        "a secret reached the output or the logs:\n{outputs}"
    );
    let (db, wal) = crate::helpers::database_bytes(&w.db_path);
    assert!(!db.is_empty(), "the database file is there");
    assert!(!contains_any(&db, &needles) && !contains_any(&wal, &needles));
    let hooks = bodies.lock().unwrap().join("\n");
    assert!(!hooks.is_empty(), "the webhook heard of the failures");
    assert!(!contains_any(hooks.as_bytes(), &needles), "{hooks}");
    assert!(outputs.contains("[redacted]") || outputs.contains("not quoted"));
}

#[tokio::test]
async fn oversized_answers_are_refused_while_streaming() {
    let w = World::new().await;
    let c = client(&w, fast_retry(), StdDuration::from_secs(10));
    c.login().await.unwrap();
    let huge = Bytes::from(vec![b' '; 64 * 1024 * 1024]);
    for chunked in [true, false] {
        w.sim.inject(
            Fault::new(replaced(200, huge.clone(), chunked))
                .on(Method::GET)
                .path("/api_keys"),
        );
        let err = c.list_keys(TEAM).await.unwrap_err();
        assert!(matches!(err, MasvError::TooLarge { .. }), "{err}");
    }
    // An error answer is held to the small limit: a 100 KiB 400 is refused too.
    w.sim.inject(
        Fault::new(replaced(400, Bytes::from(vec![b'x'; 100 * 1024]), true)).on(Method::PUT),
    );
    let seeded = w.seed("ci-a", Duration::days(1), None);
    let err = c
        .set_key_state(&seeded.id, KeyAction::Inactive)
        .await
        .unwrap_err();
    assert!(matches!(err, MasvError::TooLarge { .. }), "{err}");
    // A create whose answer is too large was carried out: outcome unknown, not lost silently.
    w.sim.inject(
        Fault::new(replaced(201, Bytes::from(vec![b' '; 100 * 1024]), true))
            .on(Method::POST)
            .path("/api_keys"),
    );
    assert_create_outcome_unknown(&c, "ci-b").await;
}

#[tokio::test]
async fn refusing_a_64_mib_list_keeps_the_daemon_under_48_mib() {
    let w = World::realtime().await;
    w.seed("ci-build", Duration::days(1), None);
    w.sim.inject(
        Fault::new(replaced(
            200,
            Bytes::from(vec![b' '; 64 * 1024 * 1024]),
            true,
        ))
        .on(Method::GET)
        .path("/api_keys"),
    );
    let config = w.write_config("");
    // The child's peak resident set, as the kernel accounts it (getrusage).
    let script = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:], capture_output=True)\n\
        sys.stderr.write(r.stdout.decode() + r.stderr.decode())\n\
        print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    // MASV_KEY_ROTATOR_BIN measures another build (e.g. target/release).
    let bin = std::env::var("MASV_KEY_ROTATOR_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_masv-key-rotator").to_string());
    let config_arg = config.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script, &bin, "--config", &config_arg, "once"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    let mut fields = stdout.split_whitespace();
    let code: i32 = fields.next().unwrap().parse().unwrap();
    let peak_kib: u64 = fields.next().unwrap().parse().unwrap();
    assert_eq!(code, i32::from(Exit::ActionFailed.code()), "{log}");
    assert!(log.contains("larger than"), "{log}");
    assert!(
        peak_kib < 48 * 1024,
        "peak RSS {peak_kib} KiB while refusing a 64 MiB answer"
    );
    eprintln!("peak RSS while refusing a 64 MiB list: {peak_kib} KiB");
}

#[tokio::test]
async fn a_call_ends_within_its_deadline_whatever_the_server_asks() {
    let w = World::new().await;
    let retry = RetryPolicy {
        deadline: StdDuration::from_millis(1500),
        max_retry_after: StdDuration::from_secs(30),
        ..fast_retry()
    };
    let c = client(&w, retry, StdDuration::from_secs(20));
    c.login().await.unwrap();
    // A Retry-After past the deadline ends the call at once, without a second try.
    w.sim.inject(
        Fault::new(FaultKind::RateLimited {
            retry_after: Some(StdDuration::from_secs(20)),
        })
        .on(Method::GET),
    );
    let before = w.sim.requests().len();
    let err = c.list_keys(TEAM).await.unwrap_err();
    assert!(matches!(err, MasvError::RateLimited { .. }), "{err}");
    assert_eq!(
        w.sim.requests().len(),
        before + 1,
        "no retry past the deadline"
    );
    // A server slower than the deadline (the per-attempt timeout is 20 s).
    w.sim.inject(
        Fault::new(FaultKind::Latency(StdDuration::from_secs(10)))
            .on(Method::GET)
            .times(5),
    );
    let started = Instant::now();
    let err = c.list_keys(TEAM).await.unwrap_err();
    assert!(matches!(err, MasvError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < StdDuration::from_secs(8),
        "ended by the 1.5 s deadline, not the 20 s timeout: {:?}",
        started.elapsed()
    );
    // A create cut by the deadline may have happened: outcome unknown.
    w.sim.inject(
        Fault::new(FaultKind::Latency(StdDuration::from_secs(10)))
            .on(Method::POST)
            .path("/api_keys"),
    );
    assert_create_outcome_unknown(&c, "ci-slow").await;
}

#[tokio::test]
async fn ids_that_are_not_masv_ids_never_reach_a_url() {
    let w = World::new().await;
    let victim = w.seed(VICTIM_NAME, Duration::days(1), None);
    let c = client(&w, fast_retry(), StdDuration::from_secs(5));
    c.login().await.unwrap();
    let before = w.sim.requests().len();
    for id in [
        format!("../api_keys/{}", victim.id),
        format!("{}/active", victim.id),
        "01F3NH1NRBQWRN7HQDJ2SYGBD%2F".to_string(),
        String::new(),
    ] {
        let err = c.set_key_state(&id, KeyAction::Inactive).await.unwrap_err();
        assert!(matches!(err, MasvError::Malformed { .. }), "{err}");
        let err = c.delete_key(&id).await.unwrap_err();
        assert!(matches!(err, MasvError::Malformed { .. }), "{err}");
        let update = UpdateApiKey {
            name: None,
            description: None,
            expiry: None,
            state: KeyAction::Inactive,
        };
        assert!(c.update_key(&id, &update).await.is_err());
    }
    assert_eq!(w.sim.requests().len(), before, "nothing was sent");

    // A list or an update answer naming a path-shaped id is refused whole.
    let evil = format!(
        r#"[{{"id":"../api_keys/{}","name":"ci-x","description":"","state":"active"}}]"#,
        victim.id
    );
    w.sim.inject(
        Fault::new(replaced(200, Bytes::from(evil.clone()), false))
            .on(Method::GET)
            .path("/api_keys"),
    );
    let err = c.list_keys(TEAM).await.unwrap_err();
    assert!(matches!(err, MasvError::Malformed { .. }), "{err}");
    let own = w.seed("ci-own", Duration::days(1), None);
    w.sim.inject(
        Fault::new(FaultKind::Rewrite {
            from: own.id.clone(),
            to: format!("../api_keys/{}", victim.id),
        })
        .on(Method::PUT),
    );
    let update = UpdateApiKey {
        name: None,
        description: None,
        expiry: None,
        state: KeyAction::Active,
    };
    let err = c.update_key(&own.id, &update).await.unwrap_err();
    assert!(matches!(err, MasvError::Malformed { .. }), "{err}");
}

#[tokio::test]
async fn a_create_answer_with_a_path_shaped_id_steers_nothing_and_the_key_is_cleaned_up() {
    let w = World::new().await;
    let victim = w.seed(VICTIM_NAME, Duration::days(1), None);
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let evil = format!(
        r#"{{"id":"../api_keys/{}","key":"stolen-looking-secret","name":"ci-build","description":"","state":"active"}}"#,
        victim.id
    );
    w.sim.inject(
        Fault::new(replaced(201, Bytes::from(evil), false))
            .on(Method::POST)
            .path("/api_keys"),
    );
    let report = w.sweep().await;
    assert!(
        report.failed() > 0 || !report.errors.is_empty(),
        "{report:?}"
    );
    // Later sweeps find the key the create really made (by its marker) and clean up.
    for _ in 0..3 {
        w.clock.advance(Duration::minutes(5));
        w.sweep().await;
    }
    let victim_path = format!("/api_keys/{}", victim.id);
    for r in w.sim.requests() {
        assert!(!r.path.contains(".."), "{r:?}");
        assert!(
            !(r.is_mutation() && r.path.contains(&victim_path)),
            "the victim was touched: {r:?}"
        );
    }
    assert_eq!(w.state(&victim.id), Some(KeyState::Active));
    w.assert_invariants().await;
}

#[tokio::test]
async fn unmanageable_names_are_reported_not_failed() {
    let mut w = World::new().await;
    w.patterns = vec!["*".into()];
    let seed = |name: &str, description: &str| {
        w.sim.seed_key(
            TEAM,
            SeedKey {
                description: description.into(),
                created_at: Some(w.clock.now() - Duration::days(1)),
                ..SeedKey::active(name)
            },
        )
    };
    let slash = seed("team/ci", "");
    let control = seed("ci-\u{1b}[31mred\nforged", "");
    let long_name = seed(&"n".repeat(300), "");
    let long_description = seed("ci-wordy", &"d".repeat(5000));
    seed("ci-fine", "");
    let report = w.sweep().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.failed(), 0, "{report:?}");
    assert_eq!(report.exit(), Exit::Success);
    let mut seen: Vec<(String, UnmanageableReason)> = report
        .unmanageable
        .iter()
        .map(|u| (u.key_id.clone(), u.reason))
        .collect();
    seen.sort();
    let mut expected = vec![
        (slash.id.clone(), UnmanageableReason::NameNotAPathSegment),
        (control.id.clone(), UnmanageableReason::NameNotAPathSegment),
        (long_name.id.clone(), UnmanageableReason::NameTooLong),
        (
            long_description.id.clone(),
            UnmanageableReason::DescriptionTooLong,
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    // The fine key was adopted; the others were left alone and never stored.
    assert!(w.current("ci-fine").await.is_some());
    for id in [&slash.id, &control.id, &long_name.id, &long_description.id] {
        assert_eq!(w.state(id), Some(KeyState::Active));
        assert!(
            !w.sim
                .requests()
                .iter()
                .any(|r| r.path.contains(id.as_str())),
            "{id} touched"
        );
    }
    let (db, wal) = crate::helpers::database_bytes(&w.db_path);
    assert!(!db.is_empty(), "the database file is there");
    for needle in [&"n".repeat(300), &"d".repeat(5000), &"forged".to_string()] {
        assert!(
            !contains_any(&db, &[needle.as_bytes()]) && !contains_any(&wal, &[needle.as_bytes()]),
            "an unmanageable key's text was stored"
        );
    }
    let metrics = Metrics::new(StdDuration::from_secs(300), Arc::new(w.clock.clone()));
    metrics.record_sweep(&report);
    assert!(
        metrics
            .render()
            .contains("masv_key_rotator_unmanageable_keys 4"),
        "{}",
        metrics.render()
    );
}

#[tokio::test]
async fn an_oversized_vault_answer_is_refused_and_vault_errors_are_scrubbed() {
    let vault = TestVault::start().await.renamed("hostile");
    let proxy = VaultProxy::start(&vault.address).await;
    let token = vault.token_with_policy(&vault.writer_policy()).await;
    let mut settings = vault.settings(VaultAuth::Token(SecretString::from(token.clone())));
    settings.address = proxy.address.clone();
    let store = VaultStore::connect(settings).await.unwrap();
    proxy.inject(
        Method::GET,
        "/data/",
        VaultFault::Oversized(64 * 1024 * 1024),
        1,
    );
    let err = store.read(TEAM, "ci-huge").await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    // An error that quotes the request (token header, secret body) is cleaned.
    proxy.inject(Method::POST, "/data/", VaultFault::Echo(400), 1);
    let secret = masv_key_rotator::vault::LineageSecret {
        api_key: SecretString::from("vault-echo-api-key-value".to_string()),
        key_id: "01F3NH1NRBQWRN7HQDJ2SYGBDH".into(),
        key_name: "ci-echo".into(),
        team_id: TEAM.into(),
        expiry: None,
        created_at: None,
        rotated_at: chrono::Utc::now(),
        rotation_id: "01F3NH1NRBQWRN7HQDJ2SYGBDZ".into(),
    };
    masv_key_rotator::redact::remember_key(&secret.api_key);
    let err = store.write(&secret, 0).await.unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, VaultError::Other { .. }), "{shown}");
    assert!(
        shown.contains("cannot process"),
        "the echo was served: {shown}"
    );
    assert!(!shown.contains(&token), "{shown}");
    assert!(!shown.contains("vault-echo-api-key-value"), "{shown}");
}

#[tokio::test]
async fn the_approle_secret_id_is_read_again_at_each_login() {
    let vault = TestVault::start().await.renamed("approle-reread");
    let (mount, role_id, first) = vault.approle(&vault.writer_policy()).await;
    // Short tokens, so the adapter logs in again within the test.
    vault
        .api(
            Method::POST,
            &format!("auth/{mount}/role/rotator"),
            Some(serde_json::json!({"token_ttl": "2s", "token_max_ttl": "2s"})),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret-id");
    let write_private = |value: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&file, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_private(&first);
    let source = SecretSource::Config {
        config_file: dir.path().join("config.toml"),
        table: "vault.approle".into(),
        name: "secret_id".into(),
        file: Some(file.clone()),
        env: None,
    };
    let store = VaultStore::connect(vault.settings(VaultAuth::AppRole {
        mount: mount.clone(),
        role_id,
        secret_id: source,
    }))
    .await
    .unwrap();
    // The operator issues a new secret id, replaces the file and revokes the old one.
    let second = vault
        .api(
            Method::POST,
            &format!("auth/{mount}/role/rotator/secret-id"),
            None,
        )
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    write_private(&second);
    vault
        .api(
            Method::POST,
            &format!("auth/{mount}/role/rotator/secret-id/destroy"),
            Some(serde_json::json!({ "secret_id": first })),
        )
        .await;
    // Once the first token has expired only a login with the new secret id works.
    tokio::time::sleep(StdDuration::from_millis(2500)).await;
    store
        .check_write_capability()
        .await
        .expect("logged in again with the replaced secret id");
}

#[tokio::test]
async fn rotate_refuses_a_name_it_could_not_manage() {
    let mut w = World::new().await;
    w.patterns = vec!["*".into()];
    let config = w.write_config("");
    for name in ["team/ci", "ci-\u{1b}[31m", ".."] {
        let out = run(args(&config, &["rotate", "--team", TEAM, "--name", name])).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let shown = text(&out);
        assert!(shown.contains("cannot manage"), "{shown}");
        assert!(!shown.contains('\u{1b}'), "{shown:?}");
    }
    assert!(w.sim.requests().is_empty(), "nothing was sent to MASV");
}
