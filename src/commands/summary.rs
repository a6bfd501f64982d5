//! Human-readable sweep summaries (for `once`, `rotate`, `demo`): each team's
//! lines as it finishes, then closing lines from the sweep's totals. Lineage names,
//! key ids and failure details come from MASV, so each is [`escaped`]: a name
//! holding a newline cannot forge a summary line.

use std::fmt::Write;

use crate::engine::planner::{Action, Note};
use crate::engine::report::ActionOutcome;
use crate::engine::{LineageId, Scope, SweepReport, SweepTotals};
use crate::escape::escaped;

fn describe(action: &Action) -> String {
    match action {
        Action::Rotate {
            reason, old_key_id, ..
        } => match old_key_id {
            Some(old) => format!("rotate ({}): replace {old}", reason.words()),
            None => format!(
                "rotate ({}): create the lineage's first managed key",
                reason.words()
            ),
        },
        Action::Resume { rotation_id, phase } => {
            format!("resume rotation {rotation_id} (was {phase})")
        }
        Action::Deactivate { key_id, reason } => {
            format!("deactivate {key_id} ({})", reason.words())
        }
        Action::Delete { key_id } => format!("delete {key_id}"),
        Action::CleanupOrphan {
            key_id,
            rotation_id,
        } => {
            format!("delete orphan {key_id} (created by rotation {rotation_id}, never stored)")
        }
        Action::Track { key_id } => format!("track extra key {key_id} for retirement"),
        Action::Forget { key_id } => format!("forget {key_id} (no longer listed)"),
        Action::Adopt {
            rotation_id,
            key_id,
            phase,
            ..
        } => format!(
            "adopt rotation {rotation_id} left by another instance and resume it (new key {key_id}, {phase})"
        ),
        Action::Discard {
            rotation_id,
            key_id,
            why,
            unstage,
        } => format!(
            "give up rotation {rotation_id} left by another instance: its key {key_id} {}{}",
            why.as_str(),
            if *unstage { "; remove its pending entry" } else { "" }
        ),
        Action::AcceptPromoted {
            rotation_id,
            key_id,
            unstage,
            ..
        } => format!(
            "record {key_id}, promoted by another instance (rotation {rotation_id}){}",
            if *unstage { "; remove its pending entry" } else { "" }
        ),
        Action::RetireInactive {
            key_id,
            rotation_id,
        } => format!(
            "retire inactive {key_id} (rotation {rotation_id} of another instance); delete it after delete_after"
        ),
    }
}

fn describe_note(note: &Note) -> String {
    match note {
        Note::Suspended { key_id } => format!("{key_id} is suspended by MASV (never toggled)"),
        Note::Stale { key_id } => format!("{key_id} is stale (unused for unused_after)"),
        Note::InUse { key_id } => format!("{key_id} still in use; deactivation waits (at most max_overlap)"),
        Note::NoVerifiedReplacement { key_id } => {
            format!("{key_id} kept: no verified, active replacement yet")
        }
        Note::Reactivated { key_id } => format!("{key_id} was re-activated by someone; not deleted"),
        Note::ActiveOrphan { key_id } => format!("{key_id} is an active key the daemon created but never stored; not deleted while active"),
    }
}

/// What a dry run would do in the teams of `report`, with their notes and errors.
pub fn plan_lines(report: &SweepReport) -> String {
    let mut out = String::new();
    for p in &report.plans {
        for a in &p.actions {
            let _ = writeln!(
                out,
                "  would {:<40} {}",
                escaped(&p.lineage),
                escaped(describe(a))
            );
        }
    }
    notes(report, &mut out);
    errors(report, &mut out);
    out
}

/// A dry run's closing lines, once every team is planned.
pub fn plan_close(totals: &SweepTotals) -> String {
    let mut out = format!(
        "dry run: {}. Nothing was changed.\n",
        covered(&totals.scope)
    );
    if totals.planned == 0 {
        out.push_str("  nothing is due\n");
    }
    out
}

/// What a sweep did: one team's lines ([`outcome_lines`]) or every team's,
/// then the closing lines ([`outcome_close`]).
pub fn outcome(report: &SweepReport) -> String {
    outcome_lines(report) + &outcome_close(&report.totals())
}

/// What the sweep did in the teams of `report`: each action ok or failed, then
/// their notes and errors.
pub fn outcome_lines(report: &SweepReport) -> String {
    let mut out = String::new();
    // The first failed outcome of each lineage and key, looked up once per
    // action: a scan of every outcome per action is quadratic in the team.
    let mut failures: std::collections::HashMap<(&LineageId, Option<&str>), &ActionOutcome> =
        std::collections::HashMap::new();
    for o in report.outcomes.iter().filter(|o| !o.ok) {
        failures
            .entry((&o.lineage, o.key_id.as_deref()))
            .or_insert(o);
    }
    for p in &report.plans {
        for a in &p.actions {
            if !a.mutates() {
                continue;
            }
            let failed = failures.get(&(&p.lineage, a.key_id()));
            match failed {
                Some(f) => {
                    let _ = writeln!(
                        out,
                        "  FAILED {:<40} {}: {}",
                        escaped(&p.lineage),
                        escaped(describe(a)),
                        escaped(&f.detail)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  ok     {:<40} {}",
                        escaped(&p.lineage),
                        escaped(describe(a))
                    );
                }
            }
        }
    }
    notes(report, &mut out);
    errors(report, &mut out);
    out
}

