//! The state database and its audit log: migrations, WAL, append-only, tamper evidence.

use chrono::{Duration, TimeZone, Utc};
use masv_key_rotator::store::{
    AuditAction, AuditFilter, ChainReport, NewAuditEntry, Outcome, Store, StoreError,
};
use proptest::prelude::*;
use sqlx::Row;

fn entry(i: i64, detail: &str) -> NewAuditEntry {
    NewAuditEntry {
        at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(i),
        team_id: Some("T1".into()),
        key_id: Some(format!("K{}", i % 3)),
        key_name: Some("ci-build".into()),
        action: AuditAction::ALL[(i as usize) % AuditAction::ALL.len()],
        outcome: if i % 4 == 0 {
            Outcome::Failed
        } else {
            Outcome::Ok
        },
        detail: detail.into(),
        rotation_id: (i % 2 == 0).then(|| format!("R{i}")),
        lease_token: (i % 3 == 0).then_some(40 + i),
    }
}

async fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    (dir, store)
}

async fn exec(store: &Store, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(store.pool()).await.map(|_| ())
}

/// A database made by the release before the team-ordered tables keeps every
/// row of the three tables it rebuilds, and key ids stay unique on their own.
#[tokio::test]
async fn an_older_database_keeps_its_rows_when_tables_move_to_team_order() {
    const TEAM_ORDER: &str = "20261204100000_tables_in_team_order.sql";
    let dir = tempfile::tempdir().unwrap();
    let older = dir.path().join("older-migrations");
    std::fs::create_dir(&older).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut copied = 0;
    for f in std::fs::read_dir(&all).unwrap() {
        let f = f.unwrap();
        if f.file_name() != TEAM_ORDER {
            std::fs::copy(f.path(), older.join(f.file_name())).unwrap();
            copied += 1;
        }
    }
    assert!(all.join(TEAM_ORDER).is_file() && copied >= 7);
    let path = dir.path().join("state.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(older.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let rows = [
        "INSERT INTO key_snapshots VALUES ('K2', 'T2', 'render-b', 'd2', 'inactive', '2026-01-01T00:00:00.000Z', NULL, NULL, '2026-01-02T00:00:00.000Z')",
        "INSERT INTO key_snapshots VALUES ('K1', 'T1', 'render-a', 'd1', 'active', NULL, '2026-03-01T00:00:00.000Z', '2026-01-03T00:00:00.000Z', '2026-01-02T00:00:00.000Z')",
        "INSERT INTO retirements VALUES ('K3', 'T1', 'render-a', 'R1', '2026-01-01T00:00:00.000Z', 'waiting', NULL, '2026-01-01T00:00:00.000Z')",
        "INSERT INTO retirements VALUES ('K4', 'T2', 'render-b', NULL, '2026-01-01T00:00:00.000Z', 'deleted', '2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z')",
        "INSERT INTO verified_keys VALUES ('K1', 'T1', 'render-a', '2026-01-01T00:00:00.000Z')",
        "INSERT INTO verified_keys VALUES ('K2', 'T2', 'render-b', '2026-01-01T00:00:00.000Z')",
    ];
    for sql in rows {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    const DUMP: [&str; 3] = [
        "SELECT json_group_array(json_array(key_id, team_id, key_name, description, state, created_at, expiry, last_request_at, seen_at) ORDER BY key_id) FROM key_snapshots",
        "SELECT json_group_array(json_array(key_id, team_id, key_name, rotation_id, replaced_at, phase, deactivated_at, updated_at) ORDER BY key_id) FROM retirements",
        "SELECT json_group_array(json_array(key_id, team_id, key_name, verified_at) ORDER BY key_id) FROM verified_keys",
    ];
    let mut before = vec![];
    for sql in DUMP {
        before.push(
            sqlx::query_scalar::<_, String>(sql)
                .fetch_one(&pool)
                .await
                .unwrap(),
        );
    }
    pool.close().await;

    let store = Store::open(&path).await.unwrap();
    for (sql, before) in DUMP.iter().zip(&before) {
        let after: String = sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(&after, before, "{sql}");
    }
    assert!(
        before[0].contains("render-a") && before[1].contains("R1"),
        "{before:?}"
    );
    for (table, again) in [
        ("key_snapshots", "INSERT INTO key_snapshots VALUES ('K1', 'T9', 'x', '', 'active', NULL, NULL, NULL, 'now')"),
        ("retirements", "INSERT INTO retirements VALUES ('K3', 'T9', 'x', NULL, 'now', 'waiting', NULL, 'now')"),
        ("verified_keys", "INSERT INTO verified_keys VALUES ('K2', 'T9', 'x', 'now')"),
    ] {
        let err = exec(&store, again).await.unwrap_err().to_string();
        assert!(err.contains("UNIQUE"), "{table}: a key id twice, in another team: {err}");
    }
    store.integrity_check().await.unwrap();
}

#[tokio::test]
async fn fresh_file_migrates_in_wal_mode_and_reopens() {
    let (dir, store) = fresh().await;
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode, "wal");
    let tables: Vec<String> =
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    for t in [
        "audit_log",
        "rotations",
        "retirements",
        "lineages",
        "verified_keys",
        "key_snapshots",
    ] {
        assert!(
            tables.iter().any(|x| x == t),
            "missing table {t}: {tables:?}"
        );
    }
    store.append(entry(1, "first")).await.unwrap();
    drop(store);
    let again = Store::open(&dir.path().join("state.db")).await.unwrap();
    assert_eq!(
        again.verify_chain().await.unwrap(),
        ChainReport::Intact { rows: 1 }
    );
    again.integrity_check().await.unwrap();
}

