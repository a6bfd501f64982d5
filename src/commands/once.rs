//! `once [--dry-run]` and `rotate --team --name`: one sweep, then exit.

use std::path::Path;
use std::sync::Arc;

use super::fail;
use crate::clock::SystemClock;
use crate::engine::{LineageId, SweepMode};
use crate::exit::Exit;
use crate::notify::Notifier;
use crate::services::{self, DbAccess};
use std::time::Duration;

use super::summary;

pub async fn run(path: &Path, debug: bool, mode: SweepMode) -> Exit {
    let (config, credentials) = match super::load(path, debug) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    let access = if mode == SweepMode::DryRun {
        DbAccess::ReadOnlyIfPresent
    } else {
        DbAccess::ReadWrite
    };
    if let SweepMode::RotateNow(LineageId { team_id, name }) = &mode {
        let Some(team) = config.teams.iter().find(|t| &t.id == team_id) else {
            fail(format_args!(
                "--team {team_id} is not a [[team]] in {}",
                path.display()
            ));
            return Exit::Usage;
        };
        if let Some(problem) = crate::engine::admission::name_problem(name) {
            eprintln!(
                "error: --name {name:?}: the daemon cannot manage this key: {}",
                problem.describe()
            );
            return Exit::Usage;
        }
        if !team.matcher().is_match(name) {
            fail(format_args!("--name {name} matches none of team {team_id}'s keys patterns in {}: the daemon does not manage it",
                path.display()));
            return Exit::Usage;
        }
    }
    // A dry run only reads; anything that acts holds the instance lock.
    let _lock = if mode == SweepMode::DryRun {
        None
    } else {
        match super::lock(&config) {
            Ok(lock) => Some(lock),
            Err(exit) => return exit,
        }
    };
    let engine = match services::engine(&config, credentials, Arc::new(SystemClock), access).await {
        Ok(e) => e,
        Err(e) => {
            fail(&e.message);
            return e.exit;
        }
    };
    let alerts = match (&mode, &config.notify) {
        (SweepMode::DryRun, _) | (_, None) => None,
        (_, Some(n)) => match Notifier::new(&n.webhook_url, Duration::from_secs(10)) {
            Ok(a) => Some(a),
            Err(e) => {
                fail(format_args!("{}: notify.webhook_url: {e}", path.display()));
                return Exit::Usage;
            }
        },
    };
    match engine.sweep(&mode).await {
        Ok(report) => {
            if let Some(a) = alerts {
                a.notify(&report);
                // one-shot: give the webhook a moment before the process ends
                a.shutdown(Duration::from_secs(15)).await;
            }
            if mode == SweepMode::DryRun {
                print!("{}", summary::plan(&report));
            } else {
                print!("{}", summary::outcome(&report));
            }
            let masv = engine.keys().stats();
            println!(
                "calls: MASV {} ({} retries, {} logins), Vault {}",
                masv.requests,
                masv.retries,
                masv.logins,
                engine.secrets().requests()
            );
            report.exit()
        }
        Err(e) => {
            fail(e);
            Exit::Usage
        }
    }
}
