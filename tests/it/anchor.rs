//! The audit log's anchor in Vault (`_audit/<instance_id>`): `once` writes the
//! committed head, `history --verify` checks the log against it. Every way of
//! quietly rewriting the log that the hash chain alone cannot see (a dropped
//! tail, a chain rewritten with fresh hashes, an older copy of the database,
//! rows cut from the middle) exits 1 with words that say what is wrong; an
//! anchor that lags the log (a crash between commit and anchor write) does not.

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::Duration;
use masv_key_rotator::config::host_name;
use masv_key_rotator::store::row_hash_of;
use masv_key_rotator::vault::ObservedAnchor;

use crate::helpers::audit_entry;
use crate::helpers::bin::{self, run};
use crate::helpers::vault::dead_address;
use crate::helpers::world::{World, PASSWORD};

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn verify(config: &Path) -> Output {
    run(vec![
        "--config".into(),
        config.display().to_string(),
        "history".into(),
        "--verify".into(),
    ])
    .await
}

/// Two lineages adopted by the real `once`: 10 rows, anchored.
async fn anchored() -> (World, PathBuf) {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(100), Some(Duration::days(2)));
    w.seed("render-farm", Duration::days(3), None);
    let config = w.write_config("");
    bin::once_succeeds(&config).await;
    assert_eq!(w.audit().await.len(), 10);
    (w, config)
}

async fn anchor_of(w: &World, instance: &str) -> Option<ObservedAnchor> {
    w.vault.store().await.read_anchor(instance).await.unwrap()
}

async fn sql(w: &World, statement: &str) {
    sqlx::query(statement)
        .execute(w.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn drop_triggers(w: &World) {
    sql(w, "DROP TRIGGER audit_log_no_update").await;
    sql(w, "DROP TRIGGER audit_log_no_delete").await;
}

/// Recomputes every row's prev_hash and hash from row `from` on, as someone
/// who can write the file would after editing it.
async fn rechain(w: &World, from: i64) {
    let rows = w.audit().await;
    let mut prev = rows
        .iter()
        .find(|r| r.id == from - 1)
        .map_or(masv_key_rotator::store::audit::GENESIS.to_string(), |r| {
            r.hash.clone()
        });
    for r in rows.iter().filter(|r| r.id >= from) {
        let hash = row_hash_of(&prev, r);
        sqlx::query("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?")
            .bind(&prev)
            .bind(&hash)
            .bind(r.id)
            .execute(w.store.pool())
            .await
            .unwrap();
        prev = hash;
    }
}

#[tokio::test]
async fn once_anchors_the_committed_head_and_verify_finds_it() {
    let (w, config) = anchored().await;
    let host = host_name().unwrap();
    let rows = w.audit().await;
    let a = anchor_of(&w, &host).await.expect("anchored after once");
    assert_eq!(
        (a.anchor.id, a.anchor.count, a.anchor.hash.as_str()),
        (10, 10, rows[9].hash.as_str())
    );
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("audit log intact: 10 rows"), "{}", out(&o));
    assert!(
        out(&o).contains(&format!(
            "audit anchor matches: the log contains row 10 of {}/data/{}/_audit/{host} (version {})",
            w.vault.mount, w.vault.prefix, a.version
        )),
        "{}",
        out(&o)
    );
    // A sweep that writes nothing leaves the anchor alone.
    bin::once_succeeds(&config).await;
    assert_eq!(anchor_of(&w, &host).await.unwrap().version, a.version);
    // [ha] instance_id names the anchor: none under that name yet.
    let ha = w.write_config("\n[ha]\ninstance_id = \"node-a\"\n");
    let o = verify(&ha).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(
        out(&o).contains("no audit anchor at")
            && out(&o).contains("/_audit/node-a yet: only the local chain was checked"),
        "{}",
        out(&o)
    );
}

/// The issue's own reproduction: the newest 3 rows deleted after dropping the
/// triggers left the chain intact; the anchor sees the missing rows.
#[tokio::test]
async fn a_dropped_tail_exits_1() {
    let (w, config) = anchored().await;
    drop_triggers(&w).await;
    sql(&w, "DELETE FROM audit_log WHERE id > 7").await;
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("audit log intact: 7 rows"),
        "the chain alone passes"
    );
    assert!(
        out(&o).contains("does NOT match its anchor")
            && out(&o).contains("the log has 7 rows but its anchor records 10 (up to row 10): 3 rows are gone (a dropped tail"),
        "{}",
        out(&o)
    );
}

