//! Builds the real adapters from a config: the MASV client, the Vault store and
//! the state database, and the engine over them.

use std::path::Path;

use crate::clock::SharedClock;
use crate::config::{Config, Credentials};
use crate::engine::records::Records;
use crate::engine::{Engine, ManagedTeam};
use crate::exit::Exit;
use crate::masv::{MasvClient, MasvSettings};
use crate::store::Store;
use crate::vault::{VaultSettings, VaultStore};

/// A failure to start, with the exit code it deserves and a message for the operator.
#[derive(Debug)]
pub struct StartError {
    pub exit: Exit,
    pub message: String,
}

impl StartError {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

/// The production engine.
pub type ProdEngine = Engine<MasvClient, VaultStore>;

/// How the state database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbAccess {
    /// Open (creating the file if needed) and migrate.
    ReadWrite,
    /// Read what is there, write nothing; a missing file means "no records yet".
    ReadOnlyIfPresent,
}

pub async fn open_records(path: &Path, access: DbAccess) -> Result<Option<Records>, StartError> {
    let opened = match access {
        DbAccess::ReadWrite => Store::open(path).await.map(Some),
        // Anything at the name, even a dangling link, is "present" (and judged).
        DbAccess::ReadOnlyIfPresent if path.symlink_metadata().is_err() => Ok(None),
        DbAccess::ReadOnlyIfPresent => Store::open_read_only(path).await.map(Some),
    };
    opened
        .map(|s| s.map(Records::new))
        .map_err(|e| StartError::new(e.exit(), format!("database.path {}: {e}", path.display())))
}

/// Connects to MASV (client only; login happens on first use) and Vault.
pub async fn connect(
    config: &Config,
    credentials: Credentials,
) -> Result<(MasvClient, VaultStore), StartError> {
    let masv = MasvClient::new(MasvSettings::from_config(
        &config.masv,
        credentials.masv_password,
    ))
    .map_err(|e| StartError::new(Exit::Usage, format!("masv.base_url: {e}")))?;
    let vault_settings = VaultSettings::from_config(&config.vault, credentials.vault);
    let vault = VaultStore::connect(vault_settings).await.map_err(|e| {
        let exit = if e.is_unreachable() {
            Exit::Unreachable
        } else {
            Exit::Usage
        };
        StartError::new(exit, format!("vault: {e}"))
    })?;
    Ok((masv, vault))
}

/// Everything a sweep needs, built from the config.
pub async fn engine(
    config: &Config,
    credentials: Credentials,
    clock: SharedClock,
    access: DbAccess,
) -> Result<ProdEngine, StartError> {
    let records = open_records(&config.database.path, access).await?;
    let (masv, vault) = connect(config, credentials).await?;
    Ok(Engine::new(
        masv,
        vault,
        records,
        clock,
        ManagedTeam::from_config(config),
        config.masv.max_concurrency,
    ))
}
