//! The operator surface on a known state: `status`, `history`, `report` in every format.

use std::process::Output;

use chrono::Duration;
use serde_json::Value;

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
    assert_eq!(ci["over_max_age"][0], old.as_str());
    assert!(ci["last_rotation"].is_string());

    let o = run(cfg(&config, &["report", "--format", "csv"])).await;
    let csv = out(&o);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "team_id,lineage,current_key_id,current_age_days,last_rotation,next_due,overdue,stale,suspended_keys,over_max_age,within_policy");
    assert_eq!(lines.len(), 3);
    let ci = lines
        .iter()
        .find(|l| l.contains(",ci-build,"))
        .expect("ci-build row");
    assert!(
        ci.starts_with(&format!("{TEAM},ci-build,{current},0,")),
        "{ci}"
    );
    assert!(ci.ends_with(&format!(",false,false,,{old},true")), "{ci}");
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
