//! The engine's record store in SQLite (migration `*_rotation_state.sql`): the
//! SQL behind [`RecordStore`], and the reads `status`, `report` and the tests
//! make of the same tables.
//!
//! Every write that accompanies an external call goes through [`Records::apply`]:
//! the state change and its audit row commit in one transaction, so the audit
//! log and the state machine can never disagree about what happened.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::snapshots::{snapshot_rows, write_snapshot};
use crate::engine::key::Key;
use crate::engine::marker;
use crate::engine::model::{
    DueReason, LineageId, RetirePhase, RetirementRecord, RotationPhase, RotationRecord, VaultView,
};
use crate::engine::ports::{RecordError, RecordStore};
use crate::engine::records::{Change, InFlight, TeamRecords};
use crate::store::{NewAuditEntry, Store, StoreError};

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn opt_ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

pub(super) fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            reason: format!("bad timestamp {s:?}: {e}"),
        })
}

pub(super) fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.as_deref().map(parse_ts).transpose()
}

pub(super) fn corrupt(e: String) -> StoreError {
    StoreError::Corrupt { reason: e }
}

pub(super) fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

/// Runs a query that selects one JSON array (`json_group_array(...)`) with
/// `binds` bound in order, and decodes it.
///
/// sqlx hands SQLite rows from its worker thread over one message (and one
/// thread wake-up) per row; reading the lineages, verified keys and snapshot of
/// 10,000 keys that way was most of a steady sweep's time. Aggregated in SQLite,
/// a table arrives as one row.
pub(super) async fn fetch_packed<T: serde::de::DeserializeOwned>(
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

/// The engine's handle on the database.
#[derive(Clone)]
pub struct Records {
    store: Store,
}

/// A team's finished rotations among the rotation ids of a JSON array, packed
/// as `[key name, rotation id, phase]` rows. Only the team's range of the
/// `rotations_finished_by_team` index is read, however long the history.
const FINISHED_ROTATIONS_BY_ID: &str = "SELECT json_group_array(json_array(key_name, rotation_id, phase)) FROM rotations WHERE team_id = ? AND phase IN ('verified', 'rolled_back', 'abandoned') AND rotation_id IN (SELECT value FROM json_each(?))";

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
            "SELECT * FROM rotations WHERE team_id = ? AND phase NOT IN ('verified', 'rolled_back', 'abandoned', 'handed_over')",
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
        // and whether they rolled back. Handed-over ones are not known: another
        // instance may have done anything with them since.
        let marked: Vec<&str> = keys
            .iter()
            .filter_map(|k| marker::rotation_id(&k.description))
            .collect();
        let marked = serde_json::to_string(&marked).map_err(|e| corrupt(e.to_string()))?;
        let finished: Vec<(String, String, String)> = fetch_packed(
            pool,
            "load finished rotations",
            FINISHED_ROTATIONS_BY_ID,
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
        let retirements: Vec<PackedRetirement> = fetch_packed(
            pool,
            "load retirements",
            &format!("SELECT json_group_array({RETIREMENT_COLUMNS}) FROM retirements WHERE team_id = ? AND phase != 'deleted'"),
            &[team_id],
        )
        .await?;
        for r in retirements {
            let r = r.into_record()?;
            out.retirements
                .entry(r.lineage.name.clone())
                .or_default()
                .push(r);
        }
        let lineages: Vec<(String, Option<String>, i64, Option<String>)> = fetch_packed(
            pool,
            "load lineages",
            "SELECT json_group_array(json_array(key_name, vault_key_id, vault_version, vault_rotation_id)) FROM lineages WHERE team_id = ?",
            &[team_id],
        )
        .await?;
        for (name, key_id, version, rotation_id) in lineages {
            out.vault.insert(
                name,
                key_id.map(|key_id| VaultView {
                    key_id,
                    version: version as u64,
                    rotation_id,
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

    /// Open rotations and undeactivated retirements of every team.
    pub async fn in_flight(&self) -> Result<InFlight, StoreError> {
        let pool = self.store.pool();
        let rows = sqlx::query(
            "SELECT * FROM rotations WHERE phase NOT IN ('verified', 'rolled_back', 'abandoned', 'handed_over') ORDER BY started_at",
        )
        .fetch_all(pool)
        .await
        .map_err(query_err("load open rotations"))?;
        let rotations = rows
            .iter()
            .map(rotation_from_row)
            .collect::<Result<_, _>>()?;
        let retirements: Vec<PackedRetirement> = fetch_packed(
            pool,
            "load retirements",
            &format!("SELECT json_group_array({RETIREMENT_COLUMNS} ORDER BY key_id) FROM retirements WHERE phase IN ('waiting', 'deactivating')"),
            &[],
        )
        .await?;
        let undeactivated = retirements
            .into_iter()
            .map(PackedRetirement::into_record)
            .collect::<Result<_, _>>()?;
        Ok(InFlight {
            rotations,
            undeactivated,
        })
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

    async fn in_flight(&self) -> Result<InFlight, RecordError> {
        Ok(Records::in_flight(self).await?)
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

async fn apply_one(
    conn: &mut SqliteConnection,
    change: &Change,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now = ts(at);
    match change {
        Change::StartRotation(r) => {
            insert_rotation(conn, r, &now, "", "start rotation").await?;
        }
        Change::KnownRotation(r) => {
            // Over a row of the same id only if this instance handed it over.
            let done = insert_rotation(
                conn,
                r,
                &now,
                " ON CONFLICT(rotation_id) DO UPDATE SET reason = excluded.reason, old_key_id = excluded.old_key_id, new_key_id = excluded.new_key_id, phase = excluded.phase, cas = excluded.cas, vault_version = excluded.vault_version, updated_at = excluded.updated_at, stored_at = excluded.stored_at, finished_at = excluded.finished_at, last_error = excluded.last_error WHERE rotations.phase = 'handed_over' AND rotations.team_id = excluded.team_id AND rotations.key_name = excluded.key_name",
                "record a known rotation",
            )
            .await?;
            if done != 1 {
                return Err(StoreError::Conflict {
                    what: format!("rotation {} is already recorded", r.rotation_id),
                });
            }
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
                "INSERT INTO lineages (team_id, key_name, vault_key_id, vault_version, vault_rotation_id, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(team_id, key_name) DO UPDATE SET vault_key_id = excluded.vault_key_id, vault_version = excluded.vault_version, vault_rotation_id = excluded.vault_rotation_id, updated_at = excluded.updated_at",
            )
            .bind(&lineage.team_id)
            .bind(&lineage.name)
            .bind(view.as_ref().map(|v| v.key_id.clone()))
            .bind(view.as_ref().map_or(0, |v| v.version as i64))
            .bind(view.as_ref().and_then(|v| v.rotation_id.clone()))
            .bind(&now)
            .execute(&mut *conn)
            .await
            .map_err(query_err("write lineage vault view"))?;
        }
        Change::ForgetVaultViews => {
            sqlx::query("DELETE FROM lineages")
                .execute(&mut *conn)
                .await
                .map_err(query_err("forget vault views"))?;
        }
        Change::ForgetRetirement { key_id } => {
            sqlx::query("DELETE FROM retirements WHERE key_id = ?")
                .bind(key_id)
                .execute(&mut *conn)
                .await
                .map_err(query_err("forget retirement"))?;
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

/// Inserts a rotation row (`on_conflict` appended to the statement); returns
/// the rows written. A second open rotation of a lineage is a conflict.
async fn insert_rotation(
    conn: &mut SqliteConnection,
    r: &RotationRecord,
    now: &str,
    on_conflict: &str,
    op: &'static str,
) -> Result<u64, StoreError> {
    let finished = r.phase.is_terminal().then_some(now);
    let done = sqlx::query(&format!(
        "INSERT INTO rotations (rotation_id, team_id, key_name, reason, old_key_id, new_key_id, phase, cas, vault_version, started_at, updated_at, stored_at, finished_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?){on_conflict}"
    ))
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
    .bind(now)
    .bind(opt_ts(r.stored_at))
    .bind(finished)
    .bind(&r.last_error)
    .execute(&mut *conn)
    .await
    .map_err(|source| match &source {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            what: format!("a rotation of {} is already in flight", r.lineage),
        },
        _ => StoreError::Query { op, source },
    })?;
    Ok(done.rows_affected())
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

/// A retirement's columns as one JSON array, for [`fetch_packed`].
const RETIREMENT_COLUMNS: &str =
    "json_array(key_id, team_id, key_name, rotation_id, replaced_at, phase, deactivated_at)";

/// A `retirements` row as [`RETIREMENT_COLUMNS`] packs it: a team's
/// retirements are as many as its keys (each waits out its grace period), and
/// one message for all of them costs one thread wake-up instead of one per row.
#[derive(serde::Deserialize)]
struct PackedRetirement(
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
);

impl PackedRetirement {
    fn into_record(self) -> Result<RetirementRecord, StoreError> {
        let PackedRetirement(
            key_id,
            team_id,
            key_name,
            rotation_id,
            replaced_at,
            phase,
            deactivated_at,
        ) = self;
        Ok(RetirementRecord {
            key_id,
            lineage: LineageId::new(team_id, key_name),
            rotation_id,
            replaced_at: parse_ts(&replaced_at)?,
            phase: phase.parse::<RetirePhase>().map_err(corrupt)?,
            deactivated_at: parse_opt_ts(deactivated_at)?,
        })
    }
}

#[cfg(test)]
mod tests;