#[tokio::test]
async fn update_and_delete_are_refused_by_the_database() {
    let (_dir, store) = fresh().await;
    store.append(entry(1, "x")).await.unwrap();
    let upd = exec(&store, "UPDATE audit_log SET detail = 'y'")
        .await
        .unwrap_err();
    assert!(
        upd.to_string().contains("audit_log is append-only"),
        "{upd}"
    );
    let del = exec(&store, "DELETE FROM audit_log").await.unwrap_err();
    assert!(
        del.to_string().contains("audit_log is append-only"),
        "{del}"
    );
    assert_eq!(
        store.audit(&AuditFilter::default()).await.unwrap()[0].detail,
        "x"
    );
}

#[tokio::test]
async fn chain_intact_then_an_edited_row_is_named() {
    let (_dir, store) = fresh().await;
    for i in 1..=5 {
        store.append(entry(i, &format!("row {i}"))).await.unwrap();
    }
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainReport::Intact { rows: 5 }
    );
    exec(&store, "DROP TRIGGER audit_log_no_update")
        .await
        .unwrap();
    exec(
        &store,
        "UPDATE audit_log SET detail = 'nothing to see' WHERE id = 3",
    )
    .await
    .unwrap();
    match store.verify_chain().await.unwrap() {
        ChainReport::Broken {
            first_bad_id,
            reason,
        } => {
            assert_eq!(first_bad_id, 3);
            assert!(reason.contains("altered"), "{reason}");
        }
        other => panic!("tampering not found: {other:?}"),
    }
}

