//! `history [--key ID] [--since DUR] [--json] [--verify]`: the audit log.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use crate::exit::Exit;
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
            r.key_name.as_deref().unwrap_or("-"),
            r.key_id.as_deref().unwrap_or("-"),
            r.detail
        );
    }
    out
}

pub async fn run(path: &Path, args: HistoryArgs) -> Exit {
    let config = match super::load_config(path) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let store = match Store::open_read_only(&config.database.path).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: database.path: {e}");
            return e.exit();
        }
    };
    if args.verify {
        return match store.verify_chain().await {
            Ok(ChainReport::Intact { rows }) => {
                println!("audit log intact: {rows} rows, hash chain verified");
                Exit::Success
            }
            Ok(ChainReport::Broken {
                first_bad_id,
                reason,
            }) => {
                println!("audit log BROKEN at row {first_bad_id}: {reason}");
                Exit::ActionFailed
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::ActionFailed
            }
        };
    }
    let since = match args.since.map(chrono::Duration::from_std) {
        Some(Ok(d)) => Some(chrono::Utc::now() - d),
        Some(Err(_)) => {
            eprintln!("error: --since is too long");
            return Exit::Usage;
        }
        None => None,
    };
    let filter = AuditFilter {
        key_id: args.key,
        since,
        rotation_id: None,
        limit: None,
    };
    let rows = match store.audit(&filter).await {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::ActionFailed;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::ActionFailed;
            }
        }
    } else {
        print!("{}", table(&rows));
    }
    Exit::Success
}