/// A row edited and every hash after it recomputed: the chain is intact, the
/// anchored hash is not. `once` on such a log refuses to move the anchor.
#[tokio::test]
async fn a_rewritten_chain_exits_1_and_is_not_anchored_over() {
    let (w, config) = anchored().await;
    let host = host_name().unwrap();
    let before = anchor_of(&w, &host).await.unwrap();
    drop_triggers(&w).await;
    sql(
        &w,
        "UPDATE audit_log SET detail = 'nothing happened' WHERE id = 3",
    )
    .await;
    rechain(&w, 3).await;
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("audit log intact: 10 rows"), "{}", out(&o));
    assert!(
        out(&o).contains("row 10's hash is") && out(&o).contains("the chain was rewritten"),
        "{}",
        out(&o)
    );
    // More rows on top of the rewrite: anchoring them would launder it.
    w.seed("ci-new", Duration::days(3), None);
    let o = bin::once(&config).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("does not match its anchor")
            && out(&o).contains("the anchor is left where it was"),
        "{}",
        out(&o)
    );
    assert_eq!(anchor_of(&w, &host).await.unwrap(), before);
}

/// The database replaced by a copy taken before the last sweep.
#[tokio::test]
async fn an_older_copy_of_the_database_exits_1() {
    let (w, config) = anchored().await;
    let old = w.db_path.with_file_name("old.db");
    sql(&w, &format!("VACUUM INTO '{}'", old.display())).await;
    w.seed("ci-new", Duration::days(3), None);
    bin::once_succeeds(&config).await;
    let rows = w.audit().await.len();
    assert!(rows > 10, "the second sweep wrote rows: {rows}");
    let swapped = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&w.db_path.display().to_string(), &old.display().to_string());
    crate::helpers::write_private(&config, &swapped);
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains(&format!(
            "the log has 10 rows but its anchor records {rows} (up to row {rows}): {} rows are gone",
            rows - 10
        )) && out(&o).contains("an older copy of the database"),
        "{}",
        out(&o)
    );
}

/// A row cut from the middle: as is, the chain breaks there; with the rows
/// after it renumbered and rehashed, the chain is whole and the anchor sees it.
#[tokio::test]
async fn rows_missing_in_the_middle_exit_1() {
    let (w, config) = anchored().await;
    drop_triggers(&w).await;
    sql(&w, "DELETE FROM audit_log WHERE id = 5").await;
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("audit log BROKEN at row 6: expected row 5 next: rows are missing"),
        "{}",
        out(&o)
    );
    sql(&w, "UPDATE audit_log SET id = id - 1 WHERE id > 5").await;
    rechain(&w, 5).await;
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("audit log intact: 9 rows")
            && out(&o).contains(
                "the log has 9 rows but its anchor records 10 (up to row 10): 1 rows are gone"
            )
            && out(&o).contains("rows cut out and the chain rebuilt"),
        "{}",
        out(&o)
    );
}

/// Rows committed after the last anchor (a crash before the anchor write) are
/// not a false alarm; the next `once` catches the anchor up.
#[tokio::test]
async fn an_anchor_that_lags_the_log_is_not_an_alarm() {
    let (w, config) = anchored().await;
    let host = host_name().unwrap();
    w.store
        .append_many(vec![
            audit_entry(None, "committed, then killed"),
            audit_entry(None, "before the anchor"),
        ])
        .await
        .unwrap();
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(
        out(&o).contains("audit anchor matches: the log contains row 10")
            && out(&o).contains("the 2 newer row(s) are not anchored yet"),
        "{}",
        out(&o)
    );
    bin::once_succeeds(&config).await;
    let a = anchor_of(&w, &host).await.unwrap();
    assert_eq!((a.anchor.id, a.anchor.count), (12, 12));
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(!out(&o).contains("not anchored yet"), "{}", out(&o));
}

/// Vault down: exit 3, having printed the local chain's result.
#[tokio::test]
async fn vault_unreachable_exits_3_with_the_local_result() {
    let (w, _config) = anchored().await;
    let root = w.vault.root_token.clone();
    let config = w.write_config_with(PASSWORD, &root, &dead_address(), "");
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("audit log intact: 10 rows"),
        "{}",
        out(&o)
    );
    assert!(
        out(&o).contains("unreachable") && out(&o).contains("only the local chain was checked"),
        "{}",
        out(&o)
    );
    // A broken local chain is reported as such, Vault or not.
    drop_triggers(&w).await;
    sql(&w, "UPDATE audit_log SET detail = 'x' WHERE id = 2").await;
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("BROKEN at row 2"), "{}", out(&o));
}