#[tokio::test]
async fn a_changed_or_removed_fencing_token_is_named() {
    // Rows 3 and 6 carry a token (entry gives one to every third row).
    for (sql, bad) in [
        ("UPDATE audit_log SET lease_token = 99 WHERE id = 3", 3),
        ("UPDATE audit_log SET lease_token = NULL WHERE id = 6", 6),
        ("UPDATE audit_log SET lease_token = 7 WHERE id = 4", 4),
    ] {
        let (_dir, store) = fresh().await;
        for i in 1..=6 {
            store.append(entry(i, &format!("row {i}"))).await.unwrap();
        }
        let rows = store.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(rows[2].lease_token, Some(43));
        assert_eq!(rows[3].lease_token, None);
        exec(&store, "DROP TRIGGER audit_log_no_update")
            .await
            .unwrap();
        exec(&store, sql).await.unwrap();
        match store.verify_chain().await.unwrap() {
            ChainReport::Broken { first_bad_id, .. } => assert_eq!(first_bad_id, bad, "{sql}"),
            other => panic!("{sql}: not found: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_deleted_middle_row_is_found() {
    let (_dir, store) = fresh().await;
    for i in 1..=5 {
        store.append(entry(i, "r")).await.unwrap();
    }
    exec(&store, "DROP TRIGGER audit_log_no_delete")
        .await
        .unwrap();
    exec(&store, "DELETE FROM audit_log WHERE id = 2")
        .await
        .unwrap();
    match store.verify_chain().await.unwrap() {
        ChainReport::Broken { first_bad_id, .. } => assert_eq!(first_bad_id, 3),
        other => panic!("deletion not found: {other:?}"),
    }
}

#[tokio::test]
async fn a_rehashed_row_breaks_the_link_to_the_next() {
    let (_dir, store) = fresh().await;
    for i in 1..=4 {
        store.append(entry(i, "r")).await.unwrap();
    }
    // A careful forger edits row 2 and recomputes its own hash...
    let row = store
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .remove(1);
    let forged = masv_key_rotator::store::audit::row_hash(
        &row.prev_hash,
        row.id,
        &row.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        row.team_id.as_deref(),
        row.key_id.as_deref(),
        row.key_name.as_deref(),
        row.action.as_str(),
        row.outcome.as_str(),
        "forged",
        row.rotation_id.as_deref(),
        row.lease_token,
    );
    exec(&store, "DROP TRIGGER audit_log_no_update")
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET detail = 'forged', hash = ? WHERE id = 2")
        .bind(&forged)
        .execute(store.pool())
        .await
        .unwrap();
    // ...but row 3 still points at the old hash.
    match store.verify_chain().await.unwrap() {
        ChainReport::Broken {
            first_bad_id,
            reason,
        } => {
            assert_eq!(first_bad_id, 3);
            assert!(reason.contains("prev_hash"), "{reason}");
        }
        other => panic!("forgery not found: {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_appends_keep_one_chain() {
    let (_dir, store) = fresh().await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                s.append(entry(t * 10 + i, "c")).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainReport::Intact { rows: 80 }
    );
}

/// Group commit: concurrent writers share transactions, yet a writer that fails
/// takes none of its rows and none of anyone else's with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_in_a_shared_commit_loses_only_its_own_rows() {
    let (_dir, store) = fresh().await;
    let mut tasks = Vec::new();
    for i in 0..60i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 7 == 3 {
                s.write(move |mut tx| {
                    Box::pin(async move {
                        Store::append_on(&mut tx, entry(i, "doomed")).await?;
                        Err::<(), _>(StoreError::Conflict {
                            what: format!("writer {i}"),
                        })
                    })
                })
                .await
                .map(|_| ())
            } else {
                s.append(entry(i, "kept")).await.map(|_| ())
            }
        }));
    }
    let mut failed = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failed.push(e.to_string());
        }
    }
    assert_eq!(failed.len(), 9, "{failed:?}");
    assert!(
        failed.iter().all(|e| e.starts_with("conflict: writer")),
        "{failed:?}"
    );
    let rows = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 51);
    assert!(rows.iter().all(|r| r.detail == "kept"));
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainReport::Intact { rows: 51 }
    );
}

#[tokio::test]
async fn missing_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("state.db");
    let err = Store::open(&path).await.err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains("no-such-dir"), "{msg}");
    assert!(
        !path.parent().unwrap().exists(),
        "the directory must not be created"
    );
}

#[tokio::test]
async fn read_only_store_refuses_writes() {
    let (dir, store) = fresh().await;
    store.append(entry(1, "x")).await.unwrap();
    let ro = Store::open_read_only(&dir.path().join("state.db"))
        .await
        .unwrap();
    assert_eq!(ro.audit(&AuditFilter::default()).await.unwrap().len(), 1);
    assert!(ro.append(entry(2, "y")).await.is_err());
    assert!(Store::open_read_only(&dir.path().join("absent.db"))
        .await
        .is_err());
}

