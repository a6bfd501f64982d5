//! Command dispatch: the one place that turns library errors into exit codes.

use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::config;
use crate::engine::{LineageId, SweepMode};
use crate::exit::Exit;

/// Runs one command to completion. `shutdown` lets the caller (a signal handler in
/// `main`, or a test) stop long-running commands cleanly.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> Exit {
    let path = config::resolve_path(cli.config.as_deref());
    match cli.command {
        Command::CheckConfig => commands::check_config::run(&path, cli.debug).await,
        Command::Status { json } => commands::status::run(&path, json).await,
        Command::History {
            key,
            since,
            json,
            verify,
        } => {
            commands::history::run(
                &path,
                commands::history::HistoryArgs {
                    key,
                    since,
                    json,
                    verify,
                },
            )
            .await
        }
        Command::Report { format } => commands::report::run(&path, format).await,
        Command::Once { dry_run } => {
            let mode = if dry_run {
                SweepMode::DryRun
            } else {
                SweepMode::Apply
            };
            commands::once::run(&path, cli.debug, mode).await
        }
        Command::Rotate { team, name } => {
            commands::once::run(
                &path,
                cli.debug,
                SweepMode::RotateNow(LineageId::new(team, name)),
            )
            .await
        }
        Command::Run => commands::daemon::run(&path, cli.debug, shutdown).await,
        Command::Demo => commands::demo::run(cli.debug).await,
        Command::Simulate {
            listen,
            team,
            email,
            password_file,
            seed_examples,
        } => {
            commands::simulate::run(commands::simulate::SimulateArgs {
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
