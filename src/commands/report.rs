//! `report [--format md|json|csv]`: compliance evidence per lineage.

use std::fmt::Write;
use std::path::Path;

use clap::ValueEnum;

use super::status::when;
use crate::exit::Exit;
use crate::view::View;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Md,
    Json,
    Csv,
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn markdown(view: &View) -> String {
    let mut out = String::new();
    let total = view.lineages.len();
    let ok = view.lineages.iter().filter(|l| l.within_policy).count();
    let _ = writeln!(out, "# MASV API key rotation report\n");
    let _ = writeln!(
        out,
        "Generated {} from the daemon's records; keys as last listed {}.\n",
        when(Some(view.generated_at)),
        when(view.listed_at)
    );
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(out, "- Managed lineages: {total}");
    let _ = writeln!(
        out,
        "- Within policy: {ok} of {total} ({:.1} %)",
        view.within_policy_percent()
    );
    let _ = writeln!(
        out,
        "- Overdue: {}",
        view.lineages.iter().filter(|l| l.overdue).count()
    );
    let _ = writeln!(
        out,
        "- Stale (unused for `unused_after`): {}",
        view.lineages.iter().filter(|l| l.stale).count()
    );
    let _ = writeln!(
        out,
        "- Suspended keys: {}",
        view.lineages
            .iter()
            .map(|l| l.suspended_keys.len())
            .sum::<usize>()
    );
    let _ = writeln!(
        out,
        "- Active keys older than `max_age`: {}\n",
        view.lineages
            .iter()
            .map(|l| l.over_max_age.len())
            .sum::<usize>()
    );
    let _ = writeln!(out, "## Lineages\n");
    let _ = writeln!(out, "| Team | Lineage | Current key | Age (days) | Last rotation | Next due | Overdue | Stale | Suspended | Older than max_age | Within policy |");
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | --- | --- | --- | --- | --- | --- | --- |"
    );
    for l in &view.lineages {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            l.team_id,
            l.lineage,
            l.current_key_id.as_deref().unwrap_or("none stored"),
            l.current_age_days.map_or("-".into(), |d| d.to_string()),
            when(l.last_rotation),
            when(l.next_due),
            yes(l.overdue),
            yes(l.stale),
            if l.suspended_keys.is_empty() {
                "-".to_string()
            } else {
                l.suspended_keys.join(", ")
            },
            if l.over_max_age.is_empty() {
                "-".to_string()
            } else {
                l.over_max_age.join(", ")
            },
            yes(l.within_policy),
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv(view: &View) -> String {
    let mut out = String::from("team_id,lineage,current_key_id,current_age_days,last_rotation,next_due,overdue,stale,suspended_keys,over_max_age,within_policy\n");
    let t = |d: Option<chrono::DateTime<chrono::Utc>>| {
        d.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    for l in &view.lineages {
        let fields = [
            l.team_id.clone(),
            l.lineage.clone(),
            l.current_key_id.clone().unwrap_or_default(),
            l.current_age_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            t(l.last_rotation),
            t(l.next_due),
            l.overdue.to_string(),
            l.stale.to_string(),
            l.suspended_keys.join(" "),
            l.over_max_age.join(" "),
            l.within_policy.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

pub fn json(view: &View) -> Result<String, serde_json::Error> {
    let summary = serde_json::json!({
        "generated_at": view.generated_at,
        "listed_at": view.listed_at,
        "lineages": view.lineages.len(),
        "within_policy": view.lineages.iter().filter(|l| l.within_policy).count(),
        "within_policy_percent": view.within_policy_percent(),
        "overdue": view.lineages.iter().filter(|l| l.overdue).count(),
        "stale": view.lineages.iter().filter(|l| l.stale).count(),
    });
    serde_json::to_string_pretty(
        &serde_json::json!({ "summary": summary, "lineages": view.lineages }),
    )
}

pub async fn run(path: &Path, format: ReportFormat) -> Exit {
    let view = match super::offline_view(path).await {
        Ok(v) => v,
        Err(exit) => return exit,
    };
    match format {
        ReportFormat::Md => print!("{}", markdown(&view)),
        ReportFormat::Csv => print!("{}", csv(&view)),
        ReportFormat::Json => match json(&view) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::ActionFailed;
            }
        },
    }
    Exit::Success
}
