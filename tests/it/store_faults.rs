//! When the state database cannot record an intent, MASV is not touched.

use chrono::Duration;
use masv_key_rotator::engine::SweepMode;
use masv_key_rotator::exit::Exit;
use masv_key_rotator::masv::KeyState;
use masv_key_rotator::store::Store;
use sqlx::Connection;

use crate::helpers::world::World;

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
        r.errors
            .iter()
            .any(|e| e.contains("state database") || e.contains("readonly")),
        "{:?}",
        r.errors
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
        r.errors.iter().any(|e| e.contains("locked")),
        "{:?}",
        r.errors
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
