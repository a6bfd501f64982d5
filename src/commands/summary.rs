//! Human-readable sweep summaries (for `once`, `rotate`, `demo`).

use std::fmt::Write;

use crate::engine::planner::{Action, Note};
use crate::engine::SweepReport;

fn describe(action: &Action) -> String {
    match action {
        Action::Rotate {
            reason, old_key_id, ..
        } => match old_key_id {
            Some(old) => format!("rotate ({reason}): replace {old}"),
            None => format!("rotate ({reason}): create the lineage's first managed key"),
        },
        Action::Resume { rotation_id, phase } => {
            format!("resume rotation {rotation_id} (was {phase})")
        }
        Action::Deactivate { key_id, reason } => format!("deactivate {key_id} ({reason:?})"),
        Action::Delete { key_id } => format!("delete {key_id}"),
        Action::CleanupOrphan {
            key_id,
            rotation_id,
        } => {
            format!("delete orphan {key_id} (created by rotation {rotation_id}, never stored)")
        }
        Action::Track { key_id } => format!("track extra key {key_id} for retirement"),
        Action::Forget { key_id } => format!("forget {key_id} (no longer listed)"),
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

/// The plan of a dry run.
pub fn plan(report: &SweepReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dry run: {} team(s), {} lineage(s), {} managed key(s), {} unmanaged (untouched). Nothing was changed.",
        report.teams, report.lineages, report.managed_keys, report.unmanaged_keys
    );
    let mut any = false;
    for p in &report.plans {
        for a in &p.actions {
            any = true;
            let _ = writeln!(out, "  would {:<40} {}", p.lineage.to_string(), describe(a));
        }
    }
    if !any {
        let _ = writeln!(out, "  nothing is due");
    }
    notes(report, &mut out);
    errors(report, &mut out);
    out
}

/// What a sweep did.
pub fn outcome(report: &SweepReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sweep: {} team(s), {} lineage(s), {} managed key(s), {} unmanaged (untouched)",
        report.teams, report.lineages, report.managed_keys, report.unmanaged_keys
    );
    for p in &report.plans {
        for a in &p.actions {
            if !a.mutates() {
                continue;
            }
            let failed = report
                .outcomes
                .iter()
                .find(|o| o.lineage == p.lineage && o.key_id.as_deref() == a.key_id() && !o.ok);
            match failed {
                Some(f) => {
                    let _ = writeln!(
                        out,
                        "  FAILED {:<40} {}: {}",
                        p.lineage.to_string(),
                        describe(a),
                        f.detail
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  ok     {:<40} {}",
                        p.lineage.to_string(),
                        describe(a)
                    );
                }
            }
        }
    }
    notes(report, &mut out);
    errors(report, &mut out);
    let _ = writeln!(
        out,
        "result: {} action(s) ok, {} failed",
        report.succeeded(),
        report.failed()
    );
    out
}

fn notes(report: &SweepReport, out: &mut String) {
    for (lineage, note) in report.notes() {
        let _ = writeln!(
            out,
            "  note   {:<40} {}",
            lineage.to_string(),
            describe_note(note)
        );
    }
    for u in &report.unmanageable {
        let _ = writeln!(
            out,
            "  note   {:<40} {} left alone: {}",
            format!("{}/?", u.team_id),
            u.key_id,
            u.reason.describe()
        );
    }
}

fn errors(report: &SweepReport, out: &mut String) {
    for e in &report.errors {
        let _ = writeln!(out, "  error  {e}");
    }
}
