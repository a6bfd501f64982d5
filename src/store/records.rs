//! The engine's record store in SQLite (migration `*_rotation_state.sql`): the
//! SQL behind [`RecordStore`], and the reads `status`, `report` and the tests
//! make of the same tables.
//!
//! Every write that accompanies an external call goes through [`Records::apply`]:
//! the state change and its audit row commit in one transaction, so the audit
//! log and the state machine can never disagree about what happened.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::engine::key::Key;
use crate::engine::marker;
use crate::engine::model::{
    DueReason, LineageId, RetirePhase, RetirementRecord, RotationPhase, RotationRecord, VaultView,
};
use crate::engine::ports::{RecordError, RecordStore};
use crate::engine::records::{Change, TeamRecords};
use crate::store::{NewAuditEntry, Store, StoreError};

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            reason: format!("bad timestamp {s:?}: {e}"),
        })
}

fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.as_deref().map(parse_ts).transpose()
}

fn corrupt(e: String) -> StoreError {
    StoreError::Corrupt { reason: e }
}

fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

/// Runs a query that selects one JSON array (`json_group_array(...)`) with
/// `binds` bound in order, and decodes it.
///
/// sqlx hands SQLite rows from its worker thread over one message (and one
/// thread wake-up) per row; reading the lineages, verified keys and snapshot of
/// 10,000 keys that way was most of a steady sweep's time. Aggregated in SQLite,
/// a table arrives as one row.
async fn fetch_packed<T: serde::de::DeserializeOwned>(
    pool: &sqlx::SqlitePool,
    op: &'static str,
    sql: &str,
    binds: &[&str],
) -> Result<Vec<T>, StoreError> {
    let mut query = sqlx::query_scalar(sql);
    for b in binds {
        query = query.bind(*b);
    }
    let json: String = query.fetch_one(pool).await.map_err(query_err(op))?;
    serde_json::from_str(&json).map_err(|e| corrupt(format!("{op}: {e}")))
}

