//! `run`: the daemon. Sweeps on the schedule until SIGTERM or SIGINT (finishing
//! the step in flight and giving pending webhook events a bounded
//! [`DRAIN_GRACE`], exit 0); SIGHUP re-reads the config ([`crate::reload`]:
//! an invalid one is rejected and the running one kept). Under systemd it reports READY=1 once the
//! config, the database and a first MASV login are good, feeds the watchdog from
//! the sweep loop, and publishes each sweep's summary as STATUS=. After each
//! sweep the audit log's head is anchored in Vault ([`crate::anchor`]).
//!
//! With `[ha]` it also runs the lease keeper ([`crate::lease`]): a standby is
//! READY and healthy but does not sweep; the holder sweeps; a stop releases the
//! lease only after the step in flight has finished, so a standby can take over
//! at once without ever overlapping it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::{sweep_loop, LeaseGate, LoopHooks, SETTLE_AFTER_SWEEP};
use crate::engine::ports::Fence;
use crate::engine::sweep::Heartbeat;
use crate::engine::{SweepReport, SweepTotals};
use crate::exit::{CommandError, CommandResult, Exit};
use crate::lease::LeaseStatus;
use crate::metrics::{Metrics, DEFAULT_LIVE_WINDOW};
use crate::notify::{lease_event, Notifier, DRAIN_GRACE};
use crate::reload::{self, Running};
use crate::services::{self, DbAccess};
use crate::systemd::SystemdNotifier;

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub(crate) fn watch_stop_signals(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: finishing the step in flight, then stopping"),
            _ = int.recv() => info!("SIGINT: finishing the step in flight, then stopping"),
            _ = shutdown.cancelled() => {}
        }
        shutdown.cancel();
    });
    Ok(())
}

/// Feeds the systemd watchdog between sweep steps, and `/livez` with it.
fn watchdog(notifier: &SystemdNotifier, metrics: &Option<Metrics>) -> Heartbeat {
    let beat = notifier.clone();
    let live = metrics.clone();
    Arc::new(move || {
        beat.watchdog();
        if let Some(m) = &live {
            m.beat();
        }
    })
}

fn summary(totals: &SweepTotals) -> String {
    let at = totals
        .finished_at
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    format!(
        "last sweep {at}: {} lineage(s), {} action(s) ok, {} failed{}",
        totals.scope.lineages,
        totals.succeeded,
        totals.failed,
        if totals.scope.unreachable {
            ", MASV or Vault unreachable"
        } else {
            ""
        }
    )
}

/// The `[metrics]` state, if the config asks for it: `/livez` fails after the
/// systemd watchdog interval (or [`DEFAULT_LIVE_WINDOW`]) without a sign of life.
fn metrics_for(config: &Config, notifier: &SystemdNotifier) -> Option<Metrics> {
    config.metrics.as_ref()?;
    let interval = config
        .schedule
        .cron
        .interval_after(chrono::Utc::now())
        .unwrap_or(Duration::from_secs(300));
    let live_window = notifier.watchdog_interval().unwrap_or(DEFAULT_LIVE_WINDOW);
    Some(Metrics::with_live_window(
        interval,
        live_window,
        Arc::new(SystemClock),
    ))
}

/// Serves /metrics, /livez and /healthz on `[metrics] listen` until `shutdown`.
async fn serve_metrics(
    config: &Config,
    path: &Path,
    metrics: &Option<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), CommandError> {
    let (Some(mc), Some(metrics)) = (&config.metrics, metrics) else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(mc.listen)
        .await
        .map_err(|e| {
            CommandError::usage(format_args!(
                "{}: metrics.listen {}: {e}",
                path.display(),
                mc.listen
            ))
        })?;
    let served = metrics.clone();
    tokio::spawn(async move { served.serve(listener, shutdown).await });
    info!(listen = %mc.listen, "serving /metrics, /livez and /healthz");
    Ok(())
}

