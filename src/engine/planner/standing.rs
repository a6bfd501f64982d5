//! Where a lineage stands against its policy: what `status` and `report` show.
//!
//! Worked out from the same snapshot a sweep plans with, from that plan and the
//! predicates of [`super::policy`], so the operator's view cannot disagree with
//! what the daemon decides; `view.rs` only formats it.

use chrono::{DateTime, Utc};

use super::super::key::KeyState;
use super::{plan_lineage, policy, KeyRole, LineageSnapshot, NextStep, Note, Why};

/// One lineage's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The listed key whose id is in the lineage's Vault secret.
    pub current_key_id: Option<String>,
    /// When the current key falls due (None: never, or no current key).
    pub next_due: Option<DateTime<Utc>>,
    /// Due and not rotated (or no stored key at all).
    pub overdue: bool,
    /// The current key has not been used for `unused_after`.
    pub stale: bool,
    /// Keys MASV suspended, in the order the plan notes them.
    pub suspended: Vec<String>,
    /// Active keys older than `max_age`, in list order.
    pub over_max_age: Vec<String>,
    /// The current key is active, younger than `max_age`, unexpired, and the
    /// lineage is not overdue.
    pub within_policy: bool,
    /// One per listed key, in the snapshot's order.
    pub keys: Vec<KeyStanding>,
}

/// One listed key's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStanding {
    pub key_id: String,
    pub role: KeyRole,
    pub next: NextStep,
    /// When the next step is due (None: not scheduled).
    pub next_at: Option<DateTime<Utc>>,
    /// Why it comes then.
    pub why: Option<Why>,
    /// Active and unused for `unused_after`.
    pub stale: bool,
}

/// Plans the lineage and says where it stands.
pub fn standing(s: &LineageSnapshot<'_>) -> Standing {
    let plan = plan_lineage(s);
    let keys: Vec<KeyStanding> = s
        .keys
        .iter()
        .map(|k| {
            let look = plan.keys.iter().find(|o| o.key_id == k.id);
            KeyStanding {
                key_id: k.id.clone(),
                role: look.map_or(KeyRole::Other, |o| o.role),
                next: look.map_or(NextStep::None, |o| o.next),
                next_at: look.and_then(|o| o.next_at),
                why: look.and_then(|o| o.why),
                stale: policy::is_stale_active(k, &s.policy, s.now),
            }
        })
        .collect();
    let current = s
        .vault
        .as_ref()
        .and_then(|v| s.keys.iter().find(|k| k.id == v.key_id).copied());
    let next_due = keys
        .iter()
        .find(|k| k.role == KeyRole::Current)
        .and_then(|k| k.next_at);
    let overdue = policy::is_overdue(current, next_due, s.now);
    let suspended = plan
        .notes
        .iter()
        .filter_map(|n| match n {
            Note::Suspended { key_id } => Some(key_id.clone()),
            _ => None,
        })
        .collect();
    let over_max_age = s
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .filter(|k| policy::is_over_max_age(k, &s.policy, s.now))
        .map(|k| k.id.clone())
        .collect();
    Standing {
        current_key_id: current.map(|c| c.id.clone()),
        next_due,
        overdue,
        stale: current.is_some_and(|c| policy::is_stale(c, &s.policy, s.now)),
        suspended,
        over_max_age,
        within_policy: policy::is_within_policy(current, overdue, &s.policy, s.now),
        keys,
    }
}
