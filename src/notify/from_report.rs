//! Which events a finished sweep calls for: a pure function of its report.
//!
//! - A rotation or resume that completed a rotation (the outcome carries
//!   `rotated`) → `rotation.completed`, `key_id` the new key, `previous_key_id`
//!   the key Vault named before (`null` for an adoption), its `rotation_id`.
//! - A failed rotation or resume → `rotation.failed`, `key_id` the key that
//!   stays current (`null` for a resume, whose `rotation_id` is given instead).
//!   A resume that rolled back cleanly completed nothing and failed nothing: it
//!   raises no event (the audit log has it; if the lineage is still due, the next
//!   rotation raises its own).
//! - A failed rotation of a key within `rotate_before_expiry` also raises
//!   `key.expiring`. An expiring key that is rotated fine raises only
//!   `rotation.completed`: `key.expiring` is the call to act (the key will stop
//!   working and nothing replaced it), and an alert that also fired on every
//!   routine, successful rotation would teach operators to ignore it.
//! - A deactivation done → `key.deactivated`; a delete or an orphan's cleanup
//!   done → `key.deleted`.
//! - A stale key (planner note) → `key.stale`, told at most once a day per key
//!   by [`super::Notifier`].
//!
//! Two alerts of the earlier webhook have no event in the contract, and are not
//! sent: a failed deactivation, delete or cleanup (the sweep logs it, counts it
//! in `actions_total{result="failed"}`, fails `/healthz` and exits 1, and the
//! next sweep tries again), and a suspended key (`status`, `report` and the
//! `suspended_keys` gauge show it; a suspended *current* key makes its lineage
//! due, and that rotation raises its own events).
//!
//! Every event's `at` is the time its team's part of the sweep finished (the
//! daemon queues a team's events as the team finishes); details are cleaned of
//! every secret the daemon holds, then cut to [`MAX_DETAIL`] characters.

use std::collections::HashMap;

use chrono::Utc;

use super::event::{Event, EventKind};
use crate::engine::model::DueReason;
use crate::engine::planner::{Action, ActionKind, DeactivateReason, LineagePlan, Note};
use crate::engine::report::ActionOutcome;
use crate::engine::{LineageId, SweepReport};

/// Longest `detail` sent, in characters.
pub const MAX_DETAIL: usize = 500;

fn cut(detail: &str) -> String {
    match detail.char_indices().nth(MAX_DETAIL) {
        Some((i, _)) => format!("{}…", &detail[..i]),
        None => detail.to_string(),
    }
}

/// The events a finished sweep calls for, in report order (no dedup or filter here).
pub fn events_for(report: &SweepReport) -> Vec<Event> {
    let at = report
        .finished_at
        .or(report.started_at)
        .unwrap_or_else(Utc::now);
    let mut events = Vec::new();
    let mut push = |kind, lineage: &LineageId, ids: Ids, detail: &str| {
        events.push(Event {
            kind,
            at,
            team_id: Some(lineage.team_id.clone()),
            key_name: Some(lineage.name.clone()),
            key_id: ids.key_id.filter(|id| !id.is_empty()),
            previous_key_id: ids.previous_key_id,
            rotation_id: ids.rotation_id,
            detail: Some(cut(&crate::redact::scrub(detail))),
        })
    };
    // Each lineage's plan, found once per outcome (a scan of every plan per
    // outcome is quadratic in the team).
    let plans: HashMap<&LineageId, &LineagePlan> =
        report.plans.iter().map(|p| (&p.lineage, p)).collect();
    for outcome in &report.outcomes {
        let action = plans
            .get(&outcome.lineage)
            .and_then(|plan| planned(plan, outcome));
        for (kind, ids, detail) in outcome_events(outcome, action) {
            push(kind, &outcome.lineage, ids, &detail);
        }
    }
    for (lineage, note) in report.notes() {
        if let Note::Stale { key_id } = note {
            let ids = Ids::key(Some(key_id.clone()));
            push(
                EventKind::KeyStale,
                lineage,
                ids,
                "active but unused for unused_after",
            );
        }
    }
    events
}

