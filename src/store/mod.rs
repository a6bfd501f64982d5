//! The state database: SQLite with the schema from `migrations/`.
//!
//! It holds the audit log ([`audit`]) and the engine's rotation state
//! (`engine::records`). All writes go through [`Store::write`]: one in-process
//! lock and one `BEGIN IMMEDIATE` transaction, so the audit chain head is read
//! and extended atomically and a state change commits with its audit row.
//!
//! Durability: WAL mode with `synchronous = FULL`, so a committed intent or audit
//! row survives a crash of the process *and* of the machine. The daemon writes a
//! handful of rows per key mutation; the cost of an fsync each is worth an audit
//! log that never silently loses its last lines.

pub mod audit;
pub mod error;
pub mod records;
mod snapshots;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

use crate::state_files;
use audit::ChainHead;
pub use audit::{
    row_hash_of, AuditAction, AuditFilter, AuditRow, ChainReport, NewAuditEntry, Outcome,
};
pub use error::StoreError;
pub use records::Records;

/// The most queued writes one transaction carries.
const MAX_BATCH: usize = 256;

/// Answers a queued writer once its batch has committed (or failed to).
type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A write transaction as one queued writer sees it: the connection, and the
/// audit chain's head as this transaction has extended it so far (read from the
/// database by the transaction's first audit row, then carried in memory: every
/// append inside one `BEGIN IMMEDIATE` is ours).
pub struct WriteTx<'c> {
    pub conn: &'c mut SqliteConnection,
    head: &'c mut Option<ChainHead>,
}

/// A queued write, type-erased so writes of any result type share one batch.
trait WriteJob: Send {
    /// Runs the write (inside its savepoint, when it shares the transaction):
    /// whether it succeeded, and how to answer its writer once the batch is committed.
    fn run<'c>(self: Box<Self>, tx: WriteTx<'c>) -> BoxFuture<'c, (bool, Finish)>;
    /// The answer for a write that never ran because the batch failed first.
    fn into_failure(self: Box<Self>) -> Finish;
    fn fail(self: Box<Self>, e: StoreError) {
        self.into_failure()(Err(e))
    }
}

struct TypedJob<T, F> {
    f: F,
    tx: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for TypedJob<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(WriteTx<'c>) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
{
    fn run<'c>(self: Box<Self>, write: WriteTx<'c>) -> BoxFuture<'c, (bool, Finish)> {
        let TypedJob { f, tx } = *self;
        Box::pin(async move {
            match f(write).await {
                Ok(out) => {
                    let finish: Finish = Box::new(move |committed: Result<(), StoreError>| {
                        let _ = tx.send(committed.map(|()| out));
                    });
                    (true, finish)
                }
                Err(e) => {
                    // The write's own error wins over whatever the batch does.
                    let finish: Finish = Box::new(move |_| {
                        let _ = tx.send(Err(e));
                    });
                    (false, finish)
                }
            }
        })
    }

    fn into_failure(self: Box<Self>) -> Finish {
        let tx = self.tx;
        Box::new(move |r: Result<(), StoreError>| {
            let _ = tx.send(r.and_then(|()| {
                Err(StoreError::Corrupt {
                    reason: "a queued write was skipped".into(),
                })
            }));
        })
    }
}

/// How long a database connection may sit idle before the pool closes it.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a writer waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the database; clones share the pool and the write lock.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Held by the writer that is running a batch of queued writes.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Writes waiting for the next batch.
    queue: Arc<std::sync::Mutex<Vec<Box<dyn WriteJob>>>>,
    /// The database file, named in write errors (a full disk, a read-only file).
    path: Arc<PathBuf>,
}

