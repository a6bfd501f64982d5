//! `report [--format md|json|csv]`: compliance evidence per lineage.
//!
//! Team ids come from the config, names and key ids from MASV, where anyone on
//! the team can name a key anything. So every text cell is made safe for where
//! the report goes: in Markdown, controls [`escaped`] and `\` and `|`
//! backslash-escaped, so each lineage stays one table row of the same columns;
//! in CSV, controls [`escaped`] (a CSV is read in terminals too), a cell that
//! would start a spreadsheet formula (`=`, `+`, `-`, `@`, tab, CR) prefixed
//! with `'` as OWASP advises, and any cell holding `"`, `,`, CR or LF quoted as
//! RFC 4180 says. Rows end in LF, not RFC 4180's CRLF: the report is printed
//! for Unix pipes, every spreadsheet and CSV reader takes LF, and so the report
//! holds no CR at all. JSON is exact: serde escapes what JSON requires.

use std::fmt::{Display, Write};
use std::path::Path;

use clap::ValueEnum;

use super::status::when;
use crate::escape::escaped;
use crate::exit::{CommandError, CommandResult, Exit};
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
    let _ = writeln!(out, "| Team | Lineage | Current key | Age (days) | Last rotation | Next due | Due because | Overdue | Stale | Suspended | Older than max_age | Within policy |");
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for l in &view.lineages {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md_cell(&l.team_id),
            md_cell(&l.lineage),
            md_cell(l.current_key_id.as_deref().unwrap_or("none stored")),
            l.current_age_days.map_or("-".into(), |d| d.to_string()),
            when(l.last_rotation),
            when(l.next_due),
            l.due_because.unwrap_or("-"),
            yes(l.overdue),
            yes(l.stale),
            md_list(&l.suspended_keys),
            md_list(&l.over_max_age),
            yes(l.within_policy),
        );
    }
    out
}

/// A Markdown table cell: controls [`escaped`] (a newline would end the row),
/// then `\` and `|` backslash-escaped. A GFM table splits a row at every `|`
/// not escaped, and `\\|` is an escaped backslash before a live `|`, so the
/// backslash is escaped too.
fn md_cell(text: impl Display) -> String {
    escaped(text)
        .to_string()
        .replace('\\', "\\\\")
        .replace('|', "\\|")
}

/// A list of key ids as one Markdown cell (`-` when empty).
fn md_list(ids: &[String]) -> String {
    if ids.is_empty() {
        "-".to_string()
    } else {
        md_cell(ids.join(", "))
    }
}

/// A CSV cell of text (a team id, a name, key ids): controls [`escaped`];
/// a formula lead (`=`, `+`, `-`, `@`, tab, CR, checked on the text as given)
/// prefixed with `'`; quoted when it holds `"`, `,`, CR or LF or had a formula
/// lead. The report's other cells are numbers, RFC 3339 times and booleans it
/// writes itself; they are left as they are, so a negative age stays a number.
fn csv_text(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let cell = if formula {
        format!("'{}", escaped(text))
    } else {
        escaped(text).to_string()
    };
    if formula || cell.contains(['"', ',', '\r', '\n']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

pub fn csv(view: &View) -> String {
    let mut out = String::from("team_id,lineage,current_key_id,current_age_days,last_rotation,next_due,overdue,stale,suspended_keys,over_max_age,within_policy,due_because\n");
    let t = |d: Option<chrono::DateTime<chrono::Utc>>| {
        d.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    for l in &view.lineages {
        let fields = [
            csv_text(&l.team_id),
            csv_text(&l.lineage),
            csv_text(l.current_key_id.as_deref().unwrap_or_default()),
            l.current_age_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            t(l.last_rotation),
            t(l.next_due),
            l.overdue.to_string(),
            l.stale.to_string(),
            csv_text(&l.suspended_keys.join(" ")),
            csv_text(&l.over_max_age.join(" ")),
            l.within_policy.to_string(),
            csv_text(l.due_because.unwrap_or_default()),
        ];
        out.push_str(&fields.join(","));
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

pub async fn run(path: &Path, format: ReportFormat) -> CommandResult {
    let view = super::offline_view(&super::load_config(path)?).await?;
    match format {
        ReportFormat::Md => print!("{}", markdown(&view)),
        ReportFormat::Csv => print!("{}", csv(&view)),
        ReportFormat::Json => println!("{}", json(&view).map_err(CommandError::failed)?),
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escape::{assert_shown, HOSTILE};

    #[test]
    fn csv_text_neutralises_every_formula_lead() {
        for (text, cell) in [
            ("=1+1", "\"'=1+1\""),
            ("+1", "\"'+1\""),
            ("-1", "\"'-1\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\tx", "\"'\\tx\""),
            ("\rx", "\"'\\rx\""),
            (
                "=HYPERLINK(\"http://e.example\",\"x\")",
                "\"'=HYPERLINK(\"\"http://e.example\"\",\"\"x\"\")\"",
            ),
        ] {
            assert_eq!(csv_text(text), cell, "{text:?}");
        }
    }

    #[test]
    fn csv_text_quotes_as_rfc_4180_says_and_escapes_controls() {
        for (text, cell) in [
            ("ci-build", "ci-build"),
            ("", ""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("a\nb", "a\\nb"),
            ("a\rb", "a\\rb"),
            ("a\r\n,b", "\"a\\r\\n,b\""),
            ("x=1", "x=1"),
            ("a\x1b[31m", "a\\x1b[31m"),
        ] {
            assert_eq!(csv_text(text), cell, "{text:?}");
        }
    }

    #[test]
    fn csv_keeps_one_row_per_lineage_and_numbers_as_numbers() {
        let out = csv(&crate::view::sample(HOSTILE));
        assert_shown(&out);
        let rows: Vec<&str> = out.lines().collect();
        assert_eq!(rows.len(), 1 + HOSTILE.len(), "{out}");
        assert!(out.ends_with('\n') && !out.contains('\r'));
        // a negative age is a number, not a formula
        assert!(rows[1].contains(",-1,2030-01-02T03:04:05Z,"), "{}", rows[1]);
        let row = |name: &str| rows[1 + HOSTILE.iter().position(|n| *n == name).unwrap()];
        assert!(row("=HYPERLINK(\"http://evil.example\",\"ci\")")
            .contains(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"ci\"\")\","));
    }

    #[test]
    fn md_cell_escapes_pipes_backslashes_and_controls() {
        assert_eq!(md_cell("ci-build"), "ci-build");
        assert_eq!(md_cell("a|b"), "a\\|b");
        assert_eq!(md_cell("a\\|b"), "a\\\\\\|b");
        assert_eq!(md_cell("a\nb"), "a\\\\nb");
        assert_eq!(md_cell("a\x1b"), "a\\\\x1b");
    }

    /// The cells of a GFM table row: split at every `|` not escaped by a backslash.
    fn md_cells(row: &str) -> usize {
        let (mut cells, mut chars) = (0, row.chars());
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '|' => cells += 1,
                _ => {}
            }
        }
        cells - 1
    }

    #[test]
    fn markdown_table_keeps_its_columns() {
        let out = markdown(&crate::view::sample(HOSTILE));
        assert_shown(&out);
        let table: Vec<&str> = out.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(table.len(), 2 + HOSTILE.len(), "{out}");
        assert!(table.iter().all(|r| md_cells(r) == 12), "{out}");
        assert!(out.contains("| ci\\|x \\| y |"), "{out}");
    }
}