/// A `key_snapshots` row as [`Records::snapshot_keys`] reads it: id, name,
/// description, state, created, expiry, last request.
#[derive(serde::Deserialize)]
struct PackedSnapshot(
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl PackedSnapshot {
    fn into_key(self) -> Result<Key, StoreError> {
        let PackedSnapshot(id, name, description, state, created_at, expiry, last_request_at) =
            self;
        Ok(Key {
            state: serde_json::from_value(serde_json::Value::String(state.clone()))
                .map_err(|_| corrupt(format!("bad key state {state:?}")))?,
            id,
            name,
            description,
            created_at: parse_opt_ts(created_at)?,
            expiry: parse_opt_ts(expiry)?,
            last_request_at: parse_opt_ts(last_request_at)?,
        })
    }
}

/// The engine's handle on the database.
#[derive(Clone)]
pub struct Records {
    store: Store,
}

impl Records {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Applies state changes and appends their audit rows, atomically.
    pub async fn apply(
        &self,
        at: DateTime<Utc>,
        changes: Vec<Change>,
        audit: Vec<NewAuditEntry>,
    ) -> Result<(), StoreError> {
        self.store
            .write(move |mut tx| {
                Box::pin(async move {
                    for change in &changes {
                        apply_one(tx.conn, change, at).await?;
                    }
                    for entry in audit {
                        Store::append_on(&mut tx, entry).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Loads a team's records for planning `keys` (its managed keys as listed).
    ///
    /// Finished rotations are read only for the rotation ids that `keys` carry
    /// in their markers: those are the only ones the planner asks about (is the
    /// marked key an orphan?), and the history grows with every rotation while
    /// the keys do not.
    pub async fn load_team(&self, team_id: &str, keys: &[&Key]) -> Result<TeamRecords, StoreError> {
        let pool = self.store.pool();
        let mut out = TeamRecords::default();
        // Unfinished rotations in full (a handful; the partial index finds them).
        let rows = sqlx::query(
            "SELECT * FROM rotations WHERE team_id = ? AND phase NOT IN ('verified', 'rolled_back', 'abandoned')",
        )
        .bind(team_id)
        .fetch_all(pool)
        .await
        .map_err(query_err("load open rotations"))?;
        for row in rows {
            let r = rotation_from_row(&row)?;
            let name = r.lineage.name.clone();
            out.known
                .entry(name.clone())
                .or_default()
                .insert(r.rotation_id.clone());
            out.open.insert(name, r);
        }
        // Finished ones that a listed key names: which lineage they belong to
        // and whether they rolled back.
        let marked: Vec<&str> = keys
            .iter()
            .filter_map(|k| marker::rotation_id(&k.description))
            .collect();
        let marked = serde_json::to_string(&marked).map_err(|e| corrupt(e.to_string()))?;
        let finished: Vec<(String, String, String)> = fetch_packed(
            pool,
            "load finished rotations",
            "SELECT json_group_array(json_array(key_name, rotation_id, phase)) FROM rotations WHERE team_id = ? AND phase IN ('verified', 'rolled_back', 'abandoned') AND rotation_id IN (SELECT value FROM json_each(?))",
            &[team_id, &marked],
        )
        .await?;
        for (name, rotation_id, phase) in finished {
            if phase == RotationPhase::RolledBack.as_str() {
                out.rolled_back
                    .entry(name.clone())
                    .or_default()
                    .insert(rotation_id.clone());
            }
            out.known.entry(name).or_default().insert(rotation_id);
        }
        let rows =
            sqlx::query("SELECT * FROM retirements WHERE team_id = ? AND phase != 'deleted'")
                .bind(team_id)
                .fetch_all(pool)
                .await
                .map_err(query_err("load retirements"))?;
        for row in rows {
            let r = retirement_from_row(&row)?;
            out.retirements
                .entry(r.lineage.name.clone())
                .or_default()
                .push(r);
        }
        let lineages: Vec<(String, Option<String>, i64)> = fetch_packed(
            pool,
            "load lineages",
            "SELECT json_group_array(json_array(key_name, vault_key_id, vault_version)) FROM lineages WHERE team_id = ?",
            &[team_id],
        )
        .await?;
        for (name, key_id, version) in lineages {
            out.vault.insert(
                name,
                key_id.map(|key_id| VaultView {
                    key_id,
                    version: version as u64,
                }),
            );
        }
        let verified: HashSet<String> = fetch_packed(
            pool,
            "load verified keys",
            "SELECT json_group_array(key_id) FROM verified_keys WHERE team_id = ?",
            &[team_id],
        )
        .await?
        .into_iter()
        .collect();
        out.verified = std::sync::Arc::new(verified);
        Ok(out)
    }

    /// One rotation by id.
    pub async fn rotation(&self, rotation_id: &str) -> Result<Option<RotationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM rotations WHERE rotation_id = ?")
            .bind(rotation_id)
            .fetch_optional(self.store.pool())
            .await
            .map_err(query_err("load rotation"))?;
        row.as_ref().map(rotation_from_row).transpose()
    }

    /// Every rotation, newest first (for status and report).
    pub async fn rotations(&self) -> Result<Vec<RotationRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM rotations ORDER BY started_at DESC")
            .fetch_all(self.store.pool())
            .await
            .map_err(query_err("list rotations"))?;
        rows.iter().map(rotation_from_row).collect()
    }

    /// When each lineage of a team last completed a rotation.
    pub async fn last_rotations(
        &self,
        team_id: &str,
    ) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_name, MAX(finished_at) AS at FROM rotations WHERE team_id = ? AND phase = 'verified' GROUP BY key_name",
        )
        .bind(team_id)
        .fetch_all(self.store.pool())
        .await
        .map_err(query_err("read the last rotations"))?;
        let mut out = BTreeMap::new();
        for row in rows {
            if let Some(at) = parse_opt_ts(row.get("at"))? {
                out.insert(row.get("key_name"), at);
            }
        }
        Ok(out)
    }

    /// The team's snapshot rows, in no particular order.
    async fn read_snapshot(&self, team_id: &str) -> Result<Vec<Key>, StoreError> {
        let rows: Vec<PackedSnapshot> = fetch_packed(
            self.store.pool(),
            "read the key snapshot",
            "SELECT json_group_array(json_array(key_id, key_name, description, state, created_at, expiry, last_request_at)) FROM key_snapshots WHERE team_id = ?",
            &[team_id],
        )
        .await?;
        rows.into_iter().map(PackedSnapshot::into_key).collect()
    }

    /// The team's managed keys as last listed, and when they were listed.
    pub async fn snapshot(
        &self,
        team_id: &str,
    ) -> Result<(Vec<Key>, Option<DateTime<Utc>>), StoreError> {
        let mut keys = self.read_snapshot(team_id).await?;
        keys.sort_by(|a, b| (&a.name, a.created_at).cmp(&(&b.name, b.created_at)));
        let listed: Option<String> =
            sqlx::query_scalar("SELECT listed_at FROM team_listings WHERE team_id = ?")
                .bind(team_id)
                .fetch_optional(self.store.pool())
                .await
                .map_err(query_err("read the listing time"))?;
        let listed = listed.as_deref().map(parse_ts).transpose()?;
        Ok((keys, listed))
    }

    /// Brings a team's key snapshot in step with the latest list (managed keys
    /// only), writing only the keys that are new, changed or gone: a steady sweep
    /// of thousands of unchanged keys writes one row.
    pub async fn snapshot_keys(
        &self,
        team_id: &str,
        keys: &[&Key],
        listed_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut before: HashMap<String, Key> = self
            .read_snapshot(team_id)
            .await?
            .into_iter()
            .map(|k| (k.id.clone(), k))
            .collect();
        let upserts: Vec<&Key> = keys
            .iter()
            .copied()
            .filter(|k| {
                !before
                    .remove(&k.id)
                    .is_some_and(|old| same_snapshot(&old, k))
            })
            .collect();
        let gone: Vec<String> = before.into_keys().collect();
        // One statement each for all removed and all new or changed keys (a JSON
        // array bound once): a row per statement cost a worker round trip per
        // key, and keys in use change their last_request_at every sweep.
        let gone = serde_json::to_string(&gone).map_err(|e| corrupt(e.to_string()))?;
        let upserts = snapshot_rows(team_id, &upserts, listed_at)?;
        let team_id = team_id.to_string();
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    let conn = tx.conn;
                    sqlx::query(
                        "DELETE FROM key_snapshots WHERE key_id IN (SELECT value FROM json_each(?))",
                    )
                    .bind(&gone)
                    .execute(&mut *conn)
                    .await
                    .map_err(query_err("clear key snapshot"))?;
                    write_snapshot(conn, &upserts).await?;
                    sqlx::query(
                        "INSERT INTO team_listings (team_id, listed_at) VALUES (?, ?) ON CONFLICT (team_id) DO UPDATE SET listed_at = excluded.listed_at",
                    )
                    .bind(&team_id)
                    .bind(ts(listed_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(query_err("record the listing time"))?;
                    Ok(())
                })
            })
            .await
    }
}

#[async_trait::async_trait]
impl RecordStore for Records {
    async fn apply(
        &self,
        at: DateTime<Utc>,
        changes: Vec<Change>,
        audit: Vec<NewAuditEntry>,
    ) -> Result<(), RecordError> {
        Ok(Records::apply(self, at, changes, audit).await?)
    }

    async fn load_team(&self, team_id: &str, keys: &[&Key]) -> Result<TeamRecords, RecordError> {
        Ok(Records::load_team(self, team_id, keys).await?)
    }

    async fn snapshot_keys(
        &self,
        team_id: &str,
        keys: &[&Key],
        seen_at: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        Ok(Records::snapshot_keys(self, team_id, keys, seen_at).await?)
    }
}

impl From<StoreError> for RecordError {
    fn from(e: StoreError) -> Self {
        RecordError::new(e.to_string())
    }
}

/// Whether a snapshot row still says what the list says (the fields it stores).
fn same_snapshot(old: &Key, new: &Key) -> bool {
    old.name == new.name
        && old.description == new.description
        && old.state == new.state
        && old.created_at == new.created_at
        && old.expiry == new.expiry
        && old.last_request_at == new.last_request_at
}

/// Snapshot rows for [`write_snapshot`]: a JSON array of
/// `[key_id, team_id, name, description, state, created, expiry, last request, seen_at]`.
fn snapshot_rows(
    team_id: &str,
    keys: &[&Key],
    seen_at: DateTime<Utc>,
) -> Result<String, StoreError> {
    let seen_at = ts(seen_at);
    serde_json::to_string(
        &keys
            .iter()
            .map(|k| {
                (
                    &k.id,
                    team_id,
                    &k.name,
                    &k.description,
                    k.state.as_str(),
                    opt_ts(k.created_at),
                    opt_ts(k.expiry),
                    opt_ts(k.last_request_at),
                    &seen_at,
                )
            })
            .collect::<Vec<_>>(),
    )
    .map_err(|e| corrupt(e.to_string()))
}

/// Inserts or replaces the snapshot rows built by [`snapshot_rows`], all in one statement.
async fn write_snapshot(conn: &mut SqliteConnection, rows: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO key_snapshots (key_id, team_id, key_name, description, state, created_at, expiry, last_request_at, seen_at) \
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8 FROM json_each(?)",
    )
    .bind(rows)
    .execute(&mut *conn)
    .await
    .map_err(query_err("write key snapshot"))?;
    Ok(())
}

