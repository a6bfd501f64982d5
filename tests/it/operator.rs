//! The operator surface on a known state: `status`, `history`, `report` in every format.

use masv_key_rotator::engine::model::DueReason;
use masv_key_rotator::engine::planner::DeactivateReason;
use std::process::Output;

use chrono::Duration;
use serde_json::Value;

use crate::helpers::audit_entry;
use crate::helpers::bin::run;
use crate::helpers::world::{World, TEAM};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Two managed lineages adopted (their old keys retiring), one unmanaged key.
async fn known_state() -> (World, std::path::PathBuf, String, String) {
    let w = World::new().await;
    let old = w.seed("ci-build", Duration::days(100), Some(Duration::days(2)));
    w.seed("render-farm", Duration::days(3), None);
    w.seed("laptop", Duration::days(3), None);
    let r = w.sweep().await;
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    let current = w.current("ci-build").await.unwrap().secret.key_id;
    let config = w.write_config("");
    (w, config, old.id, current)
}

fn cfg(config: &std::path::Path, rest: &[&str]) -> Vec<String> {
    let mut v = vec!["--config".to_string(), config.display().to_string()];
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

#[tokio::test]
async fn status_table_and_json() {
    let (_w, config, old, current) = known_state().await;
    let o = run(cfg(&config, &["status"])).await;
    assert_eq!(o.status.code(), Some(0));
    let t = out(&o);
    assert!(t.starts_with("LINEAGE"), "{t}");
    let line = |id: &str| {
        t.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} missing:\n{t}"))
            .to_string()
    };
    assert!(line(&current).contains("current") && line(&current).contains("rotate"));
    assert!(line(&old).contains("retiring") && line(&old).contains("deactivate"));
    // Why, in the plan lines' words.
    assert!(
        line(&current).ends_with("the current key is within rotate_before_expiry")
            || line(&current).ends_with("the current key is older than max_age"),
        "{t}"
    );
    assert!(
        line(&old).ends_with(DeactivateReason::GraceAndIdle.words())
            || line(&old).ends_with(DeactivateReason::MaxOverlap.words()),
        "{t}"
    );
    assert!(
        t.lines().next().unwrap().ends_with("WHEN             WHY"),
        "{t}"
    );
    assert!(line(&old).contains("100d"), "age shown");
    assert!(!t.contains("laptop"), "unmanaged keys are not listed");

    let o = run(cfg(&config, &["status", "--json"])).await;
    let keys: Vec<Value> = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(keys.len(), 4, "2 lineages x (old + new)");
    let cur = keys
        .iter()
        .find(|k| k["key_id"] == current.as_str())
        .unwrap();
    assert_eq!(cur["role"], "current");
    assert_eq!(cur["state"], "active");
    assert_eq!(cur["next_action"], "rotate");
    assert!(cur["next_at"].is_string());
    let retiring = keys.iter().find(|k| k["key_id"] == old.as_str()).unwrap();
    assert_eq!(retiring["next_action"], "deactivate");
    assert_eq!(
        retiring["why"],
        DeactivateReason::GraceAndIdle.words(),
        "the same words in JSON"
    );
    assert_eq!(retiring["team_id"], TEAM);
}

#[tokio::test]
async fn history_table_json_filters_and_verify() {
    let (w, config, _old, current) = known_state().await;
    let o = run(cfg(&config, &["history"])).await;
    let t = out(&o);
    assert_eq!(
        t.lines().count(),
        1 + 10,
        "header + 2 lineages x create/stage/activate/verify/promote:\n{t}"
    );
    assert!(t.contains("create") && t.contains("verify") && t.contains("ci-build"));
    let o = run(cfg(&config, &["history", "--json", "--key", &current])).await;
    let rows: Vec<Value> = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows
        .iter()
        .all(|r| r["key_id"] == current.as_str() && r["hash"].as_str().unwrap().len() == 64));
    let o = run(cfg(&config, &["history", "--json", "--since", "1h"])).await;
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&out(&o)).unwrap().len(),
        10
    );
    let o = run(cfg(&config, &["history", "--verify"])).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("intact: 10 rows"), "{}", out(&o));
    // tamper with row 3, bypassing the trigger
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(w.store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET detail = 'nothing happened' WHERE id = 3")
        .execute(w.store.pool())
        .await
        .unwrap();
    let o = run(cfg(&config, &["history", "--verify"])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("BROKEN at row 3"), "{}", out(&o));
}

/// `history --follow` as a child: its stdout collected line by line.
struct Follower {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Follower {
    fn start(config: &std::path::Path, rest: &[&str]) -> Follower {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
            .env_remove("MASV_KEY_ROTATOR_CONFIG")
            .args(cfg(config, rest))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        Follower { child, lines }
    }

