//! `once [--dry-run]` and `rotate --team --name`: one sweep, then exit. With
//! `[ha]`, a sweep that acts holds the leader lease for its length
//! ([`super::one_shot_lease`]); a dry run changes nothing and needs no lease.

use std::path::Path;

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
    let engine = App::from_config(&config, credentials, access)
        .build()
        .await?;
    let (engine, lease) = match (&config.ha, &mode) {
        (Some(ha), SweepMode::Apply | SweepMode::RotateNow(_)) => {
            let (engine, lease) = OneShotLease::take(ha, engine).await?;
            (engine, Some(lease))
        }
        _ => (engine, None),
    };
    let alerts = match mode {
        SweepMode::DryRun => None,
        _ => services::alerts(&config, path, webhook_secret)?,
    };
    let swept = engine.sweep(&mode).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    if let (Ok(report), Some(a)) = (&swept, &alerts) {
        a.notify(report);
    }
    let result = match swept {
        Ok(report) => {
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
            Ok(report.exit())
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
