//! The binary as an operator runs it: exit codes, messages, `check-config`,
//! `once --dry-run`, and that secrets never reach its output at debug level.

use std::path::Path;
use std::process::{Command, Output};

use chrono::Duration;
use masv_key_rotator::masv::KeyState;

use crate::helpers::vault::dead_address;
use crate::helpers::world::{contains_any, World, PASSWORD};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"));
    c.env_remove("MASV_KEY_ROTATOR_CONFIG")
        .env_remove("RUST_LOG");
    c
}

/// Runs the binary off the test's runtime threads.
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || bin().args(&args).output().unwrap())
        .await
        .unwrap()
}

fn args(config: &Path, rest: &[&str]) -> Vec<String> {
    let mut v = vec!["--config".to_string(), config.display().to_string()];
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn check_config_passes_on_a_good_setup() {
    let w = World::new().await;
    let config = w.write_config("");
    let out = run(args(&config, &["check-config"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("masv") && t.contains("vault") && t.contains("can write"),
        "{t}"
    );
}

#[tokio::test]
async fn check_config_on_broken_files_exits_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/invalid");
    for (file, field) in [
        ("unknown-field.toml", "vault.adress"),
        ("bad-duration.toml", "policy.max_age"),
        ("bad-cron.toml", "schedule.cron"),
        ("plain-http-vault.toml", "vault.address"),
    ] {
        // A copy: the checkout's mode (0664 under umask 002) would be refused first.
        let copy = dir.path().join(file);
        let fixture = std::fs::read_to_string(fixtures.join(file)).unwrap();
        crate::helpers::write_private(&copy, &fixture);
        let out = run(args(&copy, &["check-config"])).await;
        assert_eq!(out.status.code(), Some(2), "{file}: {}", text(&out));
        let t = text(&out);
        assert!(t.contains(file) && t.contains(field), "{file}: {t}");
    }
    let missing = dir.path().join("nope.toml");
    let out = run(args(&missing, &["check-config"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("nope.toml"));
}

#[tokio::test]
async fn check_config_missing_password_file_exits_2_naming_the_path() {
    let w = World::new().await;
    let config = w.write_config("");
    std::fs::remove_file(config.with_file_name("masv-password")).unwrap();
    let out = run(args(&config, &["check-config"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("masv.password_file") && t.contains("masv-password"),
        "{t}"
    );
}

#[tokio::test]
async fn check_config_wrong_password_exits_2_and_never_prints_it() {
    let w = World::new().await;
    let config = w.write_config_with(
        "wrong-password-123",
        &w.vault.root_token.clone(),
        &w.vault.address.clone(),
        "",
    );
    let out = run(args(&config, &["check-config"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("masv.password_file") && t.contains("rejected the login"),
        "{t}"
    );
    assert!(!t.contains("wrong-password-123"));
}

#[tokio::test]
async fn check_config_vault_down_exits_3_and_read_only_token_exits_2() {
    let w = World::new().await;
    let config = w.write_config_with(PASSWORD, &w.vault.root_token.clone(), &dead_address(), "");
    let out = run(args(&config, &["check-config"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("unreachable"), "{}", text(&out));
    let ro = w.vault.read_only_token().await;
    let config = w.write_config_with(PASSWORD, &ro, &w.vault.address.clone(), "");
    let out = run(args(&config, &["check-config"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("vault.token_file") && t.contains("permission denied"),
        "{t}"
    );
    assert!(!t.contains(&ro));
}

#[tokio::test]
async fn check_config_masv_down_exits_3() {
    let w = World::new().await;
    let config = w.write_config("");
    let text_cfg = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&w.running.base_url, &format!("{}/v1", dead_address()));
    std::fs::write(&config, text_cfg).unwrap();
    let out = run(args(&config, &["check-config"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[tokio::test]
async fn once_dry_run_prints_the_plan_and_changes_nothing() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config("");
    std::fs::remove_file(&w.db_path).ok();
    let db = w.db_path.clone();
    let fresh_db = db.with_file_name("fresh.db");
    let cfg = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&db.display().to_string(), &fresh_db.display().to_string());
    std::fs::write(&config, cfg).unwrap();
    let out = run(args(&config, &["once", "--dry-run"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("would") && t.contains("ci-build") && t.contains("adopting the lineage"),
        "{t}"
    );
    assert!(w.sim.mutations().is_empty(), "no mutating call");
    assert!(w.current("ci-build").await.is_none(), "Vault unchanged");
    assert!(!fresh_db.exists(), "no database written");
}

#[tokio::test]
async fn once_rotates_and_debug_output_and_database_hold_no_secret() {
    let w = World::new().await;
    let old = w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    w.seed("render-node", Duration::days(10), None);
    let config = w.write_config("");
    let out = run(args(&config, &["--debug", "once"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("DEBUG"), "debug logging is on: {t}");
    assert!(t.contains("result: 2 action(s) ok, 0 failed"), "{t}");
    assert_eq!(w.state(&old.id), Some(KeyState::Active));
    assert!(w.current("ci-build").await.is_some());
    // every secret the simulator ever issued (API keys, user tokens), the password, the Vault token
    let mut secrets = w.sim.issued_secrets();
    secrets.push(PASSWORD.to_string());
    secrets.push(w.vault.root_token.clone());
    assert!(secrets.len() >= 5);
    let (db, wal) = crate::helpers::database_bytes(&w.db_path);
    assert!(!db.is_empty(), "the database file is there");
    // The dev server's token "root" is a dictionary word; checked via a random one below.
    let checked: Vec<&String> = secrets.iter().filter(|s| s.as_str() != "root").collect();
    for s in &checked {
        assert!(!t.contains(s.as_str()), "a secret leaked into the output");
    }
    let checked: Vec<&[u8]> = checked.iter().map(|s| s.as_bytes()).collect();
    assert!(
        !contains_any(&db, &checked) && !contains_any(&wal, &checked),
        "a secret is in SQLite"
    );
}

#[tokio::test]
async fn debug_output_never_shows_a_random_vault_token() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let token = w
        .vault
        .token_with_policy(&format!(
            "{}\npath \"sys/capabilities-self\" {{ capabilities = [\"update\"] }}",
            w.vault.writer_policy()
        ))
        .await;
    let config = w.write_config_with(PASSWORD, &token, &w.vault.address.clone(), "");
    for cmd in [vec!["--debug", "once"], vec!["--debug", "check-config"]] {
        let out = run(args(&config, &cmd)).await;
        assert_eq!(out.status.code(), Some(0), "{cmd:?}: {}", text(&out));
        assert!(
            !text(&out).contains(&token),
            "{cmd:?} printed the Vault token"
        );
    }
}

#[tokio::test]
async fn rotate_refuses_unknown_team_and_unmanaged_name_with_exit_2() {
    let w = World::new().await;
    let config = w.write_config("");
    let out = run(args(
        &config,
        &[
            "rotate",
            "--team",
            "01NOTATEAM000000000000000X",
            "--name",
            "ci-x",
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = run(args(
        &config,
        &[
            "rotate",
            "--team",
            crate::helpers::world::TEAM,
            "--name",
            "laptop",
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("does not manage"), "{}", text(&out));
    assert!(w.sim.mutations().is_empty());
}

#[tokio::test]
async fn bad_usage_exits_2() {
    let out = run(vec!["frobnicate".into()]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = run(vec!["rotate".into(), "--team".into(), "x".into()]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn standalone_simulator_serves_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "sim-password\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .args([
            "simulate",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--password-file",
            pw.to_str().unwrap(),
            "--seed-examples",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/v1");
    let client = masv_key_rotator::masv::MasvClient::new(masv_key_rotator::masv::MasvSettings {
        base_url: base,
        email: "owner@simulator.invalid".into(),
        password: secrecy::SecretString::from("sim-password".to_string()),
        timeout: std::time::Duration::from_secs(2),
        max_concurrency: 2,
        retry: crate::helpers::world::fast_retry(),
    })
    .unwrap();
    let mut listed = None;
    for _ in 0..100 {
        if let Ok(keys) = client.list_keys("01FB4S68W7RAW4M89801H1C4CR").await {
            listed = Some(keys);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let keys = listed.expect("the simulator answered");
    assert_eq!(keys.len(), 4);
    assert_eq!(code.code(), Some(0));
}

#[tokio::test]
async fn json_logs_of_a_rotation_carry_rotation_team_and_lineage() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let config = w.write_config("");
    let json_cfg = std::fs::read_to_string(&config)
        .unwrap()
        .replace("format = \"text\"", "format = \"json\"");
    std::fs::write(&config, json_cfg).unwrap();
    let out = run(args(&config, &["once"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let rotation_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "rotate")
        .collect();
    assert!(rotation_lines.len() >= 3, "create, store, verify: {stderr}");
    let rotation_id = rotation_lines[0]["span"]["rotation_id"]
        .as_str()
        .expect("rotation_id")
        .to_string();
    for l in rotation_lines {
        assert_eq!(l["span"]["rotation_id"], rotation_id.as_str());
        assert_eq!(l["span"]["team_id"], crate::helpers::world::TEAM);
        assert_eq!(l["span"]["key_name"], "ci-build");
    }
}

#[tokio::test]
async fn a_secret_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new().await;
    let config = w.write_config("");
    let pw = config.with_file_name("masv-password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(args(&config, &["once"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("masv.password_file") && t.contains("mode 0644") && t.contains("chmod 600"),
        "{t}"
    );
    assert!(w.sim.mutations().is_empty());
}