/// Tells the webhook and systemd's STATUS= of each change of the lease, until
/// the keeper is gone.
fn follow_lease(
    mut status: tokio::sync::watch::Receiver<LeaseStatus>,
    alerts: Option<Arc<Notifier>>,
    notifier: SystemdNotifier,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut before = status.borrow_and_update().clone();
        while status.changed().await.is_ok() {
            let after = status.borrow_and_update().clone();
            if let (Some(event), Some(a)) =
                (lease_event(&before, &after, chrono::Utc::now()), &alerts)
            {
                a.enqueue(event);
            }
            if after.role != before.role || after.holder != before.holder {
                notifier.status(&match &after.holder {
                    Some(h) => format!("{}: the HA lease is held by {h}", after.role.as_str()),
                    None => format!("{}: nobody holds the HA lease", after.role.as_str()),
                });
            }
            before = after;
        }
    })
}

pub async fn run(path: &Path, debug: bool, shutdown: CancellationToken) -> CommandResult {
    let (config, credentials) = super::load(path, debug)?;
    let _lock = super::lock(&config)?;
    let mut reloads = watch_stop_signals(shutdown.clone())
        .and_then(|()| reload::listen(shutdown.clone()))
        .map_err(|e| CommandError::failed(format_args!("cannot install signal handlers: {e}")))?;
    let notifier = SystemdNotifier::from_env();
    let metrics = metrics_for(&config, &notifier);
    let webhook_secret = credentials.webhook_secret.clone();
    let store = services::open_store(&config.database.path).await?;
    // Counted across reloads, which make new adapters.
    let traffic = metrics.as_ref().map(Metrics::traffic).unwrap_or_default();
    let engine = App::from_config(&config, credentials, DbAccess::ReadWrite)
        .store(store.clone())
        .traffic(traffic.clone())
        .heartbeat(watchdog(&notifier, &metrics))
        .build()
        .await?;
    let mut anchorer = Arc::new(services::anchorer(
        &config,
        store.clone(),
        engine.secrets().clone(),
    )?);
    // READY only once MASV accepts us: a daemon that cannot log in is not ready.
    if let Err(e) = engine.keys().login().await {
        // Only a rejected login is a configuration problem; anything else (rate
        // limits, outages) is worth a restart.
        let exit = match e {
            crate::masv::MasvError::LoginRejected { .. }
            | crate::masv::MasvError::Config { .. } => Exit::Usage,
            _ => Exit::Unreachable,
        };
        return Err(CommandError::new(
            exit,
            format_args!("first MASV login failed: {e}"),
        ));
    }
    // Optional /metrics, /livez, /healthz and webhook events; they live across
    // reloads (a changed [metrics] listen address or [notify] table needs a restart).
    serve_metrics(&config, path, &metrics, shutdown.clone()).await?;
    let alerts = services::alerts(&config, path, webhook_secret)?.map(Arc::new);
    if let (Some(m), Some(a)) = (&metrics, &alerts) {
        m.count_webhook(a.stats_source());
    }
    // The lease outlives reloads and is released only once the sweeps have stopped.
    let lease_stop = CancellationToken::new();
    let (engine, lease, fence) = match &config.ha {
        Some(ha) => {
            let keeper = services::lease_keeper(ha, engine.secrets().clone());
            let fence = keeper.fence();
            if let Some(m) = &metrics {
                m.follow_lease(keeper.subscribe(), ha.lease_ttl);
            }
            let gate = LeaseGate {
                status: keeper.subscribe(),
                fence: fence.clone(),
            };
            let events = follow_lease(keeper.subscribe(), alerts.clone(), notifier.clone());
            let keeping = tokio::spawn(keeper.run(lease_stop.clone()));
            let fence = Arc::new(fence) as Arc<dyn Fence>;
            info!(instance_id = %ha.instance_id, lease_ttl = ?ha.lease_ttl, "taking part in the HA lease");
            (
                engine.with_fence(fence.clone()),
                Some((gate, keeping, events)),
                Some(fence),
            )
        }
        None => (engine, None, None),
    };
    let (gate, lease_tasks) = match lease {
        Some((gate, keeping, events)) => (Some(gate), Some((keeping, events))),
        None => (None, None),
    };
    notifier.ready();
    info!(cron = %config.schedule.cron, teams = config.teams.len(), "started");

    // The latest sweep's anchor write, awaited (bounded) before exit.
    let anchoring: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
    let mut running = Running { config, engine };
    let mut sweep_at_start = true;
    loop {
        let round = shutdown.child_token();
        let Running { config, engine } = running;
        let engine = engine.with_shutdown(round.clone());
        let status = notifier.clone();
        let sweep_metrics = metrics.clone();
        let (sweep_anchor, sweep_anchoring) = (anchorer.clone(), anchoring.clone());
        let (team_metrics, team_alerts) = (metrics.clone(), alerts.clone());
        let mut on_team = move |team: SweepReport| {
            if let Some(m) = &team_metrics {
                m.record_team(&team);
            }
            if let Some(a) = &team_alerts {
                a.notify(&team);
            }
        };
        let mut on_sweep = move |totals: Option<&SweepTotals>| {
            // Off the loop: a slow Vault delays the anchor, never the next sweep
            // (the anchor may lag the log; it never leads it). Writes queue on
            // the anchorer's lock; only the latest is awaited at exit.
            let anchor = sweep_anchor.clone();
            let task = tokio::spawn(async move {
                if let Err(e) = anchor.advance().await {
                    error!(error = %e, "the audit log's head was not anchored in Vault");
                }
            });
            *sweep_anchoring
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(task);
            if let Some(totals) = totals {
                status.status(&summary(totals));
            }
            if let Some(m) = &sweep_metrics {
                m.close_sweep(totals);
            }
        };
        let beat = watchdog(&notifier, &metrics);
        let on_idle = move || beat();
        let idle_every = notifier.ping_every().unwrap_or(Duration::from_secs(30));
        {
            let sweeping = sweep_loop(
                &engine,
                &config.schedule.cron,
                round.clone(),
                LoopHooks {
                    on_team: &mut on_team,
                    on_sweep: &mut on_sweep,
                    on_idle: &on_idle,
                    idle_every,
                    settle_after: SETTLE_AFTER_SWEEP,
                    lease: gate.clone(),
                    sweep_at_start,
                },
            );
            tokio::pin!(sweeping);
            tokio::select! {
                result = &mut sweeping => {
                    if let Err(e) = result {
                        error!(error = %e, "the sweep loop could not start");
                        notifier.stopping();
                        return Ok(Exit::Usage);
                    }
                    break;
                }
                () = reloads.next() => {
                    info!("SIGHUP: re-reading the config once the step in flight, if any, has finished");
                    notifier.reloading();
                    round.cancel();
                    let _ = sweeping.await;
                }
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        // SIGHUP: take the new config only if it is entirely valid, and then
        // sweep once at once under it; a rejected one changes nothing, so the
        // schedule simply goes on.
        (running, sweep_at_start) = reload::reload(
            path,
            Running { config, engine },
            watchdog(&notifier, &metrics),
            fence.clone(),
            traffic.clone(),
        )
        .await;
        // The anchor follows the reloaded Vault settings (a new token, say).
        match services::anchorer(
            &running.config,
            store.clone(),
            running.engine.secrets().clone(),
        ) {
            Ok(a) => anchorer = Arc::new(a),
            Err(e) => error!(error = %e, "audit anchor: keeping the previous settings"),
        }
        notifier.ready();
    }
    notifier.stopping();
    info!("stopping: the sweeps have ended");
    let last_anchor = anchoring
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some(task) = last_anchor {
        if tokio::time::timeout(DRAIN_GRACE, task).await.is_err() {
            error!("the last sweep's audit anchor write did not finish in time: the anchor lags the log until the next start");
        }
    }
    if let Some((keeping, events)) = lease_tasks {
        // Only now, with no step in flight, may a standby take over.
        lease_stop.cancel();
        let _ = keeping.await;
        let _ = events.await;
    }
    if let Some(a) = &alerts {
        a.shutdown(DRAIN_GRACE).await;
    }
    Ok(Exit::Success)
}
