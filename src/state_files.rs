//! The files the daemon writes beside its database (the database itself, its
//! `-wal` and `-shm`, the `.lock`) must be the files their names say.
//!
//! The daemon creates, truncates and rewrites these files with its own rights.
//! Were one of them a symbolic link, or a second hard link, to another file, that
//! other file would be what gets overwritten: a `state.db.lock` planted as a link
//! truncated its target. So a link in the place of any of them is refused, naming
//! the path, before anything is opened. Only the last component is looked at:
//! the directories above may well be links (systemd's `DynamicUser=` makes
//! `/var/lib/<name>` one).
//!
//! The lock file is opened with `O_NOFOLLOW` and judged on its open descriptor,
//! so nothing can be swapped in between. SQLite opens the database by name: there
//! the check by name leaves the moment between it and SQLite's open, in a
//! directory only the daemon's user can write (`StateDirectoryMode=0700`).
//!
//! Nothing here opens the database, its `-wal` or its `-shm`: closing any
//! descriptor of those files in the daemon's process would drop every POSIX
//! lock the process holds on them, SQLite's included, and another process could
//! then take the database for unused and remove its WAL (RELIABILITY.md).

use std::fs::Metadata;
use std::path::{Path, PathBuf};

/// A file that is not safe to write through its name.
#[derive(Debug, thiserror::Error)]
pub enum UnsafeFile {
    #[error("{} is a symbolic link{}: refusing to follow it; remove the link (the daemon creates the file itself)", path.display(), target.as_ref().map(|t| format!(" to {}", t.display())).unwrap_or_default())]
    Symlink {
        path: PathBuf,
        target: Option<PathBuf>,
    },
    #[error("{} has {links} hard links: refusing to write a file that is also another name; remove this one", path.display())]
    HardLinked { path: PathBuf, links: u64 },
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
}

impl UnsafeFile {
    /// A symbolic link found at `path` (by `O_NOFOLLOW`'s ELOOP, or by name).
    pub fn symlink(path: &Path) -> Self {
        UnsafeFile::Symlink {
            path: path.to_path_buf(),
            target: std::fs::read_link(path).ok(),
        }
    }
}

/// Judges what is at `path` by its name. Nothing there is fine (the daemon
/// creates it); a path that cannot be looked at is left to the open that
/// follows, which fails with its own error.
pub fn check(path: &Path) -> Result<(), UnsafeFile> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(UnsafeFile::symlink(path)),
        Ok(meta) => check_opened(path, &meta),
        Err(_) => Ok(()),
    }
}

/// Judges an already opened file (`meta` from its descriptor): a regular file
/// with no other name.
pub fn check_opened(path: &Path, meta: &Metadata) -> Result<(), UnsafeFile> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return Err(UnsafeFile::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if meta.nlink() > 1 {
        return Err(UnsafeFile::HardLinked {
            path: path.to_path_buf(),
            links: meta.nlink(),
        });
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name (`state.db` + `-wal`).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The database and the two files SQLite keeps beside it in WAL mode.
pub fn database_files(database: &Path) -> [PathBuf; 3] {
    [
        database.to_path_buf(),
        sibling(database, "-wal"),
        sibling(database, "-shm"),
    ]
}

/// [`check`] on the database and its `-wal` and `-shm`.
pub fn check_database(database: &Path) -> Result<(), UnsafeFile> {
    database_files(database).iter().try_for_each(|p| check(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_missing_or_plain_file_passes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        check_database(&db).unwrap();
        std::fs::write(&db, b"").unwrap();
        check_database(&db).unwrap();
    }

    #[test]
    fn links_in_place_of_any_database_file_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let db = dir.path().join("state.db");
        for planted in database_files(&db) {
            symlink(&victim, &planted).unwrap();
            let msg = check_database(&db).unwrap_err().to_string();
            assert!(msg.contains(&planted.display().to_string()), "{msg}");
            assert!(msg.contains("symbolic link to"), "{msg}");
            std::fs::remove_file(&planted).unwrap();

            std::fs::hard_link(&victim, &planted).unwrap();
            let msg = check_database(&db).unwrap_err().to_string();
            assert!(msg.contains("2 hard links"), "{msg}");
            std::fs::remove_file(&planted).unwrap();
        }
        std::fs::create_dir(&db).unwrap();
        let msg = check_database(&db).unwrap_err().to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn directories_above_may_be_links() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("private");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("state.db"), b"").unwrap();
        let linked = dir.path().join("state");
        symlink(&real, &linked).unwrap();
        check_database(&linked.join("state.db")).unwrap();
    }
}
