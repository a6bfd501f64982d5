//! What a sweep did: each team's report, handed out as the team finishes, and
//! the sweep's totals folded from them.
//!
//! A team's report holds every plan and outcome of that team; the totals hold
//! only figures. A caller that streams (the daemon, `once`) therefore holds the
//! details of the teams in flight and never the whole fleet's: a sweep's memory
//! grows with its largest team, not with the number of keys.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::admission::Unmanageable;
use super::executor::Rotated;
use super::model::LineageId;
use super::planner::{ActionKind, LineagePlan, Note};
use crate::exit::Exit;

/// The outcome of one action.
#[derive(Debug, Clone, Serialize)]
pub struct ActionOutcome {
    pub lineage: LineageId,
    pub action: ActionKind,
    pub key_id: Option<String>,
    pub ok: bool,
    pub detail: String,
    /// Set when the action completed a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated: Option<Rotated>,
    /// How long it took, by the engine's clock (`/metrics`).
    #[serde(skip)]
    pub took: std::time::Duration,
}

/// What a sweep covered, or one team's part of it: the same figures in a
/// team's report and in the sweep's totals, added up the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub teams: usize,
    /// Teams that could not be listed or whose records could not be read.
    pub teams_failed: usize,
    pub lineages: usize,
    pub managed_keys: usize,
    pub unmanaged_keys: usize,
    /// MASV or Vault could not be reached.
    pub unreachable: bool,
}

impl Scope {
    /// Adds another part of the same sweep.
    pub fn add(&mut self, part: Scope) {
        self.teams += part.teams;
        self.teams_failed += part.teams_failed;
        self.lineages += part.lineages;
        self.managed_keys += part.managed_keys;
        self.unmanaged_keys += part.unmanaged_keys;
        self.unreachable |= part.unreachable;
    }
}

/// What a sweep did to some teams, in detail: one team's part of a sweep, or
/// (from [`super::Engine::sweep`]) every team's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub scope: Scope,
    /// Keys whose pattern matched but which cannot be managed; left alone.
    pub unmanageable: Vec<Unmanageable>,
    pub plans: Vec<LineagePlan>,
    pub outcomes: Vec<ActionOutcome>,
    pub errors: Vec<String>,
}

impl SweepReport {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.ok).count()
    }

    pub fn succeeded(&self) -> usize {
        self.outcomes.iter().filter(|o| o.ok).count()
    }

    pub fn notes(&self) -> impl Iterator<Item = (&LineageId, &Note)> {
        self.plans
            .iter()
            .flat_map(|p| p.notes.iter().map(move |n| (&p.lineage, n)))
    }

    /// The figures of this report, over the same span of time.
    pub fn totals(&self) -> SweepTotals {
        let mut totals = SweepTotals {
            started_at: self.started_at,
            finished_at: self.finished_at,
            ..SweepTotals::default()
        };
        totals.add(self);
        totals
    }

    /// The process exit code this sweep deserves (docs/design.md, section 2).
    pub fn exit(&self) -> Exit {
        self.totals().exit()
    }

    /// Takes in another part of the same sweep (its span is not this one's).
    pub fn absorb(&mut self, part: SweepReport) {
        self.scope.add(part.scope);
        self.unmanageable.extend(part.unmanageable);
        self.plans.extend(part.plans);
        self.outcomes.extend(part.outcomes);
        self.errors.extend(part.errors);
    }
}

/// What a whole sweep did, in figures: enough for the exit code, `/healthz`
/// and the closing summary line, and the same size whatever the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepTotals {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub scope: Scope,
    pub unmanageable_keys: usize,
    /// Actions planned (a dry run's whole plan).
    pub planned: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub errors: usize,
}

impl SweepTotals {
    /// Counts in one team's report (or any part of the sweep).
    pub fn add(&mut self, part: &SweepReport) {
        self.scope.add(part.scope);
        self.unmanageable_keys += part.unmanageable.len();
        self.planned += part.plans.iter().map(|p| p.actions.len()).sum::<usize>();
        self.succeeded += part.succeeded();
        self.failed += part.failed();
        self.errors += part.errors.len();
    }

    /// The process exit code this sweep deserves (docs/design.md, section 2).
    pub fn exit(&self) -> Exit {
        if self.scope.unreachable {
            Exit::Unreachable
        } else if self.failed > 0 || self.errors > 0 {
            Exit::ActionFailed
        } else {
            Exit::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: bool) -> ActionOutcome {
        ActionOutcome {
            lineage: LineageId::new("t", "render-a"),
            action: ActionKind::Rotate,
            key_id: Some("K".into()),
            ok,
            detail: String::new(),
            rotated: None,
            took: std::time::Duration::ZERO,
        }
    }

    fn team(outcomes: Vec<ActionOutcome>, errors: usize, unreachable: bool) -> SweepReport {
        SweepReport {
            scope: Scope {
                teams: 1,
                lineages: outcomes.len(),
                managed_keys: outcomes.len(),
                unreachable,
                ..Scope::default()
            },
            outcomes,
            errors: vec!["e".into(); errors],
            ..SweepReport::default()
        }
    }

    #[test]
    fn totals_folded_team_by_team_equal_the_totals_of_the_absorbed_report() {
        let parts = [
            team(vec![outcome(true), outcome(true)], 0, false),
            team(vec![outcome(false)], 1, false),
            team(vec![], 0, true),
        ];
        let mut folded = SweepTotals::default();
        let mut whole = SweepReport::default();
        for p in parts {
            folded.add(&p);
            whole.absorb(p);
        }
        assert_eq!(folded, whole.totals());
        assert_eq!(
            (
                folded.scope.teams,
                folded.succeeded,
                folded.failed,
                folded.errors
            ),
            (3, 2, 1, 1)
        );
        assert_eq!(folded.exit(), Exit::Unreachable);
    }

    #[test]
    fn exit_reads_the_totals() {
        let ok = team(vec![outcome(true)], 0, false);
        assert_eq!(ok.exit(), Exit::Success);
        let failed = team(vec![outcome(true), outcome(false)], 0, false);
        assert_eq!(failed.exit(), Exit::ActionFailed);
        let errored = team(vec![], 1, false);
        assert_eq!(errored.exit(), Exit::ActionFailed);
    }
}