/// A sweep's closing lines, once every team is done.
pub fn outcome_close(totals: &SweepTotals) -> String {
    format!(
        "sweep: {}\nresult: {} action(s) ok, {} failed\n",
        covered(&totals.scope),
        totals.succeeded,
        totals.failed
    )
}

/// What a sweep covered, in the words of both closing lines.
fn covered(scope: &Scope) -> String {
    format!(
        "{} team(s), {} lineage(s), {} managed key(s), {} unmanaged (untouched)",
        scope.teams, scope.lineages, scope.managed_keys, scope.unmanaged_keys
    )
}

fn notes(report: &SweepReport, out: &mut String) {
    for (lineage, note) in report.notes() {
        let _ = writeln!(
            out,
            "  note   {:<40} {}",
            escaped(lineage),
            escaped(describe_note(note))
        );
    }
    for u in &report.unmanageable {
        let _ = writeln!(
            out,
            "  note   {:<40} {} left alone: {}",
            escaped(format!("{}/?", u.team_id)),
            escaped(&u.key_id),
            u.reason.describe()
        );
    }
}

fn errors(report: &SweepReport, out: &mut String) {
    for e in &report.errors {
        let _ = writeln!(out, "  error  {}", escaped(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::planner::{ActionKind, DeactivateReason, LineagePlan};
    use crate::engine::report::ActionOutcome;
    use crate::engine::{model::DueReason, LineageId};
    use crate::escape::{assert_shown, HOSTILE};

    /// Per hostile name: a lineage of that name whose rotation replaces a key
    /// and fails with the name in its detail, a deactivation that succeeds, a
    /// note and a sweep error, all quoting the name.
    fn hostile_report() -> SweepReport {
        let mut report = SweepReport::default();
        for name in HOSTILE {
            let lineage = LineageId::new("01FB4S68W7RAW4M89801H1C4CR", *name);
            report.plans.push(LineagePlan {
                lineage: lineage.clone(),
                actions: vec![
                    Action::Rotate {
                        reason: DueReason::Expiring,
                        old_key_id: Some(name.to_string()),
                        cas: 1,
                    },
                    Action::Deactivate {
                        key_id: format!("{name}-old"),
                        reason: DeactivateReason::MaxOverlap,
                    },
                ],
                notes: vec![Note::Suspended {
                    key_id: name.to_string(),
                }],
                keys: vec![],
            });
            report.outcomes.push(ActionOutcome {
                lineage: lineage.clone(),
                action: ActionKind::Rotate,
                key_id: Some(name.to_string()),
                ok: false,
                detail: format!("MASV answered 400: {name}"),
                rotated: None,
                took: Default::default(),
            });
            report.outcomes.push(ActionOutcome {
                lineage,
                action: ActionKind::Deactivate,
                key_id: Some(format!("{name}-old")),
                ok: true,
                detail: String::new(),
                rotated: None,
                took: Default::default(),
            });
            report.errors.push(format!("team x: {name}"));
        }
        report
    }

    #[test]
    fn hostile_names_cannot_forge_or_colour_a_line() {
        let report = hostile_report();
        let n = HOSTILE.len();
        for (out, prefixes, lines) in [
            (
                plan_lines(&report) + &plan_close(&report.totals()),
                &["dry run: ", "  would "][..],
                1 + 2 * n + n + n,
            ),
            (
                outcome(&report),
                &["sweep: ", "  FAILED ", "  ok     ", "result: "][..],
                1 + 2 * n + n + n + 1,
            ),
        ] {
            assert_shown(&out);
            assert_eq!(out.lines().count(), lines, "{out}");
            let known = |l: &&str| {
                prefixes
                    .iter()
                    .chain(&["  note   ", "  error  "])
                    .any(|p| l.starts_with(p))
            };
            assert!(out.lines().all(|l| known(&l)), "{out}");
            assert!(out.lines().filter(|l| l.starts_with("result: ")).count() <= 1);
            assert!(out.contains("ci-x\\nresult: 99 action(s) ok"), "{out}");
        }
    }

    /// Plan lines give reasons in the words the webhook and the audit log
    /// use, never an enum's name.
    #[test]
    fn plan_lines_give_reasons_in_words() {
        let rotate = Action::Rotate {
            reason: DueReason::Expiring,
            old_key_id: Some("K1".into()),
            cas: 2,
        };
        assert_eq!(
            describe(&rotate),
            "rotate (the current key is within rotate_before_expiry): replace K1"
        );
        for (reason, words) in [
            (
                DeactivateReason::GraceAndIdle,
                "grace_period passed and idle for idle_before_deactivate",
            ),
            (
                DeactivateReason::MaxOverlap,
                "max_overlap has passed, though it may still have been in use",
            ),
        ] {
            let line = describe(&Action::Deactivate {
                key_id: "K0".into(),
                reason,
            });
            assert_eq!(line, format!("deactivate K0 ({words})"));
            assert!(!line.contains("GraceAndIdle") && !line.contains("MaxOverlap"));
        }
    }
}