async fn apply_one(
    conn: &mut SqliteConnection,
    change: &Change,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now = ts(at);
    match change {
        Change::StartRotation(r) => {
            sqlx::query(
                "INSERT INTO rotations (rotation_id, team_id, key_name, reason, old_key_id, new_key_id, phase, cas, vault_version, started_at, updated_at, stored_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.rotation_id)
            .bind(&r.lineage.team_id)
            .bind(&r.lineage.name)
            .bind(r.reason.as_str())
            .bind(&r.old_key_id)
            .bind(&r.new_key_id)
            .bind(r.phase.as_str())
            .bind(r.cas as i64)
            .bind(r.vault_version.map(|v| v as i64))
            .bind(ts(r.started_at))
            .bind(&now)
            .bind(opt_ts(r.stored_at))
            .bind(&r.last_error)
            .execute(&mut *conn)
            .await
            .map_err(|source| match &source {
                sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                    what: format!("a rotation of {} is already in flight", r.lineage),
                },
                _ => StoreError::Query {
                    op: "start rotation",
                    source,
                },
            })?;
        }
        Change::Rotation {
            rotation_id,
            phase,
            new_key_id,
            vault_version,
            stored_at,
            error,
        } => {
            let finished = phase.is_terminal().then(|| now.clone());
            let done = sqlx::query(
                "UPDATE rotations SET phase = ?, new_key_id = COALESCE(?, new_key_id), vault_version = COALESCE(?, vault_version), stored_at = COALESCE(?, stored_at), last_error = ?, updated_at = ?, finished_at = COALESCE(?, finished_at) WHERE rotation_id = ?",
            )
            .bind(phase.as_str())
            .bind(new_key_id)
            .bind(vault_version.map(|v| v as i64))
            .bind(opt_ts(*stored_at))
            .bind(error)
            .bind(&now)
            .bind(finished)
            .bind(rotation_id)
            .execute(&mut *conn)
            .await
            .map_err(query_err("update rotation"))?;
            if done.rows_affected() != 1 {
                return Err(corrupt(format!("rotation {rotation_id} is not recorded")));
            }
        }
        Change::Retirement(r) => {
            sqlx::query(
                "INSERT INTO retirements (key_id, team_id, key_name, rotation_id, replaced_at, phase, deactivated_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key_id) DO UPDATE SET phase = excluded.phase, deactivated_at = COALESCE(excluded.deactivated_at, retirements.deactivated_at), updated_at = excluded.updated_at",
            )
            .bind(&r.key_id)
            .bind(&r.lineage.team_id)
            .bind(&r.lineage.name)
            .bind(&r.rotation_id)
            .bind(ts(r.replaced_at))
            .bind(r.phase.as_str())
            .bind(opt_ts(r.deactivated_at))
            .bind(&now)
            .execute(&mut *conn)
            .await
            .map_err(query_err("write retirement"))?;
        }
        Change::Vault { lineage, view } => {
            sqlx::query(
                "INSERT INTO lineages (team_id, key_name, vault_key_id, vault_version, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(team_id, key_name) DO UPDATE SET vault_key_id = excluded.vault_key_id, vault_version = excluded.vault_version, updated_at = excluded.updated_at",
            )
            .bind(&lineage.team_id)
            .bind(&lineage.name)
            .bind(view.as_ref().map(|v| v.key_id.clone()))
            .bind(view.as_ref().map_or(0, |v| v.version as i64))
            .bind(&now)
            .execute(&mut *conn)
            .await
            .map_err(query_err("write lineage vault view"))?;
        }
        Change::Verified { lineage, key_id } => {
            sqlx::query(
                "INSERT OR IGNORE INTO verified_keys (key_id, team_id, key_name, verified_at) VALUES (?, ?, ?, ?)",
            )
            .bind(key_id)
            .bind(&lineage.team_id)
            .bind(&lineage.name)
            .bind(&now)
            .execute(&mut *conn)
            .await
            .map_err(query_err("record verified key"))?;
        }
        Change::SnapshotKey { team_id, key: k } => {
            write_snapshot(conn, &snapshot_rows(team_id, &[k], at)?).await?;
        }
        Change::SnapshotState { key_id, state } => {
            sqlx::query("UPDATE key_snapshots SET state = ? WHERE key_id = ?")
                .bind(state.as_str())
                .bind(key_id)
                .execute(&mut *conn)
                .await
                .map_err(query_err("update key snapshot"))?;
        }
        Change::SnapshotRemove { key_id } => {
            sqlx::query("DELETE FROM key_snapshots WHERE key_id = ?")
                .bind(key_id)
                .execute(&mut *conn)
                .await
                .map_err(query_err("update key snapshot"))?;
        }
    }
    Ok(())
}

