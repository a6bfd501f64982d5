//! One module per command. Each returns an [`Exit`](crate::exit::Exit) and prints
//! its own human-facing output; errors are reported once, here at the edge.

pub mod check_config;
pub mod daemon;
pub mod demo;
pub mod history;
pub mod once;
pub mod report;
pub mod simulate;
pub mod status;
pub mod summary;

use std::path::Path;

use crate::config::{Config, Credentials};
use crate::escape::escaped;
use crate::exit::Exit;
use crate::lock::{InstanceLock, LockError};
use crate::logging;
use crate::services::{self, DbAccess};

/// Prints `error: <message>` on stderr, [`escaped`]: a message may quote a key
/// name, a MASV or Vault answer or a line of the config file.
pub(crate) fn fail(message: impl std::fmt::Display) {
    eprintln!("error: {}", escaped(message));
}

/// Loads and validates the config, sets up logging, and reads the secrets it names.
/// On failure prints the error (file, field, problem) and returns exit code 2.
pub fn load(path: &Path, debug: bool) -> Result<(Config, Credentials), Exit> {
    let config = Config::load(path).map_err(|e| {
        fail(e);
        Exit::Usage
    })?;
    logging::init(config.log.format, &config.log.level, debug);
    crate::plain_http::warn_opt_outs(&config);
    let credentials = Credentials::resolve(&config).map_err(|e| {
        fail(e);
        Exit::Usage
    })?;
    Ok((config, credentials))
}

/// Loads and validates the config only (commands that need no secrets).
pub fn load_config(path: &Path) -> Result<Config, Exit> {
    Config::load(path).map_err(|e| {
        fail(e);
        Exit::Usage
    })
}

/// The operator's view from the local database; no database yet means no keys yet.
pub async fn offline_view(path: &Path) -> Result<crate::view::View, Exit> {
    let config = load_config(path)?;
    let now = chrono::Utc::now();
    let records = services::open_records(&config.database.path, DbAccess::ReadOnlyIfPresent)
        .await
        .map_err(|e| {
            fail(&e.message);
            e.exit
        })?;
    let Some(records) = records else {
        return Ok(crate::view::View {
            generated_at: now,
            listed_at: None,
            lineages: vec![],
        });
    };
    crate::view::build(&config, &records, now)
        .await
        .map_err(|e| {
            fail(e);
            Exit::ActionFailed
        })
}

/// Takes the instance lock on the config's database, or says why not.
pub fn lock(config: &Config) -> Result<InstanceLock, Exit> {
    InstanceLock::acquire(&config.database.path).map_err(|e| {
        match e {
            LockError::Held { .. } => fail(&e),
            _ => fail(format_args!("database.path: {e}")),
        }
        e.exit()
    })
}
