//! The engine's records as the engine speaks of them: the changes a step
//! writes ([`Change`]) and what a sweep reads back about one team
//! ([`TeamRecords`]). The record store behind [`super::ports::RecordStore`]
//! turns them into rows.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::key::Key;
use super::model::{LineageId, RetirementRecord, RotationPhase, RotationRecord, VaultView};

/// One change to the engine's tables.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new rotation (its first intent). Fails if the lineage has one in flight.
    StartRotation(RotationRecord),
    /// A rotation another instance started, learnt from MASV and Vault after a
    /// takeover (open, to be resumed, or already finished). Replaces a row of
    /// the same id only if this instance handed it over; fails otherwise.
    KnownRotation(RotationRecord),
    /// Move a rotation to a new phase, recording what the step learnt.
    Rotation {
        rotation_id: String,
        phase: RotationPhase,
        new_key_id: Option<String>,
        vault_version: Option<u64>,
        stored_at: Option<DateTime<Utc>>,
        error: Option<String>,
    },
    /// Insert or update a retirement.
    Retirement(RetirementRecord),
    /// Remember what Vault holds for a lineage.
    Vault {
        lineage: LineageId,
        view: Option<VaultView>,
    },
    /// Forget every cached Vault view: the next sweep reads each lineage's path.
    ForgetVaultViews,
    /// Drop a retirement record (one this instance never deactivated).
    ForgetRetirement {
        key_id: String,
    },
    /// A key proved working.
    Verified {
        lineage: LineageId,
        key_id: String,
    },
    /// Keep the key snapshot (what `status` shows) in step with what the sweep did.
    SnapshotKey {
        team_id: String,
        key: Key,
    },
    SnapshotState {
        key_id: String,
        state: super::key::KeyState,
    },
    SnapshotRemove {
        key_id: String,
    },
}

impl Change {
    fn rotation(
        rotation_id: &str,
        phase: RotationPhase,
        new_key_id: Option<&str>,
        error: Option<String>,
    ) -> Change {
        Change::Rotation {
            rotation_id: rotation_id.to_string(),
            phase,
            new_key_id: new_key_id.map(str::to_string),
            vault_version: None,
            stored_at: None,
            error,
        }
    }

    /// Move a rotation to `phase`, learning nothing else.
    pub fn phase(rotation_id: &str, phase: RotationPhase) -> Change {
        Self::rotation(rotation_id, phase, None, None)
    }

    /// Move a rotation to `phase` and keep the error that sent it there.
    pub fn phase_failed(
        rotation_id: &str,
        phase: RotationPhase,
        error: &dyn std::fmt::Display,
    ) -> Change {
        Self::rotation(rotation_id, phase, None, Some(error.to_string()))
    }

    /// Move a rotation to `phase`, naming its new key.
    pub fn phase_with_key(rotation_id: &str, phase: RotationPhase, new_key_id: &str) -> Change {
        Self::rotation(rotation_id, phase, Some(new_key_id), None)
    }
}

/// What this instance had in flight, across all teams: what a hand-over closes.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    /// Open rotations (any non-terminal phase).
    pub rotations: Vec<RotationRecord>,
    /// Retirements this instance has not deactivated (waiting, deactivating).
    pub undeactivated: Vec<RetirementRecord>,
}

/// Everything the planner needs about one team, loaded in one go per sweep.
#[derive(Debug, Default)]
pub struct TeamRecords {
    pub open: BTreeMap<String, RotationRecord>,
    pub rolled_back: BTreeMap<String, HashSet<String>>,
    pub known: BTreeMap<String, HashSet<String>>,
    pub retirements: BTreeMap<String, Vec<RetirementRecord>>,
    /// Lineage name -> Vault view; a name present with `None` means "Vault has no secret".
    pub vault: BTreeMap<String, Option<VaultView>>,
    pub verified: std::sync::Arc<HashSet<String>>,
}
