//! The audit vocabulary the engine speaks: what was done to which key and how
//! it went. Every step's outcome carries one [`NewAuditEntry`]; the record
//! store appends it, hash-chained, in the same transaction as the state change
//! (docs/design.md, section 6).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Create,
    Store,
    Activate,
    Verify,
    Deactivate,
    Delete,
    Rollback,
    CleanupOrphan,
    /// A rotation given up because its new key can no longer be verified.
    Abandon,
    /// The new key's secret written to the lineage's pending path (check-and-set).
    Stage,
    /// The verified new key's secret promoted to the lineage's path.
    Promote,
    /// A rotation another instance left, taken into the local records from
    /// what MASV and Vault show (after a takeover).
    Adopt,
    /// A local open rotation closed, untouched, when the lease came from another holder.
    HandOver,
}

impl AuditAction {
    pub const ALL: [AuditAction; 13] = [
        AuditAction::Create,
        AuditAction::Store,
        AuditAction::Activate,
        AuditAction::Verify,
        AuditAction::Deactivate,
        AuditAction::Delete,
        AuditAction::Rollback,
        AuditAction::CleanupOrphan,
        AuditAction::Abandon,
        AuditAction::Stage,
        AuditAction::Promote,
        AuditAction::Adopt,
        AuditAction::HandOver,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Store => "store",
            AuditAction::Activate => "activate",
            AuditAction::Verify => "verify",
            AuditAction::Deactivate => "deactivate",
            AuditAction::Delete => "delete",
            AuditAction::Rollback => "rollback",
            AuditAction::CleanupOrphan => "cleanup_orphan",
            AuditAction::Abandon => "abandon",
            AuditAction::Stage => "stage",
            AuditAction::Promote => "promote",
            AuditAction::Adopt => "adopt",
            AuditAction::HandOver => "hand_over",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown audit action {s:?}"))
    }
}

/// How it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
        }
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(Outcome::Ok),
            "failed" => Ok(Outcome::Failed),
            other => Err(format!("unknown outcome {other:?}")),
        }
    }
}

/// A row to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub action: AuditAction,
    pub outcome: Outcome,
    pub detail: String,
    pub rotation_id: Option<String>,
    /// The HA lease's fencing token the mutation was made under (with `[ha]`).
    pub lease_token: Option<i64>,
}
