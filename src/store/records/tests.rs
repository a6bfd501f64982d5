//! The record store's SQL, against a fresh database file per test.
use chrono::{Duration, TimeZone};

use super::*;
use crate::engine::key::KeyState;

fn key(id: &str, used: Option<DateTime<Utc>>) -> Key {
    Key {
        id: id.into(),
        name: format!("ci-{id}"),
        description: "by hand".into(),
        state: KeyState::Active,
        created_at: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        expiry: None,
        last_request_at: used,
    }
}

/// A record store on a fresh database file (kept while the directory lives).
async fn fresh() -> (tempfile::TempDir, Records) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    (dir, Records::new(store))
}

/// The instant the tests start from.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
}

async fn seen_at(store: &Store) -> BTreeMap<String, String> {
    sqlx::query_as::<_, (String, String)>("SELECT key_id, seen_at FROM key_snapshots")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn snapshot_writes_only_new_changed_and_gone_keys() {
    let (_dir, records) = fresh().await;
    let t1 = start();
    let (a, b, c, e) = (
        key("A", None),
        key("B", None),
        key("C", None),
        key("E", None),
    );
    records
        .snapshot_keys("T", &[&a, &b, &c, &e], t1)
        .await
        .unwrap();

    let t2 = t1 + Duration::minutes(5);
    let b_used = key("B", Some(t2));
    let d = key("D", None);
    let mut e_suspended = e.clone();
    e_suspended.state = KeyState::Suspended;
    records
        .snapshot_keys("T", &[&a, &b_used, &d, &e_suspended], t2)
        .await
        .unwrap();
    let seen = seen_at(records.store()).await;
    assert_eq!(seen["E"], ts(t2), "a key whose state changed is rewritten");
    assert_eq!(seen["A"], ts(t1), "an unchanged key is not rewritten");
    assert_eq!(seen["B"], ts(t2), "a changed key is");
    assert_eq!(seen["D"], ts(t2), "a new key is");
    assert!(
        !seen.contains_key("C"),
        "a key MASV no longer lists is dropped"
    );

    let (keys, listed) = records.snapshot("T").await.unwrap();
    assert_eq!(listed, Some(t2), "the listing time moves on every sweep");
    let ids: Vec<_> = keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, vec!["A", "B", "D", "E"]);
    assert_eq!(keys[1].last_request_at, Some(t2));
    assert_eq!(keys[3].state, KeyState::Suspended);
    assert_eq!(records.snapshot("other").await.unwrap(), (vec![], None));
}

/// Every field survives the JSON round trips of the bulk write and read;
/// teams are kept apart, and an empty list clears only its own team.
#[tokio::test]
async fn snapshot_round_trips_every_field_per_team() {
    let (_dir, records) = fresh().await;
    let t1 = start();
    let mut odd = key("A", Some(t1 - Duration::milliseconds(1500)));
    odd.description = "key \"A\", with a comma,\na newline and \\ a backslash".into();
    odd.state = KeyState::Suspended;
    odd.expiry = Some(t1 + Duration::days(27));
    let plain = key("B", None);
    let other = key("Z", None);
    records
        .snapshot_keys("T1", &[&plain, &odd], t1)
        .await
        .unwrap();
    records.snapshot_keys("T2", &[&other], t1).await.unwrap();
    let (keys, _) = records.snapshot("T1").await.unwrap();
    assert_eq!(keys, vec![odd, plain], "sorted by name, every field intact");
    records.snapshot_keys("T1", &[], t1).await.unwrap();
    assert!(records.snapshot("T1").await.unwrap().0.is_empty());
    assert_eq!(records.snapshot("T2").await.unwrap().0, vec![other]);
}

/// Retirements come back whole from their packed read, with and without the
/// optional fields: per team and lineage for planning, and in key order, only
/// the undeactivated ones, across teams for `in_flight`.
#[tokio::test]
async fn retirements_round_trip_through_the_packed_reads() {
    use crate::engine::model::RetirePhase;
    let (_dir, records) = fresh().await;
    let t1 = start();
    let retirement = |key_id: &str, team: &str, phase, rotation: Option<&str>| RetirementRecord {
        key_id: key_id.into(),
        lineage: LineageId::new(team, "ci"),
        rotation_id: rotation.map(str::to_string),
        replaced_at: t1 - Duration::days(2),
        phase,
        deactivated_at: (phase == RetirePhase::Inactive).then_some(t1 - Duration::hours(3)),
    };
    let found = retirement("K3", "T", RetirePhase::Waiting, None);
    let replaced = retirement("K2", "T", RetirePhase::Deactivating, Some("R1"));
    let inactive = retirement("K1", "T", RetirePhase::Inactive, Some("R0"));
    let deleted = retirement("K0", "T", RetirePhase::Deleted, Some("R0"));
    let other = retirement("K4", "U", RetirePhase::Waiting, Some("R9"));
    let changes = [&found, &replaced, &inactive, &deleted, &other]
        .into_iter()
        .map(|r| Change::Retirement(r.clone()))
        .collect();
    records.apply(t1, changes, vec![]).await.unwrap();

    let team = records.load_team("T", &[]).await.unwrap();
    let mut ci = team.retirements["ci"].clone();
    ci.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    assert_eq!(
        ci,
        vec![inactive, replaced.clone(), found.clone()],
        "the team's retirements but the deleted one, every field intact"
    );
    assert_eq!(
        records.in_flight().await.unwrap().undeactivated,
        vec![replaced, found, other],
        "the undeactivated ones of every team, in key order"
    );
}

/// The finished rotations a team's keys name are looked up in the team's range
/// of a covering index, not by reading each of the team's rotations ever made.
#[tokio::test]
async fn finished_rotations_are_looked_up_in_an_index_that_holds_them() {
    let (_dir, records) = fresh().await;
    let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {FINISHED_ROTATIONS_BY_ID}"))
        .bind("T1")
        .bind(r#"["R1","R2"]"#)
        .fetch_all(records.store().pool())
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get(row, "detail"))
        .collect();
    assert!(
        plan.iter()
            .any(|d| d.contains("COVERING INDEX rotations_finished_by_team")),
        "{plan:?}"
    );
}
