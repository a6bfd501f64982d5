//! Errors of the state database.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// A link in the place of the database or its `-wal`/`-shm`: refused, not opened.
    #[error(transparent)]
    Unsafe(#[from] crate::state_files::UnsafeFile),
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

impl StoreError {
    /// A link in the database's place stays there until an operator removes it:
    /// [`Exit::Usage`](crate::exit::Exit::Usage), which the unit does not restart
    /// on. Anything else: [`Exit::ActionFailed`](crate::exit::Exit::ActionFailed).
    pub fn exit(&self) -> crate::exit::Exit {
        match self {
            StoreError::Unsafe(_) => crate::exit::Exit::Usage,
            _ => crate::exit::Exit::ActionFailed,
        }
    }
}
