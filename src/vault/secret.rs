//! A lineage's secret: as the engine holds it, and as its KV fields are
//! written (docs/design.md, section 5): timestamps as RFC 3339 with
//! milliseconds, an absent one as the zero time.

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::VaultError;

pub use crate::engine::secret::{LineageSecret, StoredSecret};

/// One entry of a secret's KV history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u64,
    pub created_time: DateTime<Utc>,
    pub destroyed: bool,
    pub deleted: bool,
}

/// The KV fields, as written. The plain-text copy of the key is wiped on drop.
#[derive(Serialize, Deserialize)]
pub(super) struct Fields {
    api_key: String,
    key_id: String,
    key_name: String,
    team_id: String,
    expiry: String,
    created_at: String,
    rotated_at: String,
    rotation_id: String,
}

impl Drop for Fields {
    fn drop(&mut self) {
        self.api_key.zeroize();
    }
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_ts(t: Option<DateTime<Utc>>) -> String {
    t.map(ts).unwrap_or_else(|| ZERO_TIME.to_string())
}

fn parse_ts(path: &str, field: &str, s: &str) -> Result<Option<DateTime<Utc>>, VaultError> {
    crate::masv::time::parse(s).map_err(|e| VaultError::Malformed {
        path: path.to_string(),
        reason: format!("{field}: {e}"),
    })
}

impl Fields {
    pub(super) fn from_secret(s: &LineageSecret) -> Self {
        Fields {
            api_key: s.api_key.expose_secret().to_string(),
            key_id: s.key_id.clone(),
            key_name: s.key_name.clone(),
            team_id: s.team_id.clone(),
            expiry: opt_ts(s.expiry),
            created_at: opt_ts(s.created_at),
            rotated_at: ts(s.rotated_at),
            rotation_id: s.rotation_id.clone(),
        }
    }

    pub(super) fn into_secret(self, path: &str) -> Result<LineageSecret, VaultError> {
        let rotated_at = parse_ts(path, "rotated_at", &self.rotated_at)?.ok_or_else(|| {
            VaultError::Malformed {
                path: path.to_string(),
                reason: "rotated_at is the zero time".into(),
            }
        })?;
        Ok(LineageSecret {
            api_key: SecretString::from(self.api_key.clone()),
            key_id: self.key_id.clone(),
            key_name: self.key_name.clone(),
            team_id: self.team_id.clone(),
            expiry: parse_ts(path, "expiry", &self.expiry)?,
            created_at: parse_ts(path, "created_at", &self.created_at)?,
            rotated_at,
            rotation_id: self.rotation_id.clone(),
        })
    }
}

/// The first field in which `read` (a version read back) differs from
/// `written`, key included; timestamps compare to the millisecond they are
/// stored with.
pub(super) fn first_difference(
    written: &LineageSecret,
    read: &LineageSecret,
) -> Option<&'static str> {
    let same_time = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| {
        a.map(|t| t.timestamp_millis()) == b.map(|t| t.timestamp_millis())
    };
    if read.api_key.expose_secret() != written.api_key.expose_secret() {
        Some("api_key")
    } else if read.key_id != written.key_id {
        Some("key_id")
    } else if read.key_name != written.key_name {
        Some("key_name")
    } else if read.team_id != written.team_id {
        Some("team_id")
    } else if read.rotation_id != written.rotation_id {
        Some("rotation_id")
    } else if !same_time(read.expiry, written.expiry) {
        Some("expiry")
    } else if !same_time(read.created_at, written.created_at) {
        Some("created_at")
    } else if !same_time(Some(read.rotated_at), Some(written.rotated_at)) {
        Some("rotated_at")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn secret() -> LineageSecret {
        let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        LineageSecret {
            api_key: SecretString::from("key-value".to_string()),
            key_id: "01FB4S68W7RAW4M89801H1C4CR".into(),
            key_name: "ci-build".into(),
            team_id: "01FB4S68W7RAW4M89801H1C4CS".into(),
            expiry: Some(at + chrono::Duration::days(90)),
            created_at: None,
            rotated_at: at,
            rotation_id: "r1".into(),
        }
    }

    #[test]
    fn fields_round_trip_to_the_millisecond() {
        let mut written = secret();
        written.rotated_at += chrono::Duration::microseconds(1_234);
        let read = Fields::from_secret(&written)
            .into_secret("kv/data/p/t/ci-build")
            .unwrap();
        assert_eq!(first_difference(&written, &read), None);
        assert_eq!(read.created_at, None, "the zero time reads back as none");
    }

    #[test]
    fn the_first_differing_field_is_named() {
        let written = secret();
        let mut read = secret();
        read.api_key = SecretString::from("other".to_string());
        read.rotation_id = "r2".into();
        assert_eq!(first_difference(&written, &read), Some("api_key"));
        read.api_key = written.api_key.clone();
        assert_eq!(first_difference(&written, &read), Some("rotation_id"));
        read.rotation_id = written.rotation_id.clone();
        read.expiry = None;
        assert_eq!(first_difference(&written, &read), Some("expiry"));
    }
}