#[tokio::test]
async fn filters_by_key_since_rotation_and_limit() {
    let (_dir, store) = fresh().await;
    let rows = store
        .append_many((1..=9).map(|i| entry(i, "f")).collect())
        .await
        .unwrap();
    assert_eq!(rows.len(), 9);
    let by_key = store
        .audit(&AuditFilter {
            key_id: Some("K1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_key.iter().all(|r| r.key_id.as_deref() == Some("K1")) && by_key.len() == 3);
    let since = Utc.with_ymd_and_hms(2026, 1, 1, 0, 7, 0).unwrap();
    let recent = store
        .audit(&AuditFilter {
            since: Some(since),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        recent.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    let by_rot = store
        .audit(&AuditFilter {
            rotation_id: Some("R4".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_rot.len(), 1);
    let limited = store
        .audit(&AuditFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Any details verify; changing any one field of any row is detected at that row.
    #[test]
    fn any_content_chains_and_any_edit_is_found(
        details in proptest::collection::vec(".{0,40}", 1..8),
        victim in any::<prop::sample::Index>(),
        column in 0usize..7,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (_dir, store) = fresh().await;
            for (i, d) in details.iter().enumerate() {
                store.append(entry(i as i64 + 1, d)).await.unwrap();
            }
            prop_assert_eq!(store.verify_chain().await.unwrap(), ChainReport::Intact { rows: details.len() as u64 });
            let id = victim.index(details.len()) as i64 + 1;
            let (col, mut value) = [
                ("at", "2030-01-01T00:00:00.000Z"),
                ("team_id", "T9"),
                ("key_id", "K9"),
                ("key_name", "other"),
                ("action", "delete_everything"),
                ("outcome", "ok"),
                ("detail", "\u{1F600} edited\n"),
            ][column];
            exec(&store, "DROP TRIGGER audit_log_no_update").await.unwrap();
            let current: Option<String> = sqlx::query(&format!("SELECT {col} FROM audit_log WHERE id = ?"))
                .bind(id).fetch_one(store.pool()).await.unwrap().get(0);
            if col == "outcome" && current.as_deref() == Some("ok") {
                value = "failed"; // the CHECK constraint allows only these two
            }
            prop_assume!(current.as_deref() != Some(value));
            sqlx::query(&format!("UPDATE audit_log SET {col} = ? WHERE id = ?"))
                .bind(value).bind(id).execute(store.pool()).await.unwrap();
            match store.verify_chain().await.unwrap() {
                ChainReport::Broken { first_bad_id, .. } => prop_assert_eq!(first_bad_id, id),
                other => prop_assert!(false, "edit of {} in row {} not found: {:?}", col, id, other),
            }
            Ok(())
        })?;
    }
}

/// A sweep reads finished rotations only for the rotation ids its listed keys
/// carry in their markers (the ones the planner asks about), however long the
/// history; open rotations always.
#[tokio::test]
async fn load_team_reads_finished_rotations_named_by_listed_keys() {
    use masv_key_rotator::engine::marker;
    use masv_key_rotator::engine::model::{DueReason, RotationPhase, RotationRecord};
    use masv_key_rotator::engine::records::Change;
    use masv_key_rotator::engine::LineageId;
    use masv_key_rotator::masv::{ApiKey, KeyState};
    use masv_key_rotator::store::Records;

    let (_dir, store) = fresh().await;
    let records = Records::new(store);
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let rotation = |rid: &str, name: &str| RotationRecord {
        rotation_id: rid.into(),
        lineage: LineageId::new("T1", name),
        reason: DueReason::Adoption,
        old_key_id: None,
        new_key_id: None,
        phase: RotationPhase::Creating,
        cas: 0,
        vault_version: None,
        started_at: t0,
        stored_at: None,
        last_error: None,
    };
    let finish = |rid: &str, phase: RotationPhase| Change::Rotation {
        rotation_id: rid.into(),
        phase,
        new_key_id: None,
        vault_version: None,
        stored_at: None,
        error: None,
    };
    // a: one verified and one rolled back rotation, both named by keys, and
    // an old verified one no key names; b: one in flight.
    for (rid, name, end) in [
        ("R-old", "a", Some(RotationPhase::Verified)),
        ("R-ok", "a", Some(RotationPhase::Verified)),
        ("R-back", "a", Some(RotationPhase::RolledBack)),
        ("R-open", "b", None),
    ] {
        records
            .apply(
                chrono::Utc::now(),
                vec![Change::StartRotation(rotation(rid, name))],
                vec![],
            )
            .await
            .unwrap();
        if let Some(phase) = end {
            records
                .apply(chrono::Utc::now(), vec![finish(rid, phase)], vec![])
                .await
                .unwrap();
        }
    }
    let key = |id: &str, name: &str, rid: Option<&str>| ApiKey {
        id: id.into(),
        name: name.into(),
        description: rid.map(marker::description).unwrap_or_default(),
        state: KeyState::Inactive,
        created_at: Some(t0),
        updated_at: None,
        expiry: None,
        last_request_at: None,
    };
    let keys = [
        key("K1", "a", Some("R-ok")),
        key("K2", "a", Some("R-back")),
        key("K3", "a", None),
        key("K4", "a", Some("R-elsewhere")),
    ]
    .map(masv_key_rotator::engine::key::Key::from);
    let recs = records
        .load_team("T1", &keys.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    let mut known: Vec<&str> = recs.known["a"].iter().map(String::as_str).collect();
    known.sort();
    assert_eq!(known, ["R-back", "R-ok"], "R-old is named by no key");
    assert_eq!(
        recs.rolled_back["a"].iter().collect::<Vec<_>>(),
        [&"R-back".to_string()]
    );
    assert_eq!(recs.open["b"].rotation_id, "R-open");
    assert!(recs.known["b"].contains("R-open"));
    // With no keys listed, only the open rotation is read.
    let recs = records.load_team("T1", &[]).await.unwrap();
    assert!(!recs.known.contains_key("a"));
    assert!(recs.open.contains_key("b"));
}
