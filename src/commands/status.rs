//! `status [--json]`: every managed key, from the local database (no network).
//! The table shows names and ids from MASV [`escaped`]; `--json` is exact.

use std::fmt::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::escape::escaped;
use crate::exit::{CommandError, CommandResult, Exit};
use crate::view::View;

pub(crate) fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

fn snake<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The table people read.
pub fn table(view: &View) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:<26} {:<9} {:<8} {:<16} {:<16} {:>5} {:<10} WHEN",
        "LINEAGE", "KEY", "STATE", "ROLE", "EXPIRY", "LAST USE", "AGE", "NEXT"
    );
    for k in view.keys() {
        let _ = writeln!(
            out,
            "{:<40} {:<26} {:<9} {:<8} {:<16} {:<16} {:>5} {:<10} {}",
            escaped(format_args!("{}/{}", k.team_id, k.lineage)),
            escaped(&k.key_id),
            k.state.as_str(),
            snake(&k.role),
            when(k.expiry),
            when(k.last_request_at),
            k.age_days.map_or("-".to_string(), |d| format!("{d}d")),
            snake(&k.next_action),
            when(k.next_at),
        );
    }
    if view.lineages.is_empty() {
        let _ = writeln!(
            out,
            "(no managed keys recorded yet: run `once` or `run` first)"
        );
    }
    let _ = writeln!(
        out,
        "as of the last list of each team: {}",
        when(view.listed_at)
    );
    out
}

pub async fn run(path: &Path, json: bool) -> CommandResult {
    let view = super::offline_view(path).await?;
    if json {
        let keys: Vec<_> = view.keys().collect();
        let text = serde_json::to_string_pretty(&keys).map_err(CommandError::failed)?;
        println!("{text}");
    } else {
        print!("{}", table(&view));
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use crate::escape::{assert_shown, HOSTILE};

    #[test]
    fn hostile_names_stay_on_their_row() {
        let out = super::table(&crate::view::sample(HOSTILE));
        assert_shown(&out);
        assert_eq!(out.lines().count(), 1 + HOSTILE.len() + 1, "{out}");
        assert!(out.contains("ci-\\x1b]0;pwned\\x07\\x1b[2J-key"), "{out}");
        assert!(out.contains("/ci-x\\nresult: 99"), "{out}");
    }
}
