//! Key names as an attacker on the team would choose them, through the real
//! binary: `once` (summary and text log), `status`, `history` and `report` show
//! them escaped, CSV cells cannot start a formula, the Markdown table keeps its
//! columns, and the JSON outputs keep the names exact.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::Duration;
use serde_json::Value;

use crate::helpers::bin::{once, run};
use crate::helpers::world::World;

/// Names the daemon manages: they rotate and reach the summary, `status`,
/// `history`, `report` and the log, escaped where they could mislead.
const NAMES: &[&str] = &[
    "=HYPERLINK(\"evil.example\",\"click\")",
    "+ci",
    "-ci",
    "@ci",
    "ci|pipe",
];

/// Names that cannot be a Vault path segment (control, C1, bidi and
/// line-separator characters): their keys are left alone and reported by id,
/// so the names themselves reach no output. The log is checked whole: a pipe
/// gets no colour codes, and every line starts with its time.
const UNMANAGEABLE: &[&str] = &[
    "ci-\x1b]0;pwned\x07\x1b[31mred",
    "ci-x\nresult: 99 action(s) ok, 0 failed",
    "ci-\u{9b}2J",
    "ci-\u{202e}gpj.exe",
    "ci-\u{2028}line",
];

fn args(config: &Path, rest: &[&str]) -> Vec<String> {
    let mut v = vec!["--config".to_string(), config.display().to_string()];
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// Output fit for a terminal and a line-oriented reader: valid UTF-8, no
/// control character but the newline, no C1, bidi or line-separator character.
fn assert_shown(what: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 output");
    let bad = text.chars().find(|&c| {
        (c != '\n' && c.is_control())
            || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    });
    assert!(bad.is_none(), "{what}: {bad:?} reached the output:\n{text}");
    text
}

/// The records of an RFC 4180 text (rows end in LF or CRLF).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (vec![], vec![], String::new());
    let (mut chars, mut quoted) = (text.chars().peekable(), false);
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (_, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "unterminated CSV:\n{text}"
    );
    records
}

/// Columns of a GFM table row: `|` not escaped by a backslash, less one.
fn md_columns(row: &str) -> usize {
    row.replace("\\\\", "")
        .replace("\\|", "")
        .matches('|')
        .count()
        - 1
}

#[tokio::test]
async fn hostile_key_names_reach_every_human_output_escaped() {
    let mut w = World::new().await;
    w.patterns = vec!["*".into()];
    for name in NAMES.iter().chain(UNMANAGEABLE) {
        w.seed(name, Duration::days(3), None);
    }
    let config = w.write_config("");

    let o = once(&config).await;
    assert_eq!(o.status.code(), Some(0), "unmanageable names fail nothing");
    let summary = assert_shown("once", &o.stdout);
    let log = assert_shown("once log", &o.stderr);
    assert_eq!(
        summary.lines().filter(|l| l.starts_with("result:")).count(),
        1,
        "{summary}"
    );
    assert_eq!(
        summary.matches("left alone").count(),
        UNMANAGEABLE.len(),
        "{summary}"
    );
    assert!(
        !summary.contains("pwned") && !summary.contains("gpj.exe"),
        "{summary}"
    );
    assert!(
        log.contains("key_name==HYPERLINK(\"evil.example\",\"click\")"),
        "{log}"
    );
    assert!(
        log.lines().all(|l| l.len() > 20
            && l.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && l.as_bytes()[4] == b'-'),
        "every log line starts with its time:\n{log}"
    );

    let o = run(args(&config, &["status"])).await;
    assert_eq!(o.status.code(), Some(0));
    let status = assert_shown("status", &o.stdout);
    let o = run(args(&config, &["status", "--json"])).await;
    let keys: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status.lines().count(), 1 + keys.len() + 1, "{status}");
    let listed: BTreeSet<&str> = keys
        .iter()
        .map(|k| k["lineage"].as_str().unwrap())
        .collect();
    assert_eq!(listed, NAMES.iter().copied().collect(), "--json is exact");

    let o = run(args(&config, &["history"])).await;
    assert_eq!(o.status.code(), Some(0));
    let history = assert_shown("history", &o.stdout);
    let o = run(args(&config, &["history", "--json"])).await;
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(history.lines().count(), 1 + rows.len(), "{history}");
    assert!(history.contains("=HYPERLINK("), "{history}");

    let o = run(args(&config, &["report", "--format", "json"])).await;
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let lineages = report["lineages"].as_array().unwrap();
    let names: BTreeSet<&str> = lineages
        .iter()
        .map(|l| l["lineage"].as_str().unwrap())
        .collect();
    assert_eq!(names, NAMES.iter().copied().collect(), "JSON is exact");

    let o = run(args(&config, &["report", "--format", "csv"])).await;
    let csv = assert_shown("report csv", &o.stdout);
    let records = parse_csv(&csv);
    assert_eq!(records.len(), 1 + lineages.len(), "{csv}");
    for cell in records.iter().flatten() {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{cell:?} starts a formula:\n{csv}"
        );
    }
    assert!(records.iter().all(|r| r.len() == 12), "{csv}");
    assert!(
        records
            .iter()
            .any(|r| r[1] == "'=HYPERLINK(\"evil.example\",\"click\")"),
        "{csv}"
    );

    let o = run(args(&config, &["report", "--format", "md"])).await;
    let md = assert_shown("report md", &o.stdout);
    let table: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(table.len(), 2 + lineages.len(), "{md}");
    assert!(table.iter().all(|r| md_columns(r) == 12), "{md}");
}
