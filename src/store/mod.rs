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

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

pub use audit::{AuditAction, AuditFilter, AuditRow, ChainReport, NewAuditEntry, Outcome};
pub use error::StoreError;

/// How long a writer waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the database; clones share the pool and the write lock.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    write_lock: Arc<tokio::sync::Mutex<()>>,
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
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
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
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Opens an existing database for reading only (status, history, report).
    pub async fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(open_err(path, "no such database file"));
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
            path: Arc::new(path.to_path_buf()),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`), serialised with every
    /// other write of this process. Commits if `f` succeeds, rolls back otherwise.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send,
    {
        let _guard = self.write_lock.lock().await;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|source| StoreError::Query {
                op: "get a database connection",
                source,
            })?;
        let result = async {
            let mut tx =
                conn.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(|source| StoreError::Query {
                        op: "begin a write transaction",
                        source,
                    })?;
            let out = f(&mut tx).await?;
            tx.commit().await.map_err(|source| StoreError::Query {
                op: "commit",
                source,
            })?;
            Ok(out)
        }
        .await;
        if result.is_err() {
            // A failed statement or COMMIT (a full disk, say) can leave the
            // connection's transaction state out of step with SQLite's: never
            // hand such a connection to the next writer.
            conn.close_on_drop();
        }
        result.map_err(|e| match e {
            StoreError::Query { .. } => StoreError::Write {
                path: self.path.to_path_buf(),
                source: Box::new(e),
            },
            other => other,
        })
    }

    /// Appends one audit row inside a transaction opened by [`Store::write`].
    pub async fn append_on(
        conn: &mut SqliteConnection,
        entry: NewAuditEntry,
    ) -> Result<AuditRow, StoreError> {
        audit::append_on(conn, entry).await
    }

    /// Appends one audit row.
    pub async fn append(&self, entry: NewAuditEntry) -> Result<AuditRow, StoreError> {
        self.write(move |conn| Box::pin(audit::append_on(conn, entry)))
            .await
    }

    /// Appends several rows in one transaction.
    pub async fn append_many(
        &self,
        entries: Vec<NewAuditEntry>,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.write(move |conn| {
            Box::pin(async move {
                let mut rows = Vec::with_capacity(entries.len());
                for e in entries {
                    rows.push(audit::append_on(conn, e).await?);
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
