//! Errors of the state database.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error("cannot migrate the database schema: {source}")]
    Migrate {
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error while trying to {op}: {source}")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A write transaction failed: names the file, since the cause is often the
    /// file system (full, read-only) rather than the daemon.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: Box<StoreError>,
    },
    /// A batch of writes could not be committed (every writer in it gets this).
    #[error("database error while trying to {op}: {reason}")]
    Commit { op: &'static str, reason: String },
    #[error("conflict: {what}")]
    Conflict { what: String },
    #[error("the database holds something unexpected: {reason}")]
    Corrupt { reason: String },
}
