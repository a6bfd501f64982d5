//! `run`: the daemon. Sweeps on the schedule until SIGTERM or SIGINT (finishing
//! the step in flight, exit 0); SIGHUP re-reads the config (an invalid one is
//! rejected and the running one kept). Under systemd it reports READY=1 once the
//! config, the database and a first MASV login are good, feeds the watchdog from
//! the sweep loop, and publishes each sweep's summary as STATUS=.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::fail;
use crate::clock::SystemClock;
use crate::config::{Config, Credentials};
use crate::daemon::{sweep_loop, LoopHooks, SETTLE_AFTER_SWEEP};
use crate::engine::SweepReport;
use crate::exit::Exit;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::services::{self, DbAccess, ProdEngine};
use crate::systemd::SystemdNotifier;

/// Cancels `shutdown` on SIGTERM or SIGINT; forwards SIGHUP to `reload`.
fn watch_signals(shutdown: CancellationToken, reload: mpsc::Sender<()>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: finishing the step in flight, then stopping"); break }
                _ = int.recv() => { info!("SIGINT: finishing the step in flight, then stopping"); break }
                _ = hup.recv() => { let _ = reload.try_send(()); }
                _ = shutdown.cancelled() => break,
            }
        }
        shutdown.cancel();
    });
    Ok(())
}

fn summary(report: &SweepReport) -> String {
    let at = report
        .finished_at
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    format!(
        "last sweep {at}: {} lineage(s), {} action(s) ok, {} failed{}",
        report.lineages,
        report.succeeded(),
        report.failed(),
        if report.unreachable {
            ", MASV or Vault unreachable"
        } else {
            ""
        }
    )
}

async fn build(
    config: &Config,
    credentials: Credentials,
    notifier: &SystemdNotifier,
) -> Result<ProdEngine, (Exit, String)> {
    let engine = services::engine(
        config,
        credentials,
        Arc::new(SystemClock),
        DbAccess::ReadWrite,
    )
    .await
    .map_err(|e| (e.exit, e.message))?;
    let beat = notifier.clone();
    Ok(engine.with_heartbeat(Arc::new(move || beat.watchdog())))
}

pub async fn run(path: &Path, debug: bool, shutdown: CancellationToken) -> Exit {
    let (mut config, credentials) = match super::load(path, debug) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    let _lock = match super::lock(&config) {
        Ok(lock) => lock,
        Err(exit) => return exit,
    };
    let (reload_tx, mut reload_rx) = mpsc::channel(1);
    if let Err(e) = watch_signals(shutdown.clone(), reload_tx) {
        fail(format_args!("cannot install signal handlers: {e}"));
        return Exit::ActionFailed;
    }
    let notifier = SystemdNotifier::from_env();
    let engine = match build(&config, credentials, &notifier).await {
        Ok(e) => e,
        Err((exit, message)) => {
            fail(message);
            return exit;
        }
    };
    // READY only once MASV accepts us: a daemon that cannot log in is not ready.
    if let Err(e) = engine.keys().login().await {
        fail(format_args!("first MASV login failed: {e}"));
        // Only a rejected login is a configuration problem; anything else (rate
        // limits, outages) is worth a restart.
        return match e {
            crate::masv::MasvError::LoginRejected { .. }
            | crate::masv::MasvError::Config { .. } => Exit::Usage,
            _ => Exit::Unreachable,
        };
    }
    // Optional /metrics + /healthz and webhook alerts; they live across reloads
    // (a changed [metrics] listen address or webhook URL needs a restart).
    let interval = config
        .schedule
        .cron
        .interval_after(chrono::Utc::now())
        .unwrap_or(Duration::from_secs(300));
    let metrics = config
        .metrics
        .as_ref()
        .map(|_| Metrics::new(interval, Arc::new(SystemClock)));
    if let (Some(m), Some(mc)) = (&metrics, &config.metrics) {
        match tokio::net::TcpListener::bind(mc.listen).await {
            Ok(listener) => {
                let (m, stop) = (m.clone(), shutdown.clone());
                tokio::spawn(async move { m.serve(listener, stop).await });
                info!(listen = %mc.listen, "serving /metrics and /healthz");
            }
            Err(e) => {
                fail(format_args!(
                    "{}: metrics.listen {}: {e}",
                    path.display(),
                    mc.listen
                ));
                return Exit::Usage;
            }
        }
    }
    let alerts = match config
        .notify
        .as_ref()
        .map(|n| Notifier::new(&n.webhook_url, Duration::from_secs(10)))
        .transpose()
    {
        Ok(a) => a.map(Arc::new),
        Err(e) => {
            fail(format_args!("{}: notify.webhook_url: {e}", path.display()));
            return Exit::Usage;
        }
    };
    notifier.ready();
    info!(cron = %config.schedule.cron, teams = config.teams.len(), "started");

    let mut engine = engine;
    loop {
        let round = shutdown.child_token();
        let engine_round = engine.with_shutdown(round.clone());
        let status = notifier.clone();
        let (sweep_metrics, sweep_alerts) = (metrics.clone(), alerts.clone());
        let mut on_sweep = move |report: &SweepReport| {
            status.status(&summary(report));
            if let Some(m) = &sweep_metrics {
                m.record_sweep(report);
            }
            if let Some(a) = &sweep_alerts {
                a.notify(report);
            }
        };
        let idle = notifier.clone();
        let on_idle = move || idle.watchdog();
        let idle_every = notifier.ping_every().unwrap_or(Duration::from_secs(30));
        let stopped_for_reload = {
            let sweeping = sweep_loop(
                &engine_round,
                &config.schedule.cron,
                round.clone(),
                LoopHooks {
                    on_sweep: &mut on_sweep,
                    on_idle: &on_idle,
                    idle_every,
                    settle_after: SETTLE_AFTER_SWEEP,
                },
            );
            tokio::pin!(sweeping);
            tokio::select! {
                result = &mut sweeping => {
                    if let Err(e) = result {
                        error!(error = %e, "the sweep loop could not start");
                        notifier.stopping();
                        return Exit::Usage;
                    }
                    false
                }
                _ = reload_rx.recv() => {
                    notifier.reloading();
                    round.cancel();
                    let _ = sweeping.await;
                    true
                }
            }
        };
        if !stopped_for_reload || shutdown.is_cancelled() {
            break;
        }
        // SIGHUP: take the new config only if it is entirely valid.
        let next =
            Config::load(path).and_then(|c| Credentials::resolve(&c).map(|creds| (c, creds)));
        match next {
            Ok((new_config, creds)) => match build(&new_config, creds, &notifier).await {
                Ok(new_engine) => {
                    info!(cron = %new_config.schedule.cron, teams = new_config.teams.len(), "config reloaded");
                    crate::plain_http::warn_opt_outs(&new_config);
                    config = new_config;
                    engine = new_engine;
                }
                Err((_, message)) => {
                    error!(error = %message, "reloaded config rejected; keeping the running one");
                    engine = engine_round;
                }
            },
            Err(e) => {
                error!(error = %e, "reloaded config rejected; keeping the running one");
                engine = engine_round;
            }
        }
        notifier.ready();
    }
    notifier.stopping();
    if let Some(a) = alerts.and_then(|a| Arc::try_unwrap(a).ok()) {
        a.shutdown(Duration::from_secs(5)).await;
    }
    Exit::Success
}
