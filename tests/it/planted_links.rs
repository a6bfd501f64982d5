//! Links planted where the daemon keeps its state (`state.db`, its `-wal` and
//! `-shm`, `state.db.lock`): the binary refuses with exit 2, names the path, and
//! leaves the link's target as it was.
//!
//! The refusals come before any network call, so MASV and Vault here are
//! addresses where nothing listens.

use std::path::{Path, PathBuf};

use crate::helpers::offline::Offline;

const PRECIOUS: &[u8] = b"not the daemon's to write\n";

struct Setup {
    offline: Offline,
    db: PathBuf,
    victim: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let offline = Offline::new();
        let victim = offline.dir.path().join("victim");
        std::fs::write(&victim, PRECIOUS).unwrap();
        Setup {
            db: offline.db.clone(),
            offline,
            victim,
        }
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        masv_key_rotator::state_files::sibling(&self.db, suffix)
    }

    /// Runs `masv-key-rotator --config … <command>`; asserts exit 2, an error
    /// naming `planted`, and the victim unchanged.
    async fn assert_refused(&self, command: &str, planted: &Path, what: &str) {
        let out = self.offline.run(&[command]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains(&planted.display().to_string()) && stderr.contains(what),
            "{command}: the error names {} and says {what:?}: {stderr}",
            planted.display()
        );
        assert_eq!(std::fs::read(&self.victim).unwrap(), PRECIOUS);
    }
}

#[tokio::test]
async fn a_lock_file_planted_as_a_symlink_is_refused_and_its_target_kept() {
    let s = Setup::new();
    let lock = s.sibling(".lock");
    std::os::unix::fs::symlink(&s.victim, &lock).unwrap();
    for command in ["once", "run"] {
        s.assert_refused(command, &lock, "symbolic link").await;
    }
}

#[tokio::test]
async fn a_lock_file_planted_as_a_hard_link_is_refused_and_its_target_kept() {
    let s = Setup::new();
    let lock = s.sibling(".lock");
    std::fs::hard_link(&s.victim, &lock).unwrap();
    s.assert_refused("once", &lock, "hard links").await;
}

#[tokio::test]
async fn a_database_file_planted_as_a_symlink_is_refused_and_its_target_kept() {
    let s = Setup::new();
    for planted in [s.db.clone(), s.sibling("-wal"), s.sibling("-shm")] {
        std::os::unix::fs::symlink(&s.victim, &planted).unwrap();
        s.assert_refused("once", &planted, "symbolic link").await;
        if planted == s.db {
            // The read-only commands open the database too.
            s.assert_refused("status", &planted, "symbolic link").await;
        }
        std::fs::remove_file(&planted).unwrap();
    }
}
