//! The small tables: `[database]`, `[log]`, `[metrics]` and `[notify]`, with
//! their defaults and the checks serde cannot express.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::checks::check_url;
use super::ConfigError;
use crate::notify::{EventFilter, EventKind};

fn database_path() -> PathBuf {
    PathBuf::from("/var/lib/masv-key-rotator/state.db")
}
fn log_level() -> String {
    "info".to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default = "database_path")]
    pub path: PathBuf,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: database_path(),
        }
    }
}

impl DatabaseConfig {
    pub(super) fn check(&self, file: &Path) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                file,
                "database.path",
                "must not be empty",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: log_level(),
        }
    }
}

impl LogConfig {
    pub(super) fn check(&self, file: &Path) -> Result<(), ConfigError> {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            return Err(ConfigError::invalid(
                file,
                "log.level",
                format!(
                    "{:?} is not a level (error, warn, info, debug, trace) or filter",
                    self.level
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub webhook_url: String,
    /// Signs each POST; a secret file like the others (see `secrets`).
    pub webhook_secret_file: Option<PathBuf>,
    /// Which events are sent (an unknown name fails to parse); None: all.
    pub events: Option<Vec<EventKind>>,
}

impl NotifyConfig {
    pub(super) fn check(&self, file: &Path) -> Result<(), ConfigError> {
        check_url(file, "notify.webhook_url", &self.webhook_url)?;
        if self.events.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::invalid(
                file,
                "notify.events",
                "names no event: list at least one, or leave the field out to send all",
            ));
        }
        Ok(())
    }

    /// The events to send.
    pub fn event_filter(&self) -> EventFilter {
        match &self.events {
            Some(kinds) => EventFilter::only(kinds.iter().copied()),
            None => EventFilter::all(),
        }
    }
}
