//! The real adapters, one at a time: the MASV client, the Vault store, the state
//! database and the webhook notifier, each with the exit code and message its
//! failure to start deserves. [`crate::app::App`] puts them together.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{Config, VaultCredentials};
use crate::exit::{CommandError, Exit};
use crate::lease::{LeaseKeeper, Timing};
use crate::masv::{MasvClient, MasvSettings};
use crate::notify::{Notifier, NotifySettings, Signer};
use crate::store::Records;
use crate::store::Store;
use crate::traffic::Traffic;
use crate::vault::{VaultSettings, VaultStore};

/// How the state database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbAccess {
    /// Open (creating the file if needed) and migrate.
    ReadWrite,
    /// Read what is there, write nothing; a missing file means "no records yet".
    ReadOnlyIfPresent,
}

pub async fn open_records(path: &Path, access: DbAccess) -> Result<Option<Records>, CommandError> {
    let opened = match access {
        DbAccess::ReadWrite => Store::open(path).await.map(Some),
        // Anything at the name, even a dangling link, is "present" (and judged).
        DbAccess::ReadOnlyIfPresent if path.symlink_metadata().is_err() => Ok(None),
        DbAccess::ReadOnlyIfPresent => Store::open_read_only(path).await.map(Some),
    };
    opened
        .map(|s| s.map(Records::new))
        .map_err(|e| database_error(path, e))
}

/// Opens (creating and migrating) the database for writing.
pub async fn open_store(path: &Path) -> Result<Store, CommandError> {
    Store::open(path).await.map_err(|e| database_error(path, e))
}

fn database_error(path: &Path, e: crate::store::StoreError) -> CommandError {
    CommandError::new(e.exit(), format!("database.path {}: {e}", path.display()))
}

/// Keeps the audit anchor for `config`'s instance up to date over `store` and
/// `vault`; a config whose instance cannot be named is a usage error.
pub fn anchorer(
    config: &Config,
    store: Store,
    vault: VaultStore,
) -> Result<crate::anchor::Anchorer, CommandError> {
    let instance = config
        .instance_id()
        .map_err(|e| CommandError::usage(format!("{}: {e}", config.source.display())))?;
    Ok(crate::anchor::Anchorer::new(store, vault, instance))
}

/// The Vault settings a config asks for.
/// The leader lease's keeper for `[ha]`, on the system clock, over `vault`.
pub fn lease_keeper(ha: &crate::config::HaConfig, vault: VaultStore) -> LeaseKeeper<VaultStore> {
    LeaseKeeper::new(
        vault,
        ha.instance_id.clone(),
        Timing { ttl: ha.lease_ttl },
        std::sync::Arc::new(crate::clock::SystemClock),
    )
}

pub fn vault_settings(config: &Config, credentials: VaultCredentials) -> VaultSettings {
    VaultSettings::from_config(&config.vault, credentials)
}

/// The MASV client (login happens on first use), counting into `traffic`.
pub fn masv_client(settings: MasvSettings, traffic: Traffic) -> Result<MasvClient, CommandError> {
    MasvClient::counted(settings, traffic)
        .map_err(|e| CommandError::usage(format!("masv.base_url: {e}")))
}

/// Connects to Vault, counting requests into `traffic`.
pub async fn connect_vault(
    settings: VaultSettings,
    traffic: Traffic,
) -> Result<VaultStore, CommandError> {
    VaultStore::connect_counted(settings, traffic)
        .await
        .map_err(|e| {
            let exit = if e.is_unreachable() {
                Exit::Unreachable
            } else {
                Exit::Usage
            };
            CommandError::new(exit, format!("vault: {e}"))
        })
}

/// The webhook notifier `[notify]` asks for, if any, signing with
/// `webhook_secret` when the config names one (`path` is the config file, for
/// the message).
pub fn alerts(
    config: &Config,
    path: &Path,
    webhook_secret: Option<SecretString>,
) -> Result<Option<Notifier>, CommandError> {
    config
        .notify
        .as_ref()
        .map(|n| {
            let settings = NotifySettings {
                timeout: Duration::from_secs(10),
                events: n.event_filter(),
                signer: webhook_secret.map(Signer::new),
                ..NotifySettings::default()
            };
            Notifier::with_settings(&n.webhook_url, settings)
        })
        .transpose()
        .map_err(|e| CommandError::usage(format!("{}: notify.webhook_url: {e}", path.display())))
}
