//! When the state database cannot record an intent, MASV is not touched.

use chrono::Duration;
use masv_key_rotator::engine::SweepMode;
use masv_key_rotator::exit::Exit;
use masv_key_rotator::masv::KeyState;
use masv_key_rotator::store::Store;
use sqlx::Connection;

use crate::helpers::bin;
use crate::helpers::world::World;

/// What a sweep reported as failed: its errors, and its failed actions'
/// details (a lineage whose first write to the database is a step's intent
/// reports the database's refusal there).
fn failures(r: &masv_key_rotator::engine::SweepReport) -> Vec<String> {
    r.errors
        .iter()
        .cloned()
        .chain(
            r.outcomes
                .iter()
                .filter(|o| !o.ok)
                .map(|o| o.detail.clone()),
        )
        .collect()
}

#[tokio::test]
async fn read_only_database_means_no_mutation_anywhere() {
    let w = World::new().await;
    let old = w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let ro = Store::open_read_only(&w.db_path).await.unwrap();
    let r = w
        .engine_with_store(ro)
        .await
        .sweep(&SweepMode::Apply)
        .await
        .unwrap();
    assert_ne!(r.exit(), Exit::Success);
    assert!(
        failures(&r)
            .iter()
            .any(|e| e.contains("state database") || e.contains("readonly")),
        "{:?}",
        failures(&r)
    );
    assert!(
        w.sim.mutations().is_empty(),
        "MASV was changed without an intent on record"
    );
    assert!(w.current("ci-build").await.is_none(), "Vault was changed");
    assert_eq!(w.state(&old.id), Some(KeyState::Active));
}

#[tokio::test]
async fn database_locked_by_another_process_means_no_mutation() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    // another process (a raw SQLite connection) holds an exclusive lock
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", w.db_path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = w.sweep().await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "waited the busy timeout"
    );
    assert_ne!(r.exit(), Exit::Success);
    assert!(
        failures(&r).iter().any(|e| e.contains("locked")),
        "{:?}",
        failures(&r)
    );
    assert!(
        w.sim.mutations().is_empty(),
        "MASV was changed without an intent on record"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    drop(other);
    // once the lock is gone, the same sweep goes through
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    w.assert_invariants().await;
}

/// A tmpfs of a given size, mounted for the length of a test.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs { dir }
    }

    fn resize(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn disk_full_stops_before_any_unrecorded_mutation_then_recovers() {
    let fs = SmallFs::mount("640k");
    let db = fs.dir.path().join("state.db");
    // The instance lock file stays from an earlier run of the daemon.
    std::fs::write(masv_key_rotator::lock::InstanceLock::lock_path(&db), b"").unwrap();
    let w = World::with_db_at(db).await;
    let lineages = 40;
    for i in 0..lineages {
        w.seed(
            &format!("ci-{i:02}"),
            Duration::days(10),
            Some(Duration::days(2)),
        );
    }
    // The file system fills up part-way through the sweep.
    let r = w.sweep().await;
    assert_ne!(r.exit(), Exit::Success);
    assert!(
        failures(&r).iter().any(|e| e.contains("full")),
        "the error says the disk is full: {:?}",
        failures(&r)
    );
    // No MASV create without its intent on disk: each create has a rotation row.
    let creates = w
        .sim
        .mutations()
        .iter()
        .filter(|m| m.method == "POST")
        .count() as i64;
    let intents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rotations")
        .fetch_one(w.store.pool())
        .await
        .unwrap();
    assert!(creates <= intents, "{creates} creates, {intents} intents");
    assert!(
        (creates as usize) < lineages,
        "the disk never filled: {creates} creates"
    );
    w.assert_safe_after_crash().await;

    // The binary says what is wrong, and where, with a failure exit code.
    let config = w.write_config("");
    let out = bin::once(&config).await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("full"), "{said}");
    let creates_after = w
        .sim
        .mutations()
        .iter()
        .filter(|m| m.method == "POST")
        .count() as i64;
    assert_eq!(
        creates_after, creates,
        "created a key with the disk full: {said}"
    );
    w.assert_safe_after_crash().await;

    // Space comes back: the next sweeps resume or roll back, and finish the job.
    fs.resize("64m");
    for _ in 0..3 {
        w.sweep().await;
    }
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.errors);
    w.assert_invariants().await;
    w.store.integrity_check().await.unwrap();
}
