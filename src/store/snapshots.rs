//! The key snapshot: the team's last listed keys as the engine saw them, kept
//! so `status` and `report` work without reaching MASV.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::records::{
    corrupt, fetch_packed, opt_ts, parse_opt_ts, parse_ts, query_err, ts, Records,
};
use super::StoreError;
use crate::engine::key::Key;

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

impl Records {
    /// The team's snapshot rows, in no particular order.
    async fn read_snapshot(&self, team_id: &str) -> Result<Vec<Key>, StoreError> {
        let rows: Vec<PackedSnapshot> = fetch_packed(
            self.store().pool(),
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
                .fetch_optional(self.store().pool())
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
        self.store()
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
pub(super) fn snapshot_rows(
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
///
/// Each reference to `json_each`'s `value` turns the row back into JSON text,
/// so the rows are taken out of the array once (the materialized `r`) and each
/// column read from that.
pub(super) async fn write_snapshot(
    conn: &mut SqliteConnection,
    rows: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH rows(r) AS MATERIALIZED (SELECT value FROM json_each(?)) \
         INSERT OR REPLACE INTO key_snapshots (key_id, team_id, key_name, description, state, created_at, expiry, last_request_at, seen_at) \
         SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7, r->>8 FROM rows",
    )
    .bind(rows)
    .execute(&mut *conn)
    .await
    .map_err(query_err("write key snapshot"))?;
    Ok(())
}
