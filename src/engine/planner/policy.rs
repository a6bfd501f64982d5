//! Every time and policy predicate the planner decides with, in one place.
//!
//! When the current key falls due, whether a key is stale or over `max_age`,
//! whether a lineage is overdue or within policy, when a replaced key may be
//! deactivated and deleted: the planner's parts and the standing `status` and
//! `report` show all ask here, so each word means one thing everywhere
//! (docs/design.md, section 4).

use chrono::{DateTime, Duration, Utc};

use super::super::key::{Key, KeyState};
use super::super::policy::Policy;
use super::DeactivateReason;
use crate::engine::model::{DueReason, RetirementRecord, VaultView};

fn dur(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

/// When the lineage's current key falls due, and why (None: never, e.g. no
/// expiry and no creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RotationDue(Option<(DueReason, DateTime<Utc>)>);

impl RotationDue {
    /// When it falls (or fell) due.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        self.0.map(|(_, at)| at)
    }

    /// Why it falls due then.
    pub fn reason(&self) -> Option<DueReason> {
        self.0.map(|(reason, _)| reason)
    }

    /// Why a rotation is due by `now` (None: not yet, or never).
    pub fn by(&self, now: DateTime<Utc>) -> Option<DueReason> {
        self.0
            .filter(|(_, at)| *at <= now)
            .map(|(reason, _)| reason)
    }
}

/// When the lineage falls due: at once without a Vault secret (adoption) or
/// without its listed current key, else when the current key does.
pub(super) fn rotation_due(
    vault: Option<&VaultView>,
    current: Option<&Key>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> RotationDue {
    match (vault, current) {
        (None, _) => RotationDue(Some((DueReason::Adoption, now))),
        (Some(_), None) => RotationDue(Some((DueReason::CurrentGone, now))),
        (Some(_), Some(c)) => current_due(c, policy, now),
    }
}

/// When the current key falls due.
fn current_due(key: &Key, policy: &Policy, now: DateTime<Utc>) -> RotationDue {
    match key.state {
        KeyState::Suspended => return RotationDue(Some((DueReason::CurrentSuspended, now))),
        KeyState::Inactive => return RotationDue(Some((DueReason::CurrentInactive, now))),
        KeyState::Active => {}
    }
    let by_expiry = key
        .expiry
        .map(|e| (DueReason::Expiring, e - dur(policy.rotate_before_expiry)));
    let by_age = key
        .created_at
        .map(|c| (DueReason::MaxAge, c + dur(policy.max_age)));
    RotationDue(match (by_expiry, by_age) {
        (Some(a), Some(b)) => Some(if a.1 <= b.1 { a } else { b }),
        (a, b) => a.or(b),
    })
}

/// Whether a key has gone unused for `unused_after` (never-used keys count from creation).
pub(super) fn is_stale(key: &Key, policy: &Policy, now: DateTime<Utc>) -> bool {
    let since = key.last_request_at.or(key.created_at);
    since.is_some_and(|t| now - t >= dur(policy.unused_after))
}

/// Whether a key is stale and still active (an inactive key's idleness is expected).
pub(super) fn is_stale_active(key: &Key, policy: &Policy, now: DateTime<Utc>) -> bool {
    key.state == KeyState::Active && is_stale(key, policy, now)
}

/// Whether a key was created `max_age` ago or more.
pub(super) fn is_over_max_age(key: &Key, policy: &Policy, now: DateTime<Utc>) -> bool {
    key.created_at
        .is_some_and(|c| now - c >= dur(policy.max_age))
}

/// Whether the lineage is overdue: no listed current key, or its due time passed.
pub(super) fn is_overdue(
    current: Option<&Key>,
    next_due: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    current.is_none() || next_due.is_some_and(|d| d < now)
}

/// Whether the lineage is within policy: its current key is active, younger
/// than `max_age` and unexpired, and the lineage is not overdue.
pub(super) fn is_within_policy(
    current: Option<&Key>,
    overdue: bool,
    policy: &Policy,
    now: DateTime<Utc>,
) -> bool {
    let current_ok = current.is_some_and(|c| {
        c.state == KeyState::Active
            && !is_over_max_age(c, policy, now)
            && c.expiry.is_none_or(|e| e > now)
    });
    current_ok && !overdue
}

/// When a replaced key may be deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DeactivationDue {
    /// `grace_period` after it was replaced.
    pub grace_end: DateTime<Utc>,
    /// `max_overlap` after it was replaced: deactivated even if still in use.
    pub overlap_end: DateTime<Utc>,
    /// The grace period's end, or later if the key was used within
    /// `idle_before_deactivate` of it.
    pub idle_end: DateTime<Utc>,
}

impl DeactivationDue {
    /// The first time deactivation is allowed.
    pub fn at(&self) -> DateTime<Utc> {
        self.idle_end.min(self.overlap_end)
    }

    /// Why deactivation comes at [`DeactivationDue::at`].
    pub fn reason(&self) -> DeactivateReason {
        if self.idle_end <= self.overlap_end {
            DeactivateReason::GraceAndIdle
        } else {
            DeactivateReason::MaxOverlap
        }
    }
}

/// When the replaced `key` of retirement `r` may be deactivated.
pub(super) fn deactivation_due(
    r: &RetirementRecord,
    key: &Key,
    policy: &Policy,
) -> DeactivationDue {
    let grace_end = r.replaced_at + dur(policy.grace_period);
    let overlap_end = r.replaced_at + dur(policy.max_overlap);
    let idle_end = match key
        .last_request_at
        .map(|t| t + dur(policy.idle_before_deactivate))
    {
        Some(i) if i > grace_end => i,
        _ => grace_end,
    };
    DeactivationDue {
        grace_end,
        overlap_end,
        idle_end,
    }
}

/// When a key the daemon deactivated may be deleted: `delete_after` later
/// (now, if the deactivation time is unknown).
pub(super) fn deletion_due(
    r: &RetirementRecord,
    policy: &Policy,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    r.deactivated_at
        .map(|d| d + dur(policy.delete_after))
        .unwrap_or(now)
}
