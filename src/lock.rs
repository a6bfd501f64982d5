//! One daemon per database: an exclusive lock on `<database.path>.lock`.
//!
//! Two processes sweeping the same state would each believe it owns the
//! in-flight rotations. `run`, `once` and `rotate` take the lock for their whole
//! life; a second one refuses with [`crate::exit::Exit::Locked`].
//! The OS releases the lock when the process dies, even on `kill -9`.
//!
//! The lock file is opened without following a symbolic link and refused if it
//! has another name (see [`crate::state_files`]), and created readable by the
//! daemon's user only: taking the lock truncates the file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::exit::Exit;
use crate::state_files::{self, UnsafeFile};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another masv-key-rotator ({holder}) is using {}: only one instance per database may run", database.display())]
    Held { database: PathBuf, holder: String },
    #[error("cannot open the lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the lock file {0}")]
    Unsafe(#[from] UnsafeFile),
}

impl LockError {
    /// Held: [`Exit::Locked`]. A link in the lock file's place: [`Exit::Usage`]
    /// (an operator must remove it; restarting cannot help). Else
    /// [`Exit::ActionFailed`].
    pub fn exit(&self) -> Exit {
        match self {
            LockError::Held { .. } => Exit::Locked,
            LockError::Unsafe(_) => Exit::Usage,
            LockError::Io { .. } => Exit::ActionFailed,
        }
    }
}

/// Held while the value lives.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    pub fn lock_path(database: &Path) -> PathBuf {
        state_files::sibling(database, ".lock")
    }

    pub fn acquire(database: &Path) -> Result<InstanceLock, LockError> {
        let path = Self::lock_path(database);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => LockError::Unsafe(UnsafeFile::symlink(&path)),
                _ => io(e),
            })?;
        state_files::check_opened(&path, &file.metadata().map_err(io)?)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "unknown pid".to_string(),
                    pid => format!("pid {pid}"),
                };
                return Err(LockError::Held {
                    database: database.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // The pid only makes the "held" message friendlier; the lock is the flock.
        // On a full disk it cannot be written, and the database then says so.
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        Ok(InstanceLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let first = InstanceLock::acquire(&db).unwrap();
        assert_eq!(first.path(), dir.path().join("state.db.lock"));
        let err = InstanceLock::acquire(&db).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("state.db"), "{msg}");
        drop(first);
        InstanceLock::acquire(&db).unwrap();
    }

    #[test]
    fn the_lock_file_is_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let lock = InstanceLock::acquire(&dir.path().join("state.db")).unwrap();
        let mode = std::fs::metadata(lock.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
