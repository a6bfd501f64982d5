//! The engine's own records: what it remembers between sweeps.
//!
//! These mirror rows of the `rotations`, `retirements`, `lineages` and
//! `verified_keys` tables. The planner reads them as plain values; only the
//! executor writes them, always *before* the external call it is about to make
//! (intent) and again after (outcome), so a crash at any point leaves enough on
//! disk to resume or roll back.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One logical credential: the managed keys of one team that share a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LineageId {
    pub team_id: String,
    pub name: String,
}

impl LineageId {
    pub fn new(team_id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            team_id: team_id.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for LineageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.team_id, self.name)
    }
}

/// Why a lineage is due for a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DueReason {
    /// The lineage has no secret in Vault: the daemon cannot know a secret it did not create.
    Adoption,
    /// The key named in Vault is no longer listed by MASV.
    CurrentGone,
    CurrentSuspended,
    CurrentInactive,
    /// `expiry - now <= rotate_before_expiry` (already expired included).
    Expiring,
    /// `now - created_at >= max_age`.
    MaxAge,
    /// Asked for by `rotate --team --name`.
    Manual,
    /// A rotation another instance left in flight, taken over from what MASV
    /// and Vault show (docs/design.md, section 9).
    Takeover,
}

impl DueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DueReason::Adoption => "adoption",
            DueReason::CurrentGone => "current_gone",
            DueReason::CurrentSuspended => "current_suspended",
            DueReason::CurrentInactive => "current_inactive",
            DueReason::Expiring => "expiring",
            DueReason::MaxAge => "max_age",
            DueReason::Manual => "manual",
            DueReason::Takeover => "takeover",
        }
    }

    /// Why, in an operator's words: the same in `once`, `rotate`, `demo`,
    /// the webhook's events and the logs.
    pub fn words(self) -> &'static str {
        match self {
            DueReason::Adoption => "adopting the lineage, which had no secret in Vault",
            DueReason::CurrentGone => "the current key is no longer listed by MASV",
            DueReason::CurrentSuspended => "the current key is suspended",
            DueReason::CurrentInactive => "the current key is inactive",
            DueReason::Expiring => "the current key is within rotate_before_expiry",
            DueReason::MaxAge => "the current key is older than max_age",
            DueReason::Manual => "asked for by rotate",
            DueReason::Takeover => "left in flight by another instance, taken over",
        }
    }
}

impl fmt::Display for DueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DueReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "adoption" => DueReason::Adoption,
            "current_gone" => DueReason::CurrentGone,
            "current_suspended" => DueReason::CurrentSuspended,
            "current_inactive" => DueReason::CurrentInactive,
            "expiring" => DueReason::Expiring,
            "max_age" => DueReason::MaxAge,
            "manual" => DueReason::Manual,
            "takeover" => DueReason::Takeover,
            other => return Err(format!("unknown due reason {other:?}")),
        })
    }
}

/// Where a rotation stands. Each `*ing` phase is an intent written before the
/// external call; the phase after it is written once the call succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationPhase {
    /// About to create the new key (created *inactive*, with the marker).
    Creating,
    /// The new key exists; its secret lives only in this process's memory.
    Created,
    /// About to stage the secret at the lineage's pending path in Vault.
    Storing,
    /// The pending path holds the new secret (a check-and-set write's answer named its version).
    Stored,
    /// About to activate the new key.
    Activating,
    /// The new key is active; next, prove it works.
    Active,
    /// The new key works; about to promote its secret to the lineage's path.
    Promoting,
    /// Terminal: the new key is active, verified and promoted to the lineage's path.
    Verified,
    /// About to delete the never-stored new key.
    RollingBack,
    /// Terminal: the new key was removed (or never created); the old key is untouched.
    RolledBack,
    /// Terminal: the new key reached Vault but can never be verified (it expired,
    /// was suspended or deleted before the rotation finished). The old keys are
    /// untouched and a fresh rotation replaces the dead key.
    Abandoned,
    /// Terminal: closed without touching MASV or Vault when this instance took
    /// the lease over from another holder, which may have finished, rolled back
    /// or replaced it since. Its key is judged afresh from MASV and Vault (it is
    /// not a rotation this instance knows).
    HandedOver,
}

