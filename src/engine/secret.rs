//! A lineage's secret as the engine holds it: the value a consumer reads from
//! the secret store, and the version it was read at. The Vault adapter maps it
//! to its KV fields (docs/design.md, section 5).

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::model::VaultView;

/// A lineage's secret as stored in Vault (docs/design.md, section 5).
#[derive(Clone)]
pub struct LineageSecret {
    pub api_key: SecretString,
    pub key_id: String,
    pub key_name: String,
    pub team_id: String,
    pub expiry: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub rotated_at: DateTime<Utc>,
    pub rotation_id: String,
}

impl fmt::Debug for LineageSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineageSecret")
            .field("api_key", &"[REDACTED]")
            .field("key_id", &self.key_id)
            .field("key_name", &self.key_name)
            .field("team_id", &self.team_id)
            .field("expiry", &self.expiry)
            .field("created_at", &self.created_at)
            .field("rotated_at", &self.rotated_at)
            .field("rotation_id", &self.rotation_id)
            .finish()
    }
}

/// A secret and the KV version it was read from.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    pub version: u64,
    pub secret: LineageSecret,
}

impl StoredSecret {
    /// What the engine remembers of it: which key, at which version, by which rotation.
    pub fn view(&self) -> VaultView {
        VaultView {
            key_id: self.secret.key_id.clone(),
            version: self.version,
            rotation_id: Some(self.secret.rotation_id.clone()),
        }
    }
}
