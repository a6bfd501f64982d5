//! Test rig: isolated worlds of simulator, Vault and SQLite.

pub mod bao;
pub mod bao_agent;
pub mod bin;
pub mod consumers;
pub mod continuous;
pub mod offline;
pub mod vault;
pub mod vault_proxy;
pub mod world;

/// Writes `text` to `path` readable and writable by the owner only, whatever the
/// umask: the binary refuses a config writable by others and a secret file
/// readable by them.
pub fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// An audit row about `key_id` of lineage `ci-build` (a deactivation), as the
/// daemon would append it: for tests that write rows behind its back.
pub fn audit_entry(key_id: Option<&str>, detail: &str) -> masv_key_rotator::store::NewAuditEntry {
    use masv_key_rotator::store::{AuditAction, NewAuditEntry, Outcome};
    NewAuditEntry {
        at: chrono::Utc::now(),
        team_id: Some(world::TEAM.into()),
        key_id: key_id.map(str::to_string),
        key_name: Some("ci-build".into()),
        action: AuditAction::Deactivate,
        outcome: Outcome::Ok,
        detail: detail.into(),
        rotation_id: None,
        lease_token: None,
    }
}

/// The bytes of the database file and of its `-wal`, read by a child process.
///
/// Never with `std::fs::read` here: this process holds SQLite connections to the
/// same file, and closing any other descriptor of it drops every POSIX lock the
/// process holds on it, SQLite's included. A daemon closing its last connection
/// then sees no other user, checkpoints and removes the WAL under our open
/// connection, whose next reads see the database as it was before: rows the
/// daemon committed appear missing. (This made the kill matrix report, about
/// once in six runs, "a mutation with no audit row" that the database did hold.)
pub fn database_bytes(db_path: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let read = |path: std::path::PathBuf| {
        std::process::Command::new("cat")
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default()
    };
    (
        read(db_path.to_path_buf()),
        read(db_path.with_extension("db-wal")),
    )
}

/// `GET http://127.0.0.1:<port><path>`: the status and the body (the daemon's
/// `/metrics`, `/livez` and `/healthz`).
pub async fn local_get(port: u16, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
