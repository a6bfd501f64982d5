//! The audit log: append-only, hash-chained rows (docs/design.md, section 6).
//!
//! Each row's `hash` is `sha256_hex(prev_hash + "\n" + canonical)` where
//! `canonical` is the JSON array
//! `[id, at, team_id, key_id, key_name, action, outcome, detail, rotation_id]`
//! (absent values as `null`), with the HA fencing token `lease_token` appended
//! as a tenth element on rows that have one (rows without it hash as they
//! always have). JSON gives an unambiguous encoding for any text,
//! including separators and newlines in `detail`. The first row chains from 64
//! zeros. Editing, deleting, inserting or re-ordering a row breaks the chain at
//! that row; a truncated *tail*, or a chain rewritten whole with fresh hashes,
//! cannot be seen by a chain alone: the head is anchored in Vault for that
//! ([`crate::anchor`]), and [`head`] and [`hash_of`] are what it compares.
//!
//! Triggers make the database refuse UPDATE and DELETE; the chain catches anyone
//! who drops the triggers first.

use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::error::StoreError;
pub use crate::engine::audit::{AuditAction, NewAuditEntry, Outcome};

/// The hash the first row chains from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub action: AuditAction,
    pub outcome: Outcome,
    pub detail: String,
    pub rotation_id: Option<String>,
    /// The HA lease's fencing token the mutation was made under (with `[ha]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<i64>,
    pub prev_hash: String,
    pub hash: String,
}

/// Which rows to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only rows after this id (`history --follow` reads on from its last row).
    pub after_id: Option<i64>,
    pub key_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub rotation_id: Option<String>,
    pub limit: Option<u32>,
}

/// The verdict on the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "chain", rename_all = "snake_case")]
pub enum ChainReport {
    Intact { rows: u64 },
    Broken { first_bad_id: i64, reason: String },
}

