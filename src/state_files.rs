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
//! Nothing here opens an existing database, its `-wal` or its `-shm`: closing
//! any descriptor of those files in the daemon's process would drop every POSIX
//! lock the process holds on them, SQLite's included, and another process could
//! then take the database for unused and remove its WAL (RELIABILITY.md). The
//! one exception is [`create_private`], which opens a database file only when it
//! creates it, before any connection of this process can hold a lock on it.
//!
//! The files are private to the daemon's user (SPEC section 6) whatever the
//! umask: the audit log names every key and lineage. SQLite would create the
//! database `0644` under the usual umask 022, so the daemon creates the empty
//! file itself, mode `0600` set on the descriptor; SQLite then gives the `-wal`
//! and `-shm` the database's own mode (its unix VFS copies it and `fchmod`s them
//! to it). A database found with looser modes is not changed behind the
//! operator's back: [`loose_modes`] names the `chmod` to run, and the daemon logs it.

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

/// The mode of every file the daemon creates beside its database.
pub const PRIVATE_FILE: u32 = 0o600;

/// Creates the database file at `path`, empty and mode `0600` whatever the
/// umask, unless something is there already (then nothing is done: that file is
/// judged by [`check`] and [`loose_modes`]). Never follows a link. Whether it
/// created the file.
pub fn create_private(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        // The umask may have taken bits off (0277 leaves 0400): set the mode on
        // the descriptor, so it is exactly 0600.
        Ok(file) => file
            .set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE))
            .map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// A warning naming the `chmod` to run if the database, its `-wal`, its `-shm`
/// or its `.lock` can be read or written by group or others; None if all that
/// exist are private. Looked at by name, never opened.
pub fn loose_modes(database: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let [db, wal, shm] = database_files(database);
    let loose: Vec<(PathBuf, u32)> = [db, wal, shm, sibling(database, ".lock")]
        .into_iter()
        .filter_map(|p| {
            let meta = std::fs::symlink_metadata(&p).ok()?;
            let mode = meta.permissions().mode() & 0o777;
            (meta.is_file() && mode & 0o077 != 0).then_some((p, mode))
        })
        .collect();
    if loose.is_empty() {
        return None;
    }
    let listed: Vec<String> = loose
        .iter()
        .map(|(p, mode)| format!("{} is {mode:04o}", p.display()))
        .collect();
    let paths: Vec<String> = loose
        .iter()
        .map(|(p, _)| shell_quoted(&p.display().to_string()))
        .collect();
    Some(format!(
        "state files readable by other users of this host: {}; the audit log names every key: run `chmod 600 {}`",
        listed.join(", "),
        paths.join(" ")
    ))
}

/// `text` as one shell word (a path with a space or a quote still pastes).
fn shell_quoted(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
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
    fn a_created_database_is_0600_and_an_existing_one_is_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        assert!(create_private(&db).unwrap());
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!create_private(&db).unwrap(), "already there");
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o644,
            "not changed behind the operator's back"
        );
        // A link in its place is neither followed nor created through.
        let victim = dir.path().join("victim");
        let linked = dir.path().join("linked.db");
        symlink(&victim, &linked).unwrap();
        assert!(!create_private(&linked).unwrap());
        assert!(!victim.exists());
    }

    #[test]
    fn loose_modes_name_each_file_and_the_chmod_to_run() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("my state.db");
        assert_eq!(loose_modes(&db), None, "nothing there");
        for (p, mode) in [(db.clone(), 0o644), (sibling(&db, "-wal"), 0o600)] {
            std::fs::write(&p, b"").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let lock = sibling(&db, ".lock");
        std::fs::write(&lock, b"").unwrap();
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o620)).unwrap();
        let warning = loose_modes(&db).unwrap();
        let quoted = |p: &Path| format!("'{}'", p.display());
        assert!(
            warning.contains(&format!(
                "run `chmod 600 {} {}`",
                quoted(&db),
                quoted(&lock)
            )),
            "{warning}"
        );
        assert!(warning.contains("state.db is 0644"), "{warning}");
        assert!(
            !warning.contains("-wal"),
            "the private WAL is fine: {warning}"
        );
        for p in [&db, &lock] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(loose_modes(&db), None);
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
