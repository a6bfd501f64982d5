//! Test rig: isolated worlds of simulator, Vault and SQLite.

pub mod bin;
pub mod vault;
pub mod vault_proxy;
pub mod world;