pub(crate) fn format_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The row's hash from its predecessor's and its own content (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn row_hash(
    prev_hash: &str,
    id: i64,
    at: &str,
    team_id: Option<&str>,
    key_id: Option<&str>,
    key_name: Option<&str>,
    action: &str,
    outcome: &str,
    detail: &str,
    rotation_id: Option<&str>,
    lease_token: Option<i64>,
) -> String {
    let mut canonical = serde_json::json!([
        id,
        at,
        team_id,
        key_id,
        key_name,
        action,
        outcome,
        detail,
        rotation_id
    ]);
    if let (Some(token), Some(fields)) = (lease_token, canonical.as_array_mut()) {
        fields.push(token.into());
    }
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// [`row_hash`] of a row as read, chained from `prev_hash` (for tools and
/// tests that rebuild a chain: an auditor's attacker model).
pub fn row_hash_of(prev_hash: &str, row: &AuditRow) -> String {
    row_hash(
        prev_hash,
        row.id,
        &format_at(row.at),
        row.team_id.as_deref(),
        row.key_id.as_deref(),
        row.key_name.as_deref(),
        row.action.as_str(),
        row.outcome.as_str(),
        &row.detail,
        row.rotation_id.as_deref(),
        row.lease_token,
    )
}

fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

/// Where the next audit row goes: its id and the hash it chains from.
#[derive(Debug, Clone)]
pub(crate) struct ChainHead {
    next_id: i64,
    prev_hash: String,
}

/// Appends one row on a connection that is inside the caller's write
/// transaction. `head` is the chain head as this write transaction last
/// left it; `None` reads it from the database (the transaction's first append).
pub(crate) async fn append_on(
    conn: &mut SqliteConnection,
    head: &mut Option<ChainHead>,
    mut entry: NewAuditEntry,
) -> Result<AuditRow, StoreError> {
    // Rows are permanent: a secret echoed into an error must not become one.
    if !entry.detail.is_empty() {
        entry.detail = crate::redact::scrub(&entry.detail);
    }
    let (id, prev_hash) = match head.take() {
        Some(h) => (h.next_id, h.prev_hash),
        None => {
            let last = sqlx::query("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(query_err("read the audit chain head"))?;
            match last {
                Some(row) => (row.get::<i64, _>("id") + 1, row.get::<String, _>("hash")),
                None => (1, GENESIS.to_string()),
            }
        }
    };
    let at = format_at(entry.at);
    let hash = row_hash(
        &prev_hash,
        id,
        &at,
        entry.team_id.as_deref(),
        entry.key_id.as_deref(),
        entry.key_name.as_deref(),
        entry.action.as_str(),
        entry.outcome.as_str(),
        &entry.detail,
        entry.rotation_id.as_deref(),
        entry.lease_token,
    );
    sqlx::query(
        "INSERT INTO audit_log (id, at, team_id, key_id, key_name, action, outcome, detail, rotation_id, lease_token, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(&at)
    .bind(&entry.team_id)
    .bind(&entry.key_id)
    .bind(&entry.key_name)
    .bind(entry.action.as_str())
    .bind(entry.outcome.as_str())
    .bind(&entry.detail)
    .bind(&entry.rotation_id)
    .bind(entry.lease_token)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await
    .map_err(query_err("append to the audit log"))?;
    *head = Some(ChainHead {
        next_id: id + 1,
        prev_hash: hash.clone(),
    });
    Ok(AuditRow {
        id,
        at: entry.at,
        team_id: entry.team_id,
        key_id: entry.key_id,
        key_name: entry.key_name,
        action: entry.action,
        outcome: entry.outcome,
        detail: entry.detail,
        rotation_id: entry.rotation_id,
        lease_token: entry.lease_token,
        prev_hash,
        hash,
    })
}

fn corrupt(id: i64, what: String) -> StoreError {
    StoreError::Corrupt {
        reason: format!("audit row {id}: {what}"),
    }
}

pub(crate) fn row_from(row: &SqliteRow) -> Result<AuditRow, StoreError> {
    let id: i64 = row.get("id");
    let at: String = row.get("at");
    Ok(AuditRow {
        id,
        at: DateTime::parse_from_rfc3339(&at)
            .map_err(|e| corrupt(id, format!("bad time {at:?}: {e}")))?
            .with_timezone(&Utc),
        team_id: row.get("team_id"),
        key_id: row.get("key_id"),
        key_name: row.get("key_name"),
        action: row
            .get::<String, _>("action")
            .parse()
            .map_err(|e| corrupt(id, e))?,
        outcome: row
            .get::<String, _>("outcome")
            .parse()
            .map_err(|e| corrupt(id, e))?,
        detail: row.get("detail"),
        rotation_id: row.get("rotation_id"),
        lease_token: row.get("lease_token"),
        prev_hash: row.get("prev_hash"),
        hash: row.get("hash"),
    })
}

/// Reads rows matching the filter, oldest first.
pub(crate) async fn read(
    pool: &sqlx::SqlitePool,
    filter: &AuditFilter,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut sql = String::from("SELECT * FROM audit_log WHERE 1 = 1");
    if filter.after_id.is_some() {
        sql.push_str(" AND id > ?");
    }
    if filter.key_id.is_some() {
        sql.push_str(" AND key_id = ?");
    }
    if filter.since.is_some() {
        sql.push_str(" AND at >= ?");
    }
    if filter.rotation_id.is_some() {
        sql.push_str(" AND rotation_id = ?");
    }
    sql.push_str(" ORDER BY id");
    if filter.limit.is_some() {
        sql.push_str(" LIMIT ?");
    }
    let mut q = sqlx::query(&sql);
    if let Some(after) = filter.after_id {
        q = q.bind(after);
    }
    if let Some(k) = &filter.key_id {
        q = q.bind(k);
    }
    if let Some(s) = filter.since {
        q = q.bind(format_at(s));
    }
    if let Some(r) = &filter.rotation_id {
        q = q.bind(r);
    }
    if let Some(l) = filter.limit {
        q = q.bind(i64::from(l));
    }
    let rows = q
        .fetch_all(pool)
        .await
        .map_err(query_err("read the audit log"))?;
    rows.iter().map(row_from).collect()
}

/// The chain's head as committed: the last row's id and hash and the row
/// count, read in one statement (one snapshot); None for an empty log.
pub(crate) async fn head(
    pool: &sqlx::SqlitePool,
) -> Result<Option<(i64, String, u64)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, hash, (SELECT COUNT(*) FROM audit_log) AS n FROM audit_log ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(query_err("read the audit chain head"))?;
    Ok(row.map(|r| {
        (
            r.get::<i64, _>("id"),
            r.get::<String, _>("hash"),
            u64::try_from(r.get::<i64, _>("n")).unwrap_or(0),
        )
    }))
}

/// The hash stored on row `id`, if there is such a row.
pub(crate) async fn hash_of(
    pool: &sqlx::SqlitePool,
    id: i64,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT hash FROM audit_log WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(query_err("read an audit row's hash"))
}

/// Walks the whole chain in id order, streaming, and names the first bad row.
pub(crate) async fn verify(pool: &sqlx::SqlitePool) -> Result<ChainReport, StoreError> {
    verify_after(pool, None).await
}

/// Walks the chain after row `start.0` (whose hash is `start.1`: the rows
/// before it are taken as checked), or the whole chain for None, and names the
/// first bad row. `rows` in the report counts the rows walked.
pub(crate) async fn verify_after(
    pool: &sqlx::SqlitePool,
    start: Option<(i64, &str)>,
) -> Result<ChainReport, StoreError> {
    let (after, genesis) = start.unwrap_or((0, GENESIS));
    let mut rows = sqlx::query("SELECT id, at, team_id, key_id, key_name, action, outcome, detail, rotation_id, lease_token, prev_hash, hash FROM audit_log WHERE id > ? ORDER BY id")
        .bind(after)
        .fetch(pool);
    let mut expected_prev = genesis.to_string();
    let mut expected_id = after + 1;
    let mut count = 0u64;
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(query_err("verify the audit chain"))?
    {
        let id: i64 = row.get("id");
        let prev_hash: String = row.get("prev_hash");
        let hash: String = row.get("hash");
        if id != expected_id {
            return Ok(ChainReport::Broken {
                first_bad_id: id,
                reason: format!("expected row {expected_id} next: rows are missing"),
            });
        }
        if prev_hash != expected_prev {
            return Ok(ChainReport::Broken {
                first_bad_id: id,
                reason: format!("prev_hash does not match the hash of row {}", id - 1),
            });
        }
        let computed = row_hash(
            &prev_hash,
            id,
            &row.get::<String, _>("at"),
            row.get::<Option<String>, _>("team_id").as_deref(),
            row.get::<Option<String>, _>("key_id").as_deref(),
            row.get::<Option<String>, _>("key_name").as_deref(),
            &row.get::<String, _>("action"),
            &row.get::<String, _>("outcome"),
            &row.get::<String, _>("detail"),
            row.get::<Option<String>, _>("rotation_id").as_deref(),
            row.get::<Option<i64>, _>("lease_token"),
        );
        if computed != hash {
            return Ok(ChainReport::Broken {
                first_bad_id: id,
                reason: "content does not match its hash (the row was altered)".into(),
            });
        }
        expected_prev = hash;
        expected_id += 1;
        count += 1;
    }
    Ok(ChainReport::Intact { rows: count })
}
