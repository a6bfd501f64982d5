//! Test rig: isolated worlds of simulator, Vault and SQLite.

pub mod bin;
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