fn open_err(path: &Path, reason: impl ToString) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl Store {
    /// Opens (creating the file if needed) and migrates. The directory must exist:
    /// a missing state directory is a deployment error, not something to paper over.
    /// A link in the place of the database, its `-wal` or its `-shm` is refused
    /// ([`crate::state_files`]). A new database is created `0600` whatever the
    /// umask (its `-wal` and `-shm` follow it); an existing one with looser
    /// modes is logged as a warning naming the `chmod` to run.
    #[tracing::instrument(skip_all, fields(path = %path.display()))]
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        state_files::check_database(path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(open_err(
                path,
                format!("directory {} does not exist", dir.display()),
            ));
        }
        if let Some(warning) = state_files::loose_modes(path) {
            tracing::warn!("{warning}");
        }
        state_files::create_private(path)
            .map_err(|e| open_err(path, format!("cannot create it mode 0600: {e}")))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // 1 MiB of page cache per connection: the working set is small, and
            // an idle daemon should cost little memory.
            .pragma("cache_size", "-1024");
        let pool = SqlitePoolOptions::new()
            // Writes are serialised anyway; one more connection lets reads overlap.
            // (sqlx runs each SQLite connection on its own thread.)
            .max_connections(2)
            // Closed when idle, so an idle daemon holds no SQLite page cache
            // (daemon::SETTLE_AFTER_SWEEP waits for this).
            .min_connections(0)
            .idle_timeout(Some(IDLE_CONNECTION_TIMEOUT))
            .connect_with(options)
            .await
            .map_err(|e| open_err(path, e))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { source })?;
        Ok(Self {
            pool,
            write_lock: Arc::default(),
            queue: Arc::default(),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Opens an existing database for reading only (status, history, report);
    /// looser modes than `0600` are logged as a warning, as by [`Store::open`].
    pub async fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        state_files::check_database(path)?;
        if !path.is_file() {
            return Err(open_err(path, "no such database file"));
        }
        if let Some(warning) = state_files::loose_modes(path) {
            tracing::warn!("{warning}");
        }
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| open_err(path, e))?
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| open_err(path, e))?;
        Ok(Self {
            pool,
            write_lock: Arc::default(),
            queue: Arc::default(),
            path: Arc::new(path.to_path_buf()),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`) and returns once that
    /// transaction has committed: what `f` wrote is on disk when this returns.
    /// If `f` fails, its writes are undone and nothing of it is kept.
    ///
    /// Group commit: writers that arrive while a transaction is being written
    /// queue up, and the next one to take the write lock runs all of them in one
    /// transaction, each in its own savepoint, so N concurrent writers cost one
    /// fsync instead of N. Each writer still waits for the commit that carries
    /// its rows (the intent-before-call rule is unchanged).
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(WriteTx<'c>) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue
            .lock()
            .expect("write queue poisoned")
            .push(Box::new(TypedJob { f, tx }));
        {
            let _leader = self.write_lock.lock().await;
            loop {
                let jobs: Vec<Box<dyn WriteJob>> = {
                    let mut q = self.queue.lock().expect("write queue poisoned");
                    let n = q.len().min(MAX_BATCH);
                    q.drain(..n).collect()
                };
                if jobs.is_empty() {
                    break;
                }
                self.run_batch(jobs).await;
            }
        }
        let answer = rx.await.unwrap_or_else(|_| {
            Err(StoreError::Corrupt {
                reason: "a queued write was dropped".into(),
            })
        });
        answer.map_err(|e| match e {
            StoreError::Query { .. } => StoreError::Write {
                path: self.path.to_path_buf(),
                source: Box::new(e),
            },
            other => other,
        })
    }

    /// One transaction for a batch of queued writes; answers every writer.
    async fn run_batch(&self, jobs: Vec<Box<dyn WriteJob>>) {
        let write_err = |e: StoreError| StoreError::Write {
            path: self.path.to_path_buf(),
            source: Box::new(e),
        };
        let mut conn = match self.pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                let reason = e.to_string();
                for job in jobs {
                    job.fail(write_err(StoreError::Commit {
                        op: "get a database connection",
                        reason: reason.clone(),
                    }));
                }
                return;
            }
        };
        let mut finishes: Vec<Finish> = Vec::with_capacity(jobs.len());
        let committed = async {
            let alone = jobs.len() == 1;
            let mut jobs = jobs.into_iter();
            let mut tx = match conn.begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => tx,
                Err(e) => {
                    finishes.extend(jobs.map(|j| j.into_failure()));
                    return Err(("begin a write transaction", e));
                }
            };
            let mut head: Option<ChainHead> = None;
            if alone {
                // A lone writer needs no savepoint: its failure undoes the
                // whole transaction (two statements fewer per write).
                let job = jobs.next().expect("one job");
                let (ok, finish) = job
                    .run(WriteTx {
                        conn: &mut tx,
                        head: &mut head,
                    })
                    .await;
                finishes.push(finish);
                return if ok {
                    tx.commit().await.map_err(|e| ("commit", e))
                } else {
                    // The writer's own error is its answer; a failed rollback
                    // still means the connection must not be reused.
                    tx.rollback().await.map_err(|e| ("roll back", e))
                };
            }
            while let Some(job) = jobs.next() {
                let mut savepoint = match tx.begin().await {
                    Ok(sp) => sp,
                    Err(e) => {
                        // Answered below with the batch's error.
                        finishes.extend(jobs.map(|j| j.into_failure()));
                        finishes.push(job.into_failure());
                        return Err(("begin a savepoint", e));
                    }
                };
                let head_before = head.clone();
                let (ok, finish) = job
                    .run(WriteTx {
                        conn: &mut savepoint,
                        head: &mut head,
                    })
                    .await;
                let closed = if ok {
                    savepoint.commit().await
                } else {
                    // Its audit rows are undone: so is what it did to the head.
                    head = head_before;
                    savepoint.rollback().await
                };
                finishes.push(finish);
                if let Err(e) = closed {
                    finishes.extend(jobs.map(|j| j.into_failure()));
                    return Err(("close a savepoint", e));
                }
            }
            tx.commit().await.map_err(|e| ("commit", e))
        }
        .await;
        match committed {
            Ok(()) => {
                for finish in finishes {
                    finish(Ok(()));
                }
            }
            Err((op, e)) => {
                // A failed statement or COMMIT (a full disk, say) can leave the
                // connection's transaction state out of step with SQLite's: never
                // hand such a connection to the next writer.
                conn.close_on_drop();
                let reason = e.to_string();
                for finish in finishes {
                    finish(Err(write_err(StoreError::Commit {
                        op,
                        reason: reason.clone(),
                    })));
                }
            }
        }
    }

    /// Appends one audit row inside a transaction opened by [`Store::write`].
    pub async fn append_on(
        tx: &mut WriteTx<'_>,
        entry: NewAuditEntry,
    ) -> Result<AuditRow, StoreError> {
        audit::append_on(tx.conn, tx.head, entry).await
    }

    /// Appends one audit row.
    pub async fn append(&self, entry: NewAuditEntry) -> Result<AuditRow, StoreError> {
        self.write(move |mut tx| Box::pin(async move { Store::append_on(&mut tx, entry).await }))
            .await
    }

    /// Appends several rows in one transaction.
    pub async fn append_many(
        &self,
        entries: Vec<NewAuditEntry>,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.write(move |mut tx| {
            Box::pin(async move {
                let mut rows = Vec::with_capacity(entries.len());
                for e in entries {
                    rows.push(Store::append_on(&mut tx, e).await?);
                }
                Ok(rows)
            })
        })
        .await
    }

    /// Audit rows matching `filter`, oldest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        audit::read(&self.pool, filter).await
    }

    /// Checks the whole hash chain.
    pub async fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        audit::verify(&self.pool).await
    }

    /// The chain after row `start.0`, whose hash is `start.1` (None: the whole
    /// chain, as [`Store::verify_chain`]).
    pub async fn verify_chain_after(
        &self,
        start: Option<(i64, &str)>,
    ) -> Result<ChainReport, StoreError> {
        audit::verify_after(&self.pool, start).await
    }

    /// The committed chain head: last row id, its hash, the row count (None: no rows).
    pub async fn chain_head(&self) -> Result<Option<(i64, String, u64)>, StoreError> {
        audit::head(&self.pool).await
    }

    /// The hash stored on audit row `id`, if the row exists.
    pub async fn audit_hash(&self, id: i64) -> Result<Option<String>, StoreError> {
        audit::hash_of(&self.pool, id).await
    }

    /// `PRAGMA integrity_check`.
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        let row = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await
            .map_err(|source| StoreError::Query {
                op: "check integrity",
                source,
            })?;
        let verdict: String = row.get(0);
        if verdict == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt { reason: verdict })
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn entry(detail: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: Utc::now(),
            team_id: Some("T1".into()),
            key_id: None,
            key_name: None,
            action: AuditAction::Create,
            outcome: Outcome::Ok,
            detail: detail.into(),
            rotation_id: None,
            lease_token: None,
        }
    }

    /// A queued writer appending `rows` audit rows, then failing if `fail`.
    fn job(
        rows: &'static [&'static str],
        fail: bool,
    ) -> (
        Box<dyn WriteJob>,
        tokio::sync::oneshot::Receiver<Result<(), StoreError>>,
    ) {
        fn boxed<F>(
            f: F,
            tx: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
        ) -> Box<dyn WriteJob>
        where
            F: for<'c> FnOnce(WriteTx<'c>) -> BoxFuture<'c, Result<(), StoreError>>
                + Send
                + 'static,
        {
            Box::new(TypedJob { f, tx })
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let f = boxed(
            move |mut w| {
                Box::pin(async move {
                    for detail in rows {
                        Store::append_on(&mut w, entry(detail)).await?;
                    }
                    if fail {
                        return Err(StoreError::Conflict {
                            what: "doomed".into(),
                        });
                    }
                    Ok(())
                })
            },
            tx,
        );
        (f, rx)
    }

    /// One batch, driven directly: the chain head carried from writer to writer
    /// must forget what a failed writer appended, or the next row would chain
    /// from a row that was rolled back.
    #[tokio::test]
    async fn one_batch_keeps_the_chain_across_a_failed_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).await.unwrap();
        store.append(entry("before")).await.unwrap();
        let (a, ra) = job(&["a1", "a2"], false);
        let (b, rb) = job(&["b1", "b2"], true);
        let (c, rc) = job(&["c1"], false);
        let (d, rd) = job(&[], true);
        store.run_batch(vec![a, b, c, d]).await;
        assert!(ra.await.unwrap().is_ok());
        assert!(matches!(
            rb.await.unwrap(),
            Err(StoreError::Conflict { .. })
        ));
        assert!(rc.await.unwrap().is_ok());
        assert!(matches!(
            rd.await.unwrap(),
            Err(StoreError::Conflict { .. })
        ));
        let details: Vec<String> = store
            .audit(&AuditFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.detail)
            .collect();
        assert_eq!(details, ["before", "a1", "a2", "c1"]);
        assert_eq!(
            store.verify_chain().await.unwrap(),
            ChainReport::Intact { rows: 4 }
        );
        // A lone failing writer: nothing of it is kept, and the next write chains on.
        let (e, re) = job(&["e1"], true);
        store.run_batch(vec![e]).await;
        assert!(re.await.unwrap().is_err());
        store.append(entry("after")).await.unwrap();
        assert_eq!(
            store.verify_chain().await.unwrap(),
            ChainReport::Intact { rows: 5 }
        );
    }
}
