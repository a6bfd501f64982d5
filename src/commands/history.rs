//! `history [--key ID] [--since DUR] [--json] [--verify]`: the audit log.
//! The table shows key names, ids and details [`escaped`]; `--json` is exact.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use crate::escape::escaped;
use crate::exit::{CommandError, CommandResult, Exit};
use crate::store::{AuditFilter, AuditRow, ChainReport, Store};

pub struct HistoryArgs {
    pub key: Option<String>,
    pub since: Option<Duration>,
    pub json: bool,
    pub verify: bool,
}

pub fn table(rows: &[AuditRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6} {:<24} {:<14} {:<7} {:<28} {:<26} DETAIL",
        "ID", "AT", "ACTION", "OUTCOME", "LINEAGE", "KEY"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:>6} {:<24} {:<14} {:<7} {:<28} {:<26} {}",
            r.id,
            r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            r.action.as_str(),
            r.outcome.as_str(),
            escaped(r.key_name.as_deref().unwrap_or("-")),
            escaped(r.key_id.as_deref().unwrap_or("-")),
            escaped(&r.detail)
        );
    }
    out
}

pub async fn run(path: &Path, args: HistoryArgs) -> CommandResult {
    let config = super::load_config(path)?;
    let store = Store::open_read_only(&config.database.path)
        .await
        .map_err(|e| CommandError::new(e.exit(), format_args!("database.path: {e}")))?;
    if args.verify {
        return match store.verify_chain().await.map_err(CommandError::failed)? {
            ChainReport::Intact { rows } => {
                println!("audit log intact: {rows} rows, hash chain verified");
                Ok(Exit::Success)
            }
            ChainReport::Broken {
                first_bad_id,
                reason,
            } => {
                println!(
                    "audit log BROKEN at row {first_bad_id}: {}",
                    escaped(reason)
                );
                Ok(Exit::ActionFailed)
            }
        };
    }
    let since = match args.since.map(chrono::Duration::from_std) {
        Some(Ok(d)) => Some(chrono::Utc::now() - d),
        Some(Err(_)) => return Err(CommandError::usage("--since is too long")),
        None => None,
    };
    let filter = AuditFilter {
        key_id: args.key,
        since,
        rotation_id: None,
        limit: None,
    };
    let rows = store.audit(&filter).await.map_err(CommandError::failed)?;
    if args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(CommandError::failed)?;
        println!("{text}");
    } else {
        print!("{}", table(&rows));
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use crate::escape::{assert_shown, HOSTILE};
    use crate::store::{AuditAction, AuditRow, Outcome};

    #[test]
    fn hostile_names_and_details_stay_on_their_row() {
        let rows: Vec<AuditRow> = HOSTILE
            .iter()
            .enumerate()
            .map(|(i, name)| AuditRow {
                id: i as i64 + 1,
                at: chrono::Utc::now(),
                team_id: None,
                key_id: Some(format!("{name}-key")),
                key_name: Some(name.to_string()),
                action: AuditAction::Create,
                outcome: Outcome::Failed,
                detail: format!("MASV said: {name}"),
                rotation_id: None,
                lease_token: None,
                prev_hash: String::new(),
                hash: String::new(),
            })
            .collect();
        let out = super::table(&rows);
        assert_shown(&out);
        assert_eq!(out.lines().count(), 1 + HOSTILE.len(), "{out}");
        assert!(out.contains("MASV said: ci-x\\nresult: 99"), "{out}");
    }
}