/// An anchor somebody wrote by hand (fields that describe no chain head) is
/// refused with exit 1, naming its path; so is a token that may not read it (2).
#[tokio::test]
async fn a_malformed_or_unreadable_anchor_is_refused() {
    let (w, config) = anchored().await;
    let host = host_name().unwrap();
    let path = format!("{}/data/{}/_audit/{host}", w.vault.mount, w.vault.prefix);
    w.vault
        .api(
            reqwest::Method::POST,
            &path,
            Some(serde_json::json!({"data": {"id": 3, "hash": "abc", "count": 3}})),
        )
        .await;
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains(&format!(
            "cannot read the audit anchor: {path}: unexpected content"
        )) && out(&o).contains("do not describe a chain head"),
        "{}",
        out(&o)
    );
    let nothing = w
        .vault
        .token_with_policy("path \"sys/*\" { capabilities = [\"deny\"] }")
        .await;
    let denied = w.write_config_with(PASSWORD, &nothing, &w.vault.address.clone(), "");
    let o = verify(&denied).await;
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("permission denied"), "{}", out(&o));
}

/// Someone else moved the anchor since this process last wrote it: the
/// check-and-set fails, the anchor is read again and written over that
/// version, once; a log that does not continue what they wrote is refused.
#[tokio::test]
async fn a_conflicting_anchor_write_is_read_again_and_judged() {
    use masv_key_rotator::anchor::{Advanced, AnchorError, Anchorer};
    let (w, _config) = anchored().await;
    let vault = w.vault.store().await;
    let anchorer = Anchorer::new(w.store.clone(), vault.clone(), "node-x".into());
    let Advanced::Moved {
        id: 10,
        version: v1,
    } = anchorer.advance().await.unwrap()
    else {
        panic!("the first anchor of node-x")
    };
    assert_eq!(anchorer.advance().await.unwrap(), Advanced::Unchanged);
    // Another writer rewrites the same head: a new version behind our back.
    let same = vault.read_anchor("node-x").await.unwrap().unwrap();
    let v2 = vault
        .write_anchor("node-x", &same.anchor, v1)
        .await
        .unwrap();
    w.store
        .append(audit_entry(None, "after the foreign write"))
        .await
        .unwrap();
    assert_eq!(
        anchorer.advance().await.unwrap(),
        Advanced::Moved {
            id: 11,
            version: v2 + 1
        }
    );
    // A foreign anchor that this log does not contain: refused, left alone.
    let mut foreign = vault.read_anchor("node-x").await.unwrap().unwrap();
    foreign.anchor.hash = "f".repeat(64);
    vault
        .write_anchor("node-x", &foreign.anchor, foreign.version)
        .await
        .unwrap();
    w.store.append(audit_entry(None, "one more")).await.unwrap();
    let e = anchorer.advance().await.unwrap_err();
    assert!(
        matches!(&e, AnchorError::Mismatch { reason, .. } if reason.contains("row 11's hash is") && reason.contains("rewritten")),
        "{e}"
    );
    assert_eq!(
        vault
            .read_anchor("node-x")
            .await
            .unwrap()
            .unwrap()
            .anchor
            .hash,
        "f".repeat(64)
    );
}

/// `run` anchors after its sweep, and a SIGTERM right after the sweep still
/// leaves the anchor at the log's head (the write is awaited before exit).
#[tokio::test]
async fn run_anchors_after_its_sweep_and_before_it_stops() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(100), Some(Duration::days(2)));
    let config = w.write_config("\n[schedule]\ncron = \"0 0 * * * *\"\n");
    let daemon = bin::Daemon::start(&config);
    // The sweep's rows: adopted (create, stage, activate, verify, promote).
    let started = std::time::Instant::now();
    while w.audit().await.len() < 5 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no sweep"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(daemon.stop().await.success());
    let rows = w.audit().await;
    let a = anchor_of(&w, &host_name().unwrap())
        .await
        .expect("anchored before exit");
    assert_eq!(
        (a.anchor.id, a.anchor.hash.as_str()),
        (rows.len() as i64, rows.last().unwrap().hash.as_str())
    );
    let o = verify(&config).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
}
