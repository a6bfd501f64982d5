//! The configuration file (docs/design.md, section 3): read once, into checked
//! types.
//!
//! Parsing is strict (`deny_unknown_fields`) because a misspelt policy field that
//! silently fell back to its default could keep a leaked key alive for months.
//! Every error names the file, the field (a dotted path such as `policy.max_age`)
//! and what is wrong, so an operator can fix it without reading code.
//!
//! What comes out of [`Config::parse`] needs no second look: the schedule is a
//! parsed [`CronSchedule`], each team holds its compiled name patterns and its
//! final [`Policy`], and Vault has a timeout of its own ([`VAULT_TIMEOUT`]).
//!
//! * `error` — [`ConfigError`], and how a TOML error names its field;
//! * `endpoints` — `[masv]` and `[vault]`;
//! * `schedule` — `[schedule]`;
//! * `policy` — `[policy]` and `[team.policy]`, resolved into [`Policy`];
//! * `teams` — `[[team]]`;
//! * `sections` — `[database]`, `[log]`, `[metrics]`, `[notify]`;
//! * `ha` — `[ha]`: the instance id and the lease's time to live;
//! * `secrets` — the secrets the file names, read from files or the environment.
//! * `checks` — URL, path and "exactly one of" checks several tables share.
//!
//! Secrets are never stored in the file itself: the file names where they live
//! (`*_file` or `*_env`), and [`Credentials::resolve`] reads them into
//! [`secrecy::SecretString`]s.

mod checks;
mod endpoints;
mod error;
mod ha;
mod instance;
mod policy;
mod schedule;
mod secrets;
mod sections;
mod teams;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::engine::Policy;
pub use endpoints::{AppRoleConfig, MasvConfig, VaultConfig, VAULT_TIMEOUT};
pub use error::ConfigError;
pub use ha::HaConfig;
pub use instance::host_name;
pub use schedule::{CronSchedule, ScheduleConfig};
pub use secrets::{Credentials, SecretSource, VaultCredentials};
pub use sections::{DatabaseConfig, LogConfig, LogFormat, MetricsConfig, NotifyConfig};
pub use teams::{managed_teams, TeamConfig};

/// Where the config is looked up when `--config` is not given.
pub const ENV_CONFIG_PATH: &str = "MASV_KEY_ROTATOR_CONFIG";
/// The last resort config path.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/masv-key-rotator/config.toml";

/// The whole file, checked and resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub masv: MasvConfig,
    pub vault: VaultConfig,
    pub database: DatabaseConfig,
    pub schedule: ScheduleConfig,
    /// Each with its final policy (`[policy]` with its `[team.policy]` over it).
    pub teams: Vec<TeamConfig>,
    pub log: LogConfig,
    pub metrics: Option<MetricsConfig>,
    pub notify: Option<NotifyConfig>,
    /// Several instances, one sweeping (None: this one alone).
    pub ha: Option<HaConfig>,
    /// The file this config came from (not a TOML field).
    pub source: PathBuf,
}

/// The file as written (messages call it `Config`, as they always have).
#[derive(Debug, Deserialize)]
#[serde(expecting = "struct Config", deny_unknown_fields)]
struct ConfigFile {
    masv: MasvConfig,
    vault: VaultConfig,
    #[serde(default)]
    database: DatabaseConfig,
    #[serde(default)]
    schedule: schedule::ScheduleTable,
    #[serde(default)]
    policy: policy::PolicyTable,
    #[serde(rename = "team", default)]
    teams: Vec<teams::TeamTable>,
    #[serde(default)]
    log: LogConfig,
    metrics: Option<MetricsConfig>,
    notify: Option<NotifyConfig>,
    ha: Option<ha::HaTable>,
}

/// Resolves which config file to use: `--config`, else the environment, else the default.
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    match std::env::var_os(ENV_CONFIG_PATH) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

impl Config {
    /// Reads and parses a config file; one that group or others may write is
    /// refused before it is parsed.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let read = |source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read)?;
        // The mode of the file actually opened, not of whatever is at the name later.
        let mode = file.metadata().map_err(read)?.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(ConfigError::WritableByOthers {
                file: path.to_path_buf(),
                mode,
            });
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(read)?;
        Config::parse(&text, path)
    }

    /// Parses config text into checked types; `path` is only used in messages.
    /// Tables are checked in file order, so the first error is reported.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let file: ConfigFile = serde_path_to_error::deserialize(deserializer)
            .map_err(|e| ConfigError::from_toml(text, path, e))?;
        file.masv.check(path)?;
        file.vault.check(path, &file.masv)?;
        file.database.check(path)?;
        let schedule = file.schedule.resolve(path)?;
        let defaults = file.policy.resolve(path)?;
        let teams = teams::resolve(file.teams, defaults, path)?;
        file.log.check(path)?;
        if let Some(notify) = &file.notify {
            notify.check(path)?;
        }
        let ha = file.ha.map(|t| t.resolve(path)).transpose()?;
        Ok(Config {
            masv: file.masv,
            vault: file.vault,
            database: file.database,
            schedule,
            teams,
            log: file.log,
            metrics: file.metrics,
            notify: file.notify,
            ha,
            source: path.to_path_buf(),
        })
    }
}