/// The ids an event names.
#[derive(Default)]
struct Ids {
    key_id: Option<String>,
    previous_key_id: Option<String>,
    rotation_id: Option<String>,
}

impl Ids {
    fn key(key_id: Option<String>) -> Self {
        Ids {
            key_id,
            ..Ids::default()
        }
    }

    /// `key_id`, and the rotation a resume or an orphan's cleanup was planned for.
    fn of_rotation(key_id: Option<String>, action: Option<&Action>) -> Self {
        let rotation_id = match action {
            Some(
                Action::Resume { rotation_id, .. } | Action::CleanupOrphan { rotation_id, .. },
            ) => Some(rotation_id.clone()),
            _ => None,
        };
        Ids {
            rotation_id,
            ..Ids::key(key_id)
        }
    }
}

/// The planned action an outcome reports on (a lineage plans at most one of
/// each rotation kind, and one retirement step per key).
fn planned<'p>(plan: &'p LineagePlan, outcome: &ActionOutcome) -> Option<&'p Action> {
    plan.actions
        .iter()
        .find(|a| a.kind() == outcome.action && a.key_id() == outcome.key_id.as_deref())
}

fn outcome_events(
    outcome: &ActionOutcome,
    action: Option<&Action>,
) -> Vec<(EventKind, Ids, String)> {
    let key_id = || outcome.key_id.clone();
    match (outcome.action, outcome.ok) {
        (ActionKind::Rotate | ActionKind::Resume | ActionKind::Adopt, true) => {
            let Some(r) = &outcome.rotated else {
                return vec![]; // a resume that rolled back
            };
            let detail = match action {
                Some(Action::Rotate { reason, .. }) => format!("due: {}", reason.words()),
                _ => "an interrupted rotation was finished".to_string(),
            };
            let ids = Ids {
                key_id: Some(r.new_key_id.clone()),
                previous_key_id: r.previous_key_id.clone(),
                rotation_id: Some(r.rotation_id.clone()),
            };
            vec![(EventKind::RotationCompleted, ids, detail)]
        }
        (ActionKind::Rotate, false) => {
            let mut events = vec![(
                EventKind::RotationFailed,
                Ids::key(key_id()),
                outcome.detail.clone(),
            )];
            if let Some(Action::Rotate {
                reason: DueReason::Expiring,
                ..
            }) = action
            {
                events.push((
                    EventKind::KeyExpiring,
                    Ids::key(key_id()),
                    format!(
                        "the current key is within rotate_before_expiry and could not be rotated: {}",
                        outcome.detail
                    ),
                ));
            }
            events
        }
        (ActionKind::Resume | ActionKind::Adopt, false) => vec![(
            EventKind::RotationFailed,
            Ids::of_rotation(key_id(), action),
            outcome.detail.clone(),
        )],
        (ActionKind::Deactivate, true) => {
            let reason = match action {
                Some(Action::Deactivate { reason, .. }) => *reason,
                _ => DeactivateReason::GraceAndIdle,
            };
            let detail = format!("replaced, {}", reason.words());
            vec![(EventKind::KeyDeactivated, Ids::key(key_id()), detail)]
        }
        (ActionKind::Delete, true) => vec![(
            EventKind::KeyDeleted,
            Ids::key(key_id()),
            "delete_after has passed since the daemon deactivated it".into(),
        )],
        (ActionKind::CleanupOrphan, true) => vec![(
            EventKind::KeyDeleted,
            Ids::of_rotation(key_id(), action),
            "an orphan: created by a rotation whose secret never reached Vault".into(),
        )],
        // Failed retirements and cleanups: logs and metrics only (module doc).
        (ActionKind::Deactivate | ActionKind::Delete | ActionKind::CleanupOrphan, false)
        | (
            ActionKind::Track
            | ActionKind::Forget
            | ActionKind::Discard
            | ActionKind::AcceptPromoted
            | ActionKind::RetireInactive,
            _,
        ) => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_details_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_DETAIL + 10);
        let cut = cut(&long);
        assert_eq!(cut.chars().count(), MAX_DETAIL + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(super::cut("short"), "short");
    }
}
