//! `[schedule]`: the sweep's cron expression, parsed once when the config is
//! read. The daemon's health check reads the parsed form; tokio-cron-scheduler
//! only takes text, so the text as written travels with it.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::ConfigError;

fn cron() -> String {
    "0 */5 * * * *".to_string()
}

/// `[schedule]` as written (messages call it `ScheduleConfig`, as they always have).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "struct ScheduleConfig", deny_unknown_fields)]
pub(super) struct ScheduleTable {
    #[serde(default = "cron")]
    cron: String,
}

impl Default for ScheduleTable {
    fn default() -> Self {
        Self { cron: cron() }
    }
}

impl ScheduleTable {
    pub(super) fn resolve(self, file: &Path) -> Result<ScheduleConfig, ConfigError> {
        match CronSchedule::parse(&self.cron) {
            Ok(cron) => Ok(ScheduleConfig { cron }),
            Err(e) => Err(ConfigError::invalid(
                file,
                "schedule.cron",
                format!(
                    "{:?} is not a seconds-first cron expression (e.g. \"0 */5 * * * *\"): {e}",
                    self.cron
                ),
            )),
        }
    }
}

/// `[schedule]`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleConfig {
    pub cron: CronSchedule,
}

/// A seconds-first cron expression, as tokio-cron-scheduler reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CronSchedule {
    /// As written in the file: what tokio-cron-scheduler is given.
    text: String,
    parsed: croner::Cron,
}

impl CronSchedule {
    /// Parses `text` the way tokio-cron-scheduler does.
    pub fn parse(text: &str) -> Result<Self, croner::errors::CronError> {
        let parsed = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(text)?;
        Ok(Self {
            text: text.to_string(),
            parsed,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The time between the next two runs after `from` (for health checks).
    pub fn interval_after(&self, from: DateTime<Utc>) -> Option<Duration> {
        let first = self.parsed.find_next_occurrence(&from, false).ok()?;
        let second = self.parsed.find_next_occurrence(&first, false).ok()?;
        (second - first).to_std().ok()
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
