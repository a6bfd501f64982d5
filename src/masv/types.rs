//! The shapes MASV sends and receives for API keys and logins.
//!
//! Unknown response fields are ignored (serde's default), so MASV can add fields
//! without breaking the daemon. The secret `key` appears in exactly one type,
//! [`CreatedApiKey`], and is held as a [`SecretString`] from the moment it is parsed.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::time::serde_opt;
use crate::engine::key::{CreatedKey, Key, NewKey};

pub use crate::engine::key::{KeyAction, KeyState};

/// An API key as listed or updated: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub state: KeyState,
    #[serde(with = "serde_opt", default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "serde_opt", default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// `None` means the key never expires.
    #[serde(with = "serde_opt", default)]
    pub expiry: Option<DateTime<Utc>>,
    /// `None` means the key was never used.
    #[serde(with = "serde_opt", default)]
    pub last_request_at: Option<DateTime<Utc>>,
}

/// The longest secret `key` the daemon takes from a create answer.
pub const SECRET_MAX_BYTES: usize = 1024;

impl From<ApiKey> for Key {
    fn from(k: ApiKey) -> Self {
        Key {
            id: k.id,
            name: k.name,
            description: k.description,
            state: k.state,
            created_at: k.created_at,
            expiry: k.expiry,
            last_request_at: k.last_request_at,
        }
    }
}

/// The response to `POST /teams/{team_id}/api_keys`: the only place the secret appears.
#[derive(Debug, Deserialize)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret value. Never logged: `SecretString`'s `Debug` prints a placeholder.
    #[serde(rename = "key")]
    pub secret: SecretString,
}

/// Body of `POST /teams/{team_id}/api_keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub name: String,
    pub description: String,
    #[serde(with = "serde_opt")]
    pub expiry: Option<DateTime<Utc>>,
    pub state: KeyAction,
}

impl From<CreatedApiKey> for CreatedKey {
    fn from(c: CreatedApiKey) -> Self {
        CreatedKey {
            key: c.key.into(),
            secret: c.secret,
        }
    }
}

impl From<&NewKey> for NewApiKey {
    fn from(n: &NewKey) -> Self {
        NewApiKey {
            name: n.name.clone(),
            description: n.description.clone(),
            expiry: n.expiry,
            state: n.state,
        }
    }
}

/// Body of `PUT /api_keys/{api_key_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateApiKey {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    #[serde(with = "serde_opt", skip_serializing_if = "Option::is_none", default)]
    pub expiry: Option<DateTime<Utc>>,
    pub state: KeyAction,
}

/// A team as listed in the login response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// The user as listed in the login response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub email: String,
}

/// The response to `POST /auth`.
#[derive(Debug, Deserialize)]
pub struct AuthResponse {
    #[serde(default)]
    pub teams: Vec<Team>,
    /// The user JWT (`X-User-Token`).
    pub token: SecretString,
    pub user: User,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn list_entry_parses_vendor_shape_and_ignores_unknown_fields() {
        let json = r#"{
            "created_at": "2021-04-16T20:42:37.659Z",
            "description": "This is a sample key",
            "expiry": "2021-04-20T20:42:37.000Z",
            "id": "01F3E6QN6V9TYCSRCEXB5B9JWR",
            "last_request_at": "0001-01-01T00:00:00.000Z",
            "name": "Sample key",
            "state": "active",
            "updated_at": "2021-04-19T10:42:58.221Z",
            "some_future_field": {"x": 1}
        }"#;
        let key: ApiKey = serde_json::from_str(json).unwrap();
        assert_eq!(key.state, KeyState::Active);
        assert!(key.expiry.is_some());
        assert_eq!(key.last_request_at, None);
    }

    #[test]
    fn created_key_keeps_secret_out_of_debug() {
        let json = r#"{
            "created_at": "2021-04-19T16:57:32.683Z", "description": "d",
            "expiry": "0001-01-01T00:00:00.000Z", "id": "01F3NH1NRBQWRN7HQDJ2SYGBDH",
            "key": "very-secret-value", "last_request_at": "0001-01-01T00:00:00.000Z",
            "name": "n", "state": "active", "updated_at": "2021-04-19T16:57:32.683Z"
        }"#;
        let created: CreatedApiKey = serde_json::from_str(json).unwrap();
        assert_eq!(created.secret.expose_secret(), "very-secret-value");
        assert_eq!(created.key.expiry, None);
        assert!(!format!("{created:?}").contains("very-secret-value"));
    }

    #[test]
    fn suspended_state_parses() {
        let s: KeyState = serde_json::from_str("\"suspended\"").unwrap();
        assert_eq!(s, KeyState::Suspended);
    }
}