    /// Waits (up to 10 s) until `n` lines have come; all of them.
    async fn lines(&self, n: usize) -> Vec<String> {
        let started = std::time::Instant::now();
        loop {
            let got = self.lines.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{} of {n} lines: {got:#?}",
                got.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 10 s) for the process to end on its own; its exit code.
    async fn exited(mut self) -> Option<i32> {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "still running"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn terminate(self) -> Option<i32> {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        self.exited().await
    }
}

/// `--json --follow`: the rows there, then each new row as one JSON line, with
/// `--key` applied to new rows too; the table form follows as well; SIGTERM
/// ends it with exit 0.
#[tokio::test]
async fn history_follow_streams_new_rows_as_json_lines_until_sigterm() {
    let (w, config, old, current) = known_state().await;
    let all = Follower::start(&config, &["history", "--json", "--follow"]);
    let by_key = Follower::start(&config, &["history", "--json", "--follow", "--key", &old]);
    let table = Follower::start(&config, &["history", "--follow"]);
    assert_eq!(all.lines(10).await.len(), 10, "the rows already there");
    table.lines(11).await;
    w.store
        .append(audit_entry(
            Some(&old),
            "a line with \"quotes\"\nand a newline",
        ))
        .await
        .unwrap();
    w.store
        .append(audit_entry(Some(&current), "second"))
        .await
        .unwrap();
    let lines = all.lines(12).await;
    let rows: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
    assert_eq!(rows[10]["detail"], "a line with \"quotes\"\nand a newline");
    assert_eq!(rows[11]["key_id"], current.as_str());
    assert!(rows.iter().all(|r| r["hash"].as_str().unwrap().len() == 64));
    let keyed = by_key.lines(1).await;
    assert_eq!(keyed.len(), 1, "only the new row about {old}: {keyed:?}");
    assert!(keyed[0].contains(&old) && !keyed[0].contains("second"));
    let t = table.lines(13).await;
    assert!(
        t[0].starts_with("    ID") && t[12].contains("second"),
        "{t:#?}"
    );
    for f in [all, by_key, table] {
        assert_eq!(f.terminate().await, Some(0));
    }
}

/// A follower whose reader has gone (a closed pipe) stops at its next write,
/// exit 0, rather than following for nobody.
#[tokio::test]
async fn history_follow_ends_when_its_reader_goes_away() {
    let (w, config, _old, _current) = known_state().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
        .env_remove("MASV_KEY_ROTATOR_CONFIG")
        .args(cfg(
            &config,
            &["history", "--json", "--follow", "--key", "none"],
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let follower = Follower {
        child,
        lines: Default::default(),
    };
    // Nothing matches `--key none` until this row: the write of it (whether the
    // follower reads it first or later) finds the pipe closed.
    w.store
        .append(audit_entry(Some("none"), "nobody reads this"))
        .await
        .unwrap();
    assert_eq!(follower.exited().await, Some(0));
}

#[tokio::test]
async fn report_markdown_json_csv() {
    let (_w, config, old, current) = known_state().await;
    let o = run(cfg(&config, &["report"])).await;
    let md = out(&o);
    assert!(md.contains("# MASV API key rotation report"));
    assert!(md.contains("- Managed lineages: 2"));
    assert!(md.contains("- Within policy: 2 of 2 (100.0 %)"), "{md}");
    assert!(
        md.contains(&format!("| {TEAM} | ci-build | {current} | 0 |")),
        "{md}"
    );
    assert!(
        md.contains("Active keys older than `max_age`: 1"),
        "the 100-day-old key still retiring: {md}"
    );

    let o = run(cfg(&config, &["report", "--format", "json"])).await;
    let j: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(j["summary"]["lineages"], 2);
    assert_eq!(j["summary"]["within_policy_percent"], 100.0);
    let ci = j["lineages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lineage"] == "ci-build")
        .unwrap();
    assert_eq!(ci["current_key_id"], current.as_str());
    // Why it falls due, in the words of status and the plan lines.
    let reason = ci["due_because"].as_str().unwrap().to_string();
    assert!(
        reason == DueReason::Expiring.words() || reason == DueReason::MaxAge.words(),
        "{reason}"
    );
    assert!(md.contains(&format!(" | {reason} | ")), "{md}");
    assert_eq!(ci["over_max_age"][0], old.as_str());
    assert!(ci["last_rotation"].is_string());

    let o = run(cfg(&config, &["report", "--format", "csv"])).await;
    let csv = out(&o);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "team_id,lineage,current_key_id,current_age_days,last_rotation,next_due,overdue,stale,suspended_keys,over_max_age,within_policy,due_because");
    assert_eq!(lines.len(), 3);
    let row = lines
        .iter()
        .find(|l| l.contains(",ci-build,"))
        .expect("ci-build row");
    assert!(
        row.starts_with(&format!("{TEAM},ci-build,{current},0,")),
        "{row}"
    );
    assert!(
        row.ends_with(&format!(",false,false,,{old},true,{reason}")),
        "{row}"
    );
    let o = run(cfg(&config, &["report", "--format", "xml"])).await;
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test]
async fn status_before_any_sweep_says_so() {
    let w = World::new().await;
    std::fs::remove_file(&w.db_path).ok();
    let config = w.write_config("");
    let cfg_text = std::fs::read_to_string(&config).unwrap().replace(
        &w.db_path.display().to_string(),
        &w.db_path.with_file_name("never.db").display().to_string(),
    );
    std::fs::write(&config, cfg_text).unwrap();
    let o = run(cfg(&config, &["status"])).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("no managed keys recorded yet"));
    assert!(
        !w.db_path.with_file_name("never.db").exists(),
        "status creates nothing"
    );
}
