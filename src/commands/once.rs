//! `once [--dry-run]` and `rotate --team --name`: one sweep, then exit; anything
//! but a dry run then anchors the audit log's head in Vault ([`crate::anchor`]). With
//! `[ha]`, a sweep that acts holds the leader lease for its length
//! ([`super::one_shot_lease`]); a dry run changes nothing and needs no lease.

use std::path::Path;

use tracing::error;

use crate::app::App;
use crate::config::Config;
use crate::engine::{LineageId, SweepMode};
use crate::exit::{CommandError, CommandResult};
use crate::notify::DRAIN_GRACE;
use crate::services::{self, DbAccess};

use super::one_shot_lease::OneShotLease;
use super::summary;

pub async fn run(path: &Path, debug: bool, mode: SweepMode) -> CommandResult {
    let (config, credentials) = super::load(path, debug)?;
    let access = if mode == SweepMode::DryRun {
        DbAccess::ReadOnlyIfPresent
    } else {
        DbAccess::ReadWrite
    };
    if let SweepMode::RotateNow(lineage) = &mode {
        check_rotate_target(&config, path, lineage)?;
    }
    // A dry run only reads; anything that acts holds the instance lock.
    let _lock = if mode == SweepMode::DryRun {
        None
    } else {
        Some(super::lock(&config)?)
    };
    let webhook_secret = credentials.webhook_secret.clone();
    // Anything that acts writes audit rows, and anchors the log's head after.
    let store = match mode {
        SweepMode::DryRun => None,
        _ => Some(services::open_store(&config.database.path).await?),
    };
    let mut app = App::from_config(&config, credentials, access);
    if let Some(store) = &store {
        app = app.store(store.clone());
    }
    let engine = app.build().await?;
    let (engine, lease) = match (&config.ha, &mode) {
        (Some(ha), SweepMode::Apply | SweepMode::RotateNow(_)) => {
            let (engine, lease) = OneShotLease::take(ha, engine).await?;
            (engine, Some(lease))
        }
        _ => (engine, None),
    };
    let anchorer = store
        .map(|store| services::anchorer(&config, store, engine.secrets().clone()))
        .transpose()?;
    let alerts = match mode {
        SweepMode::DryRun => None,
        _ => services::alerts(&config, path, webhook_secret)?,
    };
    // Each team's lines are printed, and its events queued, as the team
    // finishes: the process never holds the whole fleet's report.
    let dry_run = mode == SweepMode::DryRun;
    let swept = engine
        .sweep_by_team(&mode, |team| {
            let lines = if dry_run {
                summary::plan_lines(&team)
            } else {
                summary::outcome_lines(&team)
            };
            print!("{lines}");
            if let Some(a) = &alerts {
                a.notify(&team);
            }
        })
        .await;
    // Whatever the sweep did, what it committed is anchored (the anchor lags the
    // log if this fails, and the next sweep catches it up).
    let anchored = match &anchorer {
        Some(a) => a.advance().await.map(|_| ()).inspect_err(|e| {
            error!(error = %e, "the audit log's head was not anchored in Vault");
        }),
        None => Ok(()),
    };
    if let Some(lease) = lease {
        lease.release().await;
    }
    let result = match swept {
        Ok(totals) => {
            if dry_run {
                print!("{}", summary::plan_close(&totals));
            } else {
                print!("{}", summary::outcome_close(&totals));
            }
            let masv = engine.keys().stats();
            println!(
                "calls: MASV {} ({} retries, {} logins), Vault {}",
                masv.requests,
                masv.retries,
                masv.logins,
                engine.secrets().requests()
            );
            let exit = totals.exit();
            Ok(anchored.map_or_else(|e| exit.worst(e.exit()), |()| exit))
        }
        Err(e) => Err(CommandError::usage(e)),
    };
    // One-shot: pending webhook events get a bounded moment before the process ends.
    if let Some(a) = alerts {
        a.shutdown(DRAIN_GRACE).await;
    }
    result
}

/// `rotate` names a lineage the config manages: a team of the config, a name
/// the daemon can manage, matched by one of the team's patterns.
fn check_rotate_target(
    config: &Config,
    path: &Path,
    LineageId { team_id, name }: &LineageId,
) -> Result<(), CommandError> {
    let Some(team) = config.teams.iter().find(|t| &t.id == team_id) else {
        return Err(CommandError::usage(format_args!(
            "--team {team_id} is not a [[team]] in {}",
            path.display()
        )));
    };
    if let Some(problem) = crate::engine::admission::name_problem(name) {
        return Err(CommandError::usage(format_args!(
            "--name {name:?}: the daemon cannot manage this key: {}",
            problem.describe()
        )));
    }
    if !team.matcher().is_match(name) {
        return Err(CommandError::usage(format_args!("--name {name} matches none of team {team_id}'s keys patterns in {}: the daemon does not manage it",
            path.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::escape::{escaped, needs_escape};

    /// `rotate` quotes a refused name with `{:?}`, which already writes every
    /// character `escaped` would replace as an escape: printed through the one
    /// error path, the message keeps its bytes.
    #[test]
    fn a_refused_name_reads_the_same_through_the_error_path() {
        let risky = (0..=u32::from(char::MAX))
            .filter_map(char::from_u32)
            .filter(|&c| needs_escape(c));
        for c in risky {
            let quoted = format!("{:?}", format!("ci-{c}"));
            assert_eq!(escaped(&quoted).to_string(), quoted, "{c:?}");
        }
    }
}
