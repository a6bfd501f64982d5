//! The engine's model of an API key: what it needs to plan and act, whatever
//! the key API's wire format. The MASV adapter converts its answers into these.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The state of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Inactive,
    /// Set by MASV; cannot be toggled by anyone through the API.
    Suspended,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Inactive => "inactive",
            KeyState::Suspended => "suspended",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two states a key can be toggled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAction {
    Active,
    Inactive,
}

impl KeyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAction::Active => "active",
            KeyAction::Inactive => "inactive",
        }
    }
}

/// A key as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub description: String,
    pub state: KeyState,
    pub created_at: Option<DateTime<Utc>>,
    /// `None` means the key never expires.
    pub expiry: Option<DateTime<Utc>>,
    /// `None` means the key was never used.
    pub last_request_at: Option<DateTime<Utc>>,
}

/// A key to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub name: String,
    pub description: String,
    pub expiry: Option<DateTime<Utc>>,
    pub state: KeyAction,
}

/// A created key and its secret, which the key API shows only this once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: Key,
    pub secret: SecretString,
}

/// A time as the audit log shows it; no time (never expires) as the zero time.
pub fn audit_time(value: Option<DateTime<Utc>>) -> String {
    match value {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => "0001-01-01T00:00:00.000Z".to_string(),
    }
}
