//! `history [--key ID] [--since DUR] [--json] [--verify] [--follow]`: the audit log.
//! The table shows key names, ids and details [`escaped`]; `--json` is exact.
//!
//! `--verify` checks the hash chain, then that the log contains the head
//! anchored in Vault at `_audit/<instance_id>` and reaches its row count
//! ([`crate::anchor`]): a dropped tail, a rewritten chain or an older copy of
//! the database passes the first check but not the second.
//!
//! `--follow` is for shipping the log (a SIEM, a `journalctl -f`-style tail):
//! the rows that match, then each new one as it is committed, until SIGTERM or
//! SIGINT (exit 0) or until the reader goes away (a closed pipe, exit 0). With
//! `--json` each row is one JSON object on its own line, so a shipper needs no
//! JSON-array framing. It reads the database read-only, on from the last row
//! it printed, every [`FOLLOW_POLL`]: SQLite has no change notification across
//! processes, and a poll of an indexed `id > ?` costs next to nothing.

use std::fmt::Write;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::anchor::{self, AnchorVerdict};
use crate::config::{Config, Credentials};
use crate::escape::escaped;
use crate::exit::{CommandError, CommandResult, Exit};
use crate::services;
use crate::store::{AuditFilter, AuditRow, ChainReport, Store};
use crate::vault::VaultError;

pub struct HistoryArgs {
    pub key: Option<String>,
    pub since: Option<Duration>,
    pub json: bool,
    pub verify: bool,
    pub follow: bool,
}

/// How often `--follow` looks for new rows.
pub const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// The most rows `--follow` reads at once.
const FOLLOW_BATCH: u32 = 1000;

pub fn table(rows: &[AuditRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6} {:<24} {:<14} {:<7} {:<28} {:<26} DETAIL",
        "ID", "AT", "ACTION", "OUTCOME", "LINEAGE", "KEY"
    );
    out.push_str(&table_rows(rows));
    out
}

/// The table's lines for `rows`, without the header.
fn table_rows(rows: &[AuditRow]) -> String {
    let mut out = String::new();
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

#[tracing::instrument(skip_all, fields(follow = args.follow, verify = args.verify))]
pub async fn run(path: &Path, args: HistoryArgs, shutdown: CancellationToken) -> CommandResult {
    let config = super::load_config(path)?;
    let store = Store::open_read_only(&config.database.path)
        .await
        .map_err(|e| CommandError::new(e.exit(), format_args!("database.path: {e}")))?;
    if args.verify {
        return verify(&config, &store).await;
    }
    let since = match args.since.map(chrono::Duration::from_std) {
        Some(Ok(d)) => Some(chrono::Utc::now() - d),
        Some(Err(_)) => return Err(CommandError::usage("--since is too long")),
        None => None,
    };
    let filter = AuditFilter {
        after_id: None,
        key_id: args.key,
        since,
        rotation_id: None,
        limit: None,
    };
    if args.follow {
        super::daemon::watch_stop_signals(shutdown.clone()).map_err(|e| {
            CommandError::failed(format_args!("cannot install signal handlers: {e}"))
        })?;
        return follow(&store, filter, args.json, &shutdown).await;
    }
    let rows = store.audit(&filter).await.map_err(CommandError::failed)?;
    if args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(CommandError::failed)?;
        println!("{text}");
    } else {
        print!("{}", table(&rows));
    }
    Ok(Exit::Success)
}

/// `--verify`: the local chain, then the anchored head in Vault. Exit 1 when
/// either does not match; 3 (having printed the local result) when Vault
/// cannot be reached; 0 with a note when no anchor was written yet.
async fn verify(config: &Config, store: &Store) -> CommandResult {
    let rows = match store.verify_chain().await.map_err(CommandError::failed)? {
        ChainReport::Intact { rows } => {
            println!("audit log intact: {rows} rows, hash chain verified");
            rows
        }
        ChainReport::Broken {
            first_bad_id,
            reason,
        } => {
            println!(
                "audit log BROKEN at row {first_bad_id}: {}",
                escaped(reason)
            );
            return Ok(Exit::ActionFailed);
        }
    };
    let instance = config
        .instance_id()
        .map_err(|e| CommandError::usage(format!("{}: {e}", config.source.display())))?;
    let credentials = Credentials::resolve(config).map_err(CommandError::usage)?;
    let vault = services::connect_vault(
        services::vault_settings(config, credentials.vault),
        crate::traffic::Traffic::default(),
    )
    .await
    .map_err(|e| {
        CommandError::new(
            e.exit(),
            format!("{}; only the local chain was checked", e.message()),
        )
    })?;
    let location = vault.anchor_location(&instance);
    let observed = match vault.read_anchor(&instance).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!(
                "no audit anchor at {location} yet: only the local chain was checked (the daemon writes it after its first sweep that writes rows)"
            );
            return Ok(Exit::Success);
        }
        Err(e) => {
            let exit = match &e {
                e if e.is_unreachable() => Exit::Unreachable,
                VaultError::PermissionDenied { .. } | VaultError::Auth { .. } => Exit::Usage,
                // A malformed anchor is one somebody wrote by hand.
                _ => Exit::ActionFailed,
            };
            return Err(CommandError::new(
                exit,
                format!("cannot read the audit anchor: {e}; only the local chain was checked"),
            ));
        }
    };
    let anchor = &observed.anchor;
    let stored = store
        .audit_hash(anchor.id)
        .await
        .map_err(CommandError::failed)?;
    match anchor::compare(rows, stored.as_deref(), anchor) {
        AnchorVerdict::Contains { lag } => {
            let behind = if lag == 0 {
                String::new()
            } else {
                format!(
                    "; the {lag} newer row(s) are not anchored yet (written since the last anchor)"
                )
            };
            println!(
                "audit anchor matches: the log contains row {} of {location} (version {}){behind}",
                anchor.id, observed.version
            );
            Ok(Exit::Success)
        }
        AnchorVerdict::Mismatch { reason } => {
            println!(
                "audit log does NOT match its anchor at {location} (version {}): {}",
                observed.version,
                escaped(reason)
            );
            Ok(Exit::ActionFailed)
        }
    }
}

/// The rows matching `filter`, then each new one, until `shutdown` or until
/// stdout is closed.
async fn follow(
    store: &Store,
    mut filter: AuditFilter,
    json: bool,
    shutdown: &CancellationToken,
) -> CommandResult {
    filter.limit = Some(FOLLOW_BATCH);
    if !json && emit(&table(&[])).is_err() {
        return Ok(Exit::Success);
    }
    loop {
        let rows = store
            .audit(&filter)
            .await
            .map_err(|e| CommandError::failed(format_args!("history --follow: {e}")))?;
        let text = if json {
            json_lines(&rows).map_err(CommandError::failed)?
        } else {
            table_rows(&rows)
        };
        if emit(&text).is_err() {
            // The reader went away (a closed pipe): nothing left to follow for.
            return Ok(Exit::Success);
        }
        if let Some(last) = rows.last() {
            filter.after_id = Some(last.id);
        }
        if rows.len() as u32 == FOLLOW_BATCH {
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(Exit::Success),
            () = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

/// One JSON object per row, one row per line.
fn json_lines(rows: &[AuditRow]) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(r)?);
        out.push('\n');
    }
    Ok(out)
}

/// Writes and flushes `text` to stdout (an error: the reader is gone).
fn emit(text: &str) -> std::io::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
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
