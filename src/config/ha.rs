//! `[ha]`: several instances, one sweeping. Without the table the daemon runs
//! alone, as it always has; with it, each instance takes part in the leader
//! lease (`crate::lease`) under its `instance_id`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::instance::{bad_instance_id, host_name};

/// The shortest lease: renewed every second.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(3);
/// The longest lease: a dead leader is replaced within about this long.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(600);

fn lease_ttl() -> Duration {
    Duration::from_secs(30)
}

/// `[ha]` as written. Messages call it `Ha`.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "struct Ha", deny_unknown_fields)]
pub(super) struct HaTable {
    instance_id: Option<String>,
    #[serde(default = "lease_ttl", with = "humantime_serde")]
    lease_ttl: Duration,
}

/// `[ha]`, checked, with the instance id resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// This instance's name in the lease (and in `_audit/<instance_id>`):
    /// unique among the instances sharing a Vault path prefix.
    pub instance_id: String,
    pub lease_ttl: Duration,
}

impl HaTable {
    pub(super) fn resolve(self, file: &Path) -> Result<HaConfig, ConfigError> {
        let instance_id = match self.instance_id {
            Some(id) => id,
            None => host_name().ok_or_else(|| {
                ConfigError::invalid(
                    file,
                    "ha.instance_id",
                    "is not set and the host name cannot be read: set it",
                )
            })?,
        };
        if let Some(problem) = bad_instance_id(&instance_id) {
            return Err(ConfigError::invalid(
                file,
                "ha.instance_id",
                format!("\"{}\" {problem}", crate::escape::escaped(&instance_id)),
            ));
        }
        if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&self.lease_ttl) {
            return Err(ConfigError::invalid(
                file,
                "ha.lease_ttl",
                format!(
                    "{} is out of range: between {} and {}",
                    humantime::format_duration(self.lease_ttl),
                    humantime::format_duration(MIN_LEASE_TTL),
                    humantime::format_duration(MAX_LEASE_TTL)
                ),
            ));
        }
        Ok(HaConfig {
            instance_id,
            lease_ttl: self.lease_ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(id: Option<&str>, ttl: u64) -> HaTable {
        HaTable {
            instance_id: id.map(str::to_string),
            lease_ttl: Duration::from_secs(ttl),
        }
    }

    #[test]
    fn instance_ids_must_be_path_safe() {
        let f = Path::new("c.toml");
        assert!(table(Some("node-a.example_1"), 30).resolve(f).is_ok());
        for bad in ["", "..", "a/b", "a b", "é", &"x".repeat(65)] {
            let e = table(Some(bad), 30).resolve(f).unwrap_err().to_string();
            assert!(e.contains("ha.instance_id"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_host_name_is_the_default_id() {
        let ha = table(None, 30).resolve(Path::new("c.toml")).unwrap();
        assert_eq!(ha.instance_id, host_name().unwrap());
    }

    #[test]
    fn the_ttl_is_bounded() {
        let f = Path::new("c.toml");
        assert!(table(Some("a"), 3).resolve(f).is_ok());
        let e = table(Some("a"), 2).resolve(f).unwrap_err().to_string();
        assert!(
            e.contains("ha.lease_ttl") && e.contains("out of range"),
            "{e}"
        );
        assert!(table(Some("a"), 601).resolve(f).is_err());
    }
}
