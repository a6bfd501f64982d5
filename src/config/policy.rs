//! `[policy]` and `[team.policy]`: the tables as written, resolved at parse
//! time into each team's final [`Policy`] (the engine's type).
//!
//! `[policy]` fills in the documented defaults for what it leaves out;
//! `[team.policy]` overrides single fields of that for one team. Each result is
//! checked where it was made, so an error names the table that made it wrong.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::engine::Policy;

const DAY: u64 = 24 * 60 * 60;

fn rotate_before_expiry() -> Duration {
    Duration::from_secs(7 * DAY)
}
fn max_age() -> Duration {
    Duration::from_secs(90 * DAY)
}
fn new_key_lifetime() -> Duration {
    Duration::from_secs(30 * DAY)
}
fn grace_period() -> Duration {
    Duration::from_secs(60 * 60)
}
fn idle_before_deactivate() -> Duration {
    Duration::from_secs(15 * 60)
}
fn max_overlap() -> Duration {
    Duration::from_secs(7 * DAY)
}
fn delete_after() -> Duration {
    Duration::from_secs(7 * DAY)
}
fn unused_after() -> Duration {
    Duration::from_secs(30 * DAY)
}

/// The documented defaults (docs/design.md, section 4): what a config without
/// `[policy]` gets.
impl Default for Policy {
    fn default() -> Self {
        PolicyTable::default().into()
    }
}

/// `[policy]` as written, every missing field at its default. Messages call
/// it `Policy`, as they always have.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(expecting = "struct Policy", deny_unknown_fields)]
pub(super) struct PolicyTable {
    #[serde(default = "rotate_before_expiry", with = "humantime_serde")]
    rotate_before_expiry: Duration,
    #[serde(default = "max_age", with = "humantime_serde")]
    max_age: Duration,
    #[serde(default = "new_key_lifetime", with = "humantime_serde")]
    new_key_lifetime: Duration,
    #[serde(default = "grace_period", with = "humantime_serde")]
    grace_period: Duration,
    #[serde(default = "idle_before_deactivate", with = "humantime_serde")]
    idle_before_deactivate: Duration,
    #[serde(default = "max_overlap", with = "humantime_serde")]
    max_overlap: Duration,
    #[serde(default = "delete_after", with = "humantime_serde")]
    delete_after: Duration,
    #[serde(default = "unused_after", with = "humantime_serde")]
    unused_after: Duration,
}

impl Default for PolicyTable {
    fn default() -> Self {
        Self {
            rotate_before_expiry: rotate_before_expiry(),
            max_age: max_age(),
            new_key_lifetime: new_key_lifetime(),
            grace_period: grace_period(),
            idle_before_deactivate: idle_before_deactivate(),
            max_overlap: max_overlap(),
            delete_after: delete_after(),
            unused_after: unused_after(),
        }
    }
}

impl From<PolicyTable> for Policy {
    fn from(t: PolicyTable) -> Self {
        Policy {
            rotate_before_expiry: t.rotate_before_expiry,
            max_age: t.max_age,
            new_key_lifetime: t.new_key_lifetime,
            grace_period: t.grace_period,
            idle_before_deactivate: t.idle_before_deactivate,
            max_overlap: t.max_overlap,
            delete_after: t.delete_after,
            unused_after: t.unused_after,
        }
    }
}

impl PolicyTable {
    /// The policy every team starts from, checked as `policy`.
    pub(super) fn resolve(self, file: &Path) -> Result<Policy, ConfigError> {
        let policy = Policy::from(self);
        check(&policy, file, "policy")?;
        Ok(policy)
    }
}

/// `[team.policy]` as written: every field optional, the rest from `[policy]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyOverride {
    #[serde(default, with = "humantime_serde")]
    rotate_before_expiry: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_age: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    new_key_lifetime: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    grace_period: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    idle_before_deactivate: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_overlap: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    delete_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    unused_after: Option<Duration>,
}

impl PolicyOverride {
    /// `base` with this override's fields laid over it, checked as `at`
    /// (the table's dotted path, e.g. `team[0].policy`).
    pub(super) fn resolve(
        &self,
        base: Policy,
        file: &Path,
        at: &str,
    ) -> Result<Policy, ConfigError> {
        let policy = Policy {
            rotate_before_expiry: self
                .rotate_before_expiry
                .unwrap_or(base.rotate_before_expiry),
            max_age: self.max_age.unwrap_or(base.max_age),
            new_key_lifetime: self.new_key_lifetime.unwrap_or(base.new_key_lifetime),
            grace_period: self.grace_period.unwrap_or(base.grace_period),
            idle_before_deactivate: self
                .idle_before_deactivate
                .unwrap_or(base.idle_before_deactivate),
            max_overlap: self.max_overlap.unwrap_or(base.max_overlap),
            delete_after: self.delete_after.unwrap_or(base.delete_after),
            unused_after: self.unused_after.unwrap_or(base.unused_after),
        };
        check(&policy, file, at)?;
        Ok(policy)
    }
}

/// Checks the relations between fields; `at` is the table's dotted path.
fn check(policy: &Policy, file: &Path, at: &str) -> Result<(), ConfigError> {
    let named = |field: &str| format!("{at}.{field}");
    for (field, value) in [
        ("max_age", policy.max_age),
        ("new_key_lifetime", policy.new_key_lifetime),
        ("max_overlap", policy.max_overlap),
    ] {
        if value.is_zero() {
            return Err(ConfigError::invalid(
                file,
                named(field),
                "must be greater than zero",
            ));
        }
    }
    if policy.rotate_before_expiry >= policy.new_key_lifetime {
        return Err(ConfigError::invalid(
            file,
            named("rotate_before_expiry"),
            format!(
                "must be shorter than new_key_lifetime ({}), or every new key would be due at once",
                humantime::format_duration(policy.new_key_lifetime)
            ),
        ));
    }
    if policy.max_overlap < policy.grace_period {
        return Err(ConfigError::invalid(
            file,
            named("max_overlap"),
            format!(
                "must be at least grace_period ({})",
                humantime::format_duration(policy.grace_period)
            ),
        ));
    }
    Ok(())
}