fn rotation_from_row(row: &SqliteRow) -> Result<RotationRecord, StoreError> {
    Ok(RotationRecord {
        rotation_id: row.get("rotation_id"),
        lineage: LineageId::new(
            row.get::<String, _>("team_id"),
            row.get::<String, _>("key_name"),
        ),
        reason: row
            .get::<String, _>("reason")
            .parse::<DueReason>()
            .map_err(corrupt)?,
        old_key_id: row.get("old_key_id"),
        new_key_id: row.get("new_key_id"),
        phase: row
            .get::<String, _>("phase")
            .parse::<RotationPhase>()
            .map_err(corrupt)?,
        cas: row.get::<i64, _>("cas") as u64,
        vault_version: row.get::<Option<i64>, _>("vault_version").map(|v| v as u64),
        started_at: parse_ts(&row.get::<String, _>("started_at"))?,
        stored_at: parse_opt_ts(row.get("stored_at"))?,
        last_error: row.get("last_error"),
    })
}

fn retirement_from_row(row: &SqliteRow) -> Result<RetirementRecord, StoreError> {
    Ok(RetirementRecord {
        key_id: row.get("key_id"),
        lineage: LineageId::new(
            row.get::<String, _>("team_id"),
            row.get::<String, _>("key_name"),
        ),
        rotation_id: row.get("rotation_id"),
        replaced_at: parse_ts(&row.get::<String, _>("replaced_at"))?,
        phase: row
            .get::<String, _>("phase")
            .parse::<RetirePhase>()
            .map_err(corrupt)?,
        deactivated_at: parse_opt_ts(row.get("deactivated_at"))?,
    })
}

#[cfg(test)]
mod tests {
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
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let records = Records::new(store.clone());
        let t1 = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let (a, b, c) = (key("A", None), key("B", None), key("C", None));
        records.snapshot_keys("T", &[&a, &b, &c], t1).await.unwrap();

        let t2 = t1 + Duration::minutes(5);
        let b_used = key("B", Some(t2));
        let d = key("D", None);
        records
            .snapshot_keys("T", &[&a, &b_used, &d], t2)
            .await
            .unwrap();
        let seen = seen_at(&store).await;
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
        assert_eq!(ids, vec!["A", "B", "D"]);
        assert_eq!(keys[1].last_request_at, Some(t2));
        assert_eq!(records.snapshot("other").await.unwrap(), (vec![], None));
    }

    /// Every field survives the JSON round trips of the bulk write and read;
    /// teams are kept apart, and an empty list clears only its own team.
    #[tokio::test]
    async fn snapshot_round_trips_every_field_per_team() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let records = Records::new(store);
        let t1 = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
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
}
