//! SIGHUP: the daemon re-reads its config without restarting (`systemctl reload`).
//!
//! `run` stops its round of sweeps between steps, as for a shutdown, and hands
//! the running config and engine to [`reload`]. That re-reads the whole file
//! and every secret file it names and builds a new engine from them with the
//! same builder `run` started with (opening the database and connecting to
//! Vault). Only if all of it succeeds are the config and engine replaced, then
//! the sweeps resume; anything wrong (a bad field, a file writable by others, a
//! secret file that cannot be read, a database that cannot be opened, Vault
//! refusing an AppRole login) is logged and the running config is kept, so a
//! typo never stops a rotating daemon.
//!
//! A reload may change what the engine is built from: the teams and their key
//! patterns, the policies, the schedule, MASV's and Vault's settings and
//! credentials, the database path. It keeps what was set up once at start: the `[log]` settings,
//! the `/metrics` listener and the interval its health check expects (from the
//! schedule at start), the `[notify]` webhook (URL, secret and event filter),
//! the `[ha]` lease (its instance id, ttl and Vault client), and the instance lock, which
//! stays on the database file it was taken for. A reload does not log in to
//! MASV first: a new password that MASV refuses shows as failed sweeps.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::app::{App, ProdEngine};
use crate::config::{Config, Credentials};
use crate::engine::ports::Fence;
use crate::engine::sweep::Heartbeat;
use crate::exit::CommandError;
use crate::services::DbAccess;
use crate::traffic::Traffic;

/// SIGHUPs not yet acted on: at most one, since a second that arrives before
/// the reload asks for the same thing.
pub struct Requests(mpsc::Receiver<()>);

impl Requests {
    /// The next SIGHUP. Never returns once the daemon is shutting down.
    pub async fn next(&mut self) {
        if self.0.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

/// Listens for SIGHUP until `shutdown` is cancelled.
pub fn listen(shutdown: CancellationToken) -> std::io::Result<Requests> {
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => { let _ = tx.try_send(()); }
                _ = shutdown.cancelled() => break,
            }
        }
    });
    Ok(Requests(rx))
}

/// The config the daemon runs on and the engine built from it, replaced together.
pub struct Running {
    pub config: Config,
    pub engine: ProdEngine,
}

/// What `run` goes on with after a SIGHUP: the config at `path` and a new
/// engine over it (calling `heartbeat` between steps), or `running` as it was
/// if any of it is wrong; and whether the new one was taken.
pub async fn reload(
    path: &Path,
    running: Running,
    heartbeat: Heartbeat,
    fence: Option<Arc<dyn Fence>>,
    traffic: Traffic,
) -> (Running, bool) {
    match load(path, heartbeat, fence, traffic).await {
        Ok(next) => {
            if next.config.ha != running.config.ha {
                warn!("[ha] changed: the lease keeps its settings from the start until a restart");
            }
            info!(cron = %next.config.schedule.cron, teams = next.config.teams.len(), "config reloaded; sweeping once now under it, then on the schedule");
            crate::plain_http::warn_opt_outs(&next.config);
            (next, true)
        }
        Err(e) => {
            error!(error = %e, "reloaded config rejected; keeping the running one");
            (running, false)
        }
    }
}

async fn load(
    path: &Path,
    heartbeat: Heartbeat,
    fence: Option<Arc<dyn Fence>>,
    traffic: Traffic,
) -> Result<Running, CommandError> {
    let config = Config::load(path).map_err(CommandError::usage)?;
    let credentials = Credentials::resolve(&config).map_err(CommandError::usage)?;
    let engine = App::from_config(&config, credentials, DbAccess::ReadWrite)
        .heartbeat(heartbeat)
        .fence(fence)
        .traffic(traffic)
        .build()
        .await?;
    Ok(Running { config, engine })
}