impl RotationPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationPhase::Creating => "creating",
            RotationPhase::Created => "created",
            RotationPhase::Storing => "storing",
            RotationPhase::Stored => "stored",
            RotationPhase::Activating => "activating",
            RotationPhase::Active => "active",
            RotationPhase::Promoting => "promoting",
            RotationPhase::Verified => "verified",
            RotationPhase::RollingBack => "rolling_back",
            RotationPhase::RolledBack => "rolled_back",
            RotationPhase::Abandoned => "abandoned",
            RotationPhase::HandedOver => "handed_over",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RotationPhase::Verified
                | RotationPhase::RolledBack
                | RotationPhase::Abandoned
                | RotationPhase::HandedOver
        )
    }

    /// Whether the new key's secret has reached Vault (staged, or promoted) in this phase.
    pub fn secret_stored(self) -> bool {
        matches!(
            self,
            RotationPhase::Stored
                | RotationPhase::Activating
                | RotationPhase::Active
                | RotationPhase::Promoting
                | RotationPhase::Verified
        )
    }
}

impl fmt::Display for RotationPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RotationPhase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "creating" => RotationPhase::Creating,
            "created" => RotationPhase::Created,
            "storing" => RotationPhase::Storing,
            "stored" => RotationPhase::Stored,
            "activating" => RotationPhase::Activating,
            "active" => RotationPhase::Active,
            "promoting" => RotationPhase::Promoting,
            "verified" => RotationPhase::Verified,
            "rolling_back" => RotationPhase::RollingBack,
            "rolled_back" => RotationPhase::RolledBack,
            "abandoned" => RotationPhase::Abandoned,
            "handed_over" => RotationPhase::HandedOver,
            other => return Err(format!("unknown rotation phase {other:?}")),
        })
    }
}

/// A rotation as recorded in the `rotations` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationRecord {
    pub rotation_id: String,
    pub lineage: LineageId,
    pub reason: DueReason,
    /// The key being replaced (the one in Vault), if there was one.
    pub old_key_id: Option<String>,
    pub new_key_id: Option<String>,
    pub phase: RotationPhase,
    /// The Vault version this rotation's write must replace (0: none yet).
    pub cas: u64,
    /// The Vault version this rotation wrote.
    pub vault_version: Option<u64>,
    pub started_at: DateTime<Utc>,
    /// When the new secret was stored: the grace period counts from here.
    pub stored_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Where a replaced key stands on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetirePhase {
    /// Active, waiting out the grace period / idle gate / max overlap.
    Waiting,
    /// About to deactivate.
    Deactivating,
    /// Deactivated by the daemon at `deactivated_at`.
    Inactive,
    /// About to delete.
    Deleting,
    /// Terminal: deleted (by the daemon, or gone from MASV's list).
    Deleted,
}

impl RetirePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RetirePhase::Waiting => "waiting",
            RetirePhase::Deactivating => "deactivating",
            RetirePhase::Inactive => "inactive",
            RetirePhase::Deleting => "deleting",
            RetirePhase::Deleted => "deleted",
        }
    }
}

impl fmt::Display for RetirePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetirePhase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "waiting" => RetirePhase::Waiting,
            "deactivating" => RetirePhase::Deactivating,
            "inactive" => RetirePhase::Inactive,
            "deleting" => RetirePhase::Deleting,
            "deleted" => RetirePhase::Deleted,
            other => return Err(format!("unknown retirement phase {other:?}")),
        })
    }
}

/// A replaced key, as recorded in the `retirements` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetirementRecord {
    pub key_id: String,
    pub lineage: LineageId,
    /// The rotation whose new key replaced this one (None: found as an extra key).
    pub rotation_id: Option<String>,
    /// When the replacement's secret was stored (grace and max overlap count from here).
    pub replaced_at: DateTime<Utc>,
    pub phase: RetirePhase,
    /// Set only when the daemon itself deactivated the key: only such keys are ever deleted.
    pub deactivated_at: Option<DateTime<Utc>>,
}

/// What the daemon last saw in Vault for a lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultView {
    pub key_id: String,
    pub version: u64,
    /// The `rotation_id` field of that secret: only a promotion, which comes
    /// after the key's verification, writes it (None: cached before it was kept).
    pub rotation_id: Option<String>,
}
