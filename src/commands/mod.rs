//! One module per command. Each prints its own human-facing output and returns a
//! [`CommandResult`]; [`run`] dispatches the command line to them and [`finish`]
//! is the one place a failing command's error is printed and mapped to its exit
//! code.

pub mod check_config;
pub mod daemon;
pub mod demo;
pub mod history;
pub mod manual;
pub mod once;
mod one_shot_lease;
pub mod report;
pub mod simulate;
pub mod status;
pub mod summary;

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command};
use crate::config::{self, Config, Credentials};
use crate::engine::{LineageId, SweepMode};
use crate::escape::escaped;
use crate::exit::{CommandError, CommandResult, Exit};
use crate::lock::{InstanceLock, LockError};
use crate::logging;
use crate::services::{self, DbAccess};

/// Runs one command to completion and returns its exit code, having printed its
/// error if it failed. `shutdown` lets the caller (a signal handler in `main`, or
/// a test) stop long-running commands cleanly.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> Exit {
    finish(dispatch(cli, shutdown).await)
}

/// The exit code a command's result deserves. An error is printed here as
/// `error: <message>` on stderr, [`escaped`]: a message may quote a key name, a
/// MASV or Vault answer or a line of the config file.
pub fn finish(result: CommandResult) -> Exit {
    match result {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {}", escaped(e.message()));
            e.exit()
        }
    }
}

async fn dispatch(cli: Cli, shutdown: CancellationToken) -> CommandResult {
    let path = config::resolve_path(cli.config.as_deref());
    match cli.command {
        Command::CheckConfig => check_config::run(&path, cli.debug).await,
        Command::Status { json } => status::run(&path, json).await,
        Command::History {
            key,
            since,
            json,
            verify,
            follow,
        } => {
            history::run(
                &path,
                history::HistoryArgs {
                    key,
                    since,
                    json,
                    verify,
                    follow,
                },
                shutdown,
            )
            .await
        }
        Command::Report { format } => report::run(&path, format).await,
        Command::Once { dry_run } => {
            let mode = if dry_run {
                SweepMode::DryRun
            } else {
                SweepMode::Apply
            };
            once::run(&path, cli.debug, mode).await
        }
        Command::Rotate { team, name } => {
            once::run(
                &path,
                cli.debug,
                SweepMode::RotateNow(LineageId::new(team, name)),
            )
            .await
        }
        Command::Run => daemon::run(&path, cli.debug, shutdown).await,
        Command::Demo => demo::run(cli.debug).await,
        Command::Completions { shell } => manual::completions(shell),
        Command::Man => manual::man(),
        Command::Simulate {
            listen,
            team,
            email,
            password_file,
            seed_examples,
        } => {
            simulate::run(simulate::SimulateArgs {
                listen,
                team: &team,
                email: &email,
                password_file: &password_file,
                seed_examples,
            })
            .await
        }
    }
}

/// Loads and validates the config, sets up logging, and reads the secrets it
/// names. A problem (file, field, what is wrong) is a usage error: exit 2.
pub fn load(path: &Path, debug: bool) -> Result<(Config, Credentials), CommandError> {
    let config = load_config(path)?;
    logging::init(config.log.format, &config.log.level, debug);
    crate::plain_http::warn_opt_outs(&config);
    let credentials = Credentials::resolve(&config).map_err(CommandError::usage)?;
    Ok((config, credentials))
}

/// Loads and validates the config only (commands that need no secrets).
pub fn load_config(path: &Path) -> Result<Config, CommandError> {
    Config::load(path).map_err(CommandError::usage)
}

/// The operator's view from the local database; no database yet means no keys yet.
pub async fn offline_view(config: &Config) -> Result<crate::view::View, CommandError> {
    let now = chrono::Utc::now();
    let records =
        services::open_records(&config.database.path, DbAccess::ReadOnlyIfPresent).await?;
    let Some(records) = records else {
        return Ok(crate::view::View {
            generated_at: now,
            listed_at: None,
            lineages: vec![],
        });
    };
    crate::view::build(config, &records, now)
        .await
        .map_err(CommandError::failed)
}

/// Takes the instance lock on the config's database, or says why not.
pub fn lock(config: &Config) -> Result<InstanceLock, CommandError> {
    InstanceLock::acquire(&config.database.path).map_err(|e| match e {
        LockError::Held { .. } => CommandError::new(e.exit(), &e),
        _ => CommandError::new(e.exit(), format_args!("database.path: {e}")),
    })
}
