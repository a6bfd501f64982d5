//! The sweep loop behind `run`: a cron schedule feeding one sweep at a time.
//!
//! tokio-cron-scheduler fires ticks; a tick that arrives while a sweep is still
//! running is skipped (and counted), so sweeps never overlap however slow MASV
//! is. Shutdown cancels the token: the engine finishes the step in flight, leaves
//! the rest for the next start, and the loop returns.
//!
//! With `[ha]` the loop sweeps only while this instance holds the leader
//! lease: ticks are skipped quietly on a standby, and a sweep starts at once
//! when the lease is taken. Before the first sweep of each term the engine
//! hands over (its records may be stale if another instance held the lease
//! since) and only then arms the fence, so no step of a new term runs on old
//! knowledge.
//!
//! A while after each sweep, once the connections it used have timed out, the
//! loop hands the allocator's free pages back to the system, and asks the
//! kernel to reclaim the code pages the sweep ran: otherwise the idle daemon
//! would stay as large as its busiest sweep (see `idle-memory`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::CronSchedule;
use crate::engine::ports::{KeyApi, RecordError, SecretStore};
use crate::engine::{Engine, SweepMode, SweepReport, SweepTotals};
use crate::lease::{LeaseFence, LeaseRole, LeaseStatus, Previous};

/// What the loop did, for tests and the final log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopStats {
    pub sweeps: u64,
    pub skipped_ticks: u64,
    /// The most sweeps ever running at once (1 means they never overlapped).
    pub max_concurrent: u64,
    /// Times the loop gave freed memory and code pages back to the system (at
    /// most once per sweep).
    pub memory_releases: u64,
}

/// How long after a sweep the daemon gives freed memory back: longer than the
/// idle timeouts of the database and MASV connection pools, so the memory of
/// the connections the sweep used is free by then.
pub const SETTLE_AFTER_SWEEP: Duration = Duration::from_secs(15);

const _: () = assert!(
    SETTLE_AFTER_SWEEP.as_secs() > 2 * crate::store::IDLE_CONNECTION_TIMEOUT.as_secs()
        && SETTLE_AFTER_SWEEP.as_secs() > crate::masv::client::IDLE_CONNECTION_TIMEOUT.as_secs()
);

/// When the loop next releases freed memory: at the first idle tick
/// `settle_after` past a sweep's end (or the loop's start), once per sweep.
#[derive(Debug)]
struct MemorySettle {
    settle_after: Duration,
    /// When the last sweep (or the start) ended, until memory is released after it.
    busy_until: Option<Instant>,
}

impl MemorySettle {
    fn sweep_ended(&mut self, at: Instant) {
        self.busy_until = Some(at);
    }

    /// Whether to release now; true at most once after each sweep.
    fn take_due(&mut self, now: Instant) -> bool {
        let due = self
            .busy_until
            .is_some_and(|t| now.saturating_duration_since(t) >= self.settle_after);
        if due {
            self.busy_until = None;
        }
        due
    }
}

/// Errors that stop the loop from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("schedule.cron {cron:?}: {reason}")]
    Schedule { cron: String, reason: String },
}

/// What the loop calls besides sweeping.
pub struct LoopHooks<'a> {
    /// As each team of a sweep finishes (metrics, alerts): its report, the
    /// only copy of its details.
    pub on_team: &'a mut (dyn FnMut(SweepReport) + Send),
    /// After each sweep (metrics, sd_notify STATUS, the audit anchor): its
    /// totals, or None when it ended early.
    pub on_sweep: &'a mut (dyn FnMut(Option<&SweepTotals>) + Send),
    /// While idle between sweeps, every `idle_every` (the systemd watchdog).
    pub on_idle: &'a (dyn Fn() + Send + Sync),
    pub idle_every: Duration,
    /// How long after a sweep to give freed memory back ([`SETTLE_AFTER_SWEEP`]).
    pub settle_after: Duration,
    /// With `[ha]`: sweep only while holding the lease.
    pub lease: Option<LeaseGate>,
    /// Sweep once at once, before the first tick: at start (unfinished
    /// rotations resume without waiting) and after a reload that was applied
    /// (the new config takes effect at once).
    pub sweep_at_start: bool,
}

/// The lease as the sweep loop sees it.
#[derive(Clone)]
pub struct LeaseGate {
    pub status: watch::Receiver<LeaseStatus>,
    pub fence: LeaseFence,
}

impl LeaseGate {
    /// Waits until the lease changes hands or terms.
    async fn changed(gate: &mut Option<LeaseGate>) {
        match gate {
            Some(g) => {
                if g.status.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// Whether the loop may sweep now; readies a newly taken term first (hand
/// over, then arm the fence). Without `[ha]`, always.
async fn may_sweep<K: KeyApi, S: SecretStore>(
    engine: &Engine<K, S>,
    gate: &Option<LeaseGate>,
) -> bool {
    let Some(g) = gate else { return true };
    let status = g.status.borrow().clone();
    if status.role != LeaseRole::Holder {
        return false;
    }
    if g.fence.armed_term() == Some(status.term) {
        return true;
    }
    match ready_term(engine, &status, &g.fence).await {
        Ok(armed) => armed,
        Err(e) => {
            error!(error = %e, "cannot hand over the records; not sweeping until that succeeds");
            false
        }
    }
}

/// Readies the term `status` describes for mutations: hands the records over
/// if another instance may have acted since they were written (the lease was
/// last someone else's, or released), then arms the fence. `run` and the
/// one-shots both start a term this way. False if the term is already over.
pub async fn ready_term<K: KeyApi, S: SecretStore>(
    engine: &Engine<K, S>,
    status: &LeaseStatus,
    fence: &LeaseFence,
) -> Result<bool, RecordError> {
    if !matches!(status.previous, Some(Previous::Me | Previous::Nobody)) {
        let report = engine.hand_over().await?;
        info!(
            closed_rotations = report.closed.len(),
            dropped_retirements = report.dropped_retirements.len(),
            "took over from another holder: in-flight records handed over"
        );
    }
    Ok(fence.arm(status.term))
}

/// Runs sweeps on `cron` (parsed with the config; tokio-cron-scheduler is
/// given its text) until `shutdown` is cancelled.
pub async fn sweep_loop<K, S>(
    engine: &Engine<K, S>,
    cron: &CronSchedule,
    shutdown: CancellationToken,
    hooks: LoopHooks<'_>,
) -> Result<LoopStats, DaemonError>
where
    K: KeyApi,
    S: SecretStore,
{
    let LoopHooks {
        on_team,
        on_sweep,
        on_idle,
        idle_every,
        settle_after,
        mut lease,
        sweep_at_start,
    } = hooks;
    // The start-up (connections, the lease's first look) counts as a sweep: a
    // standby, or an instance waiting for its first tick, gives memory back
    // once it has settled too.
    let mut settle = MemorySettle {
        settle_after,
        busy_until: Some(Instant::now()),
    };
    let schedule_err = |e: tokio_cron_scheduler::JobSchedulerError| DaemonError::Schedule {
        cron: cron.to_string(),
        reason: e.to_string(),
    };
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let sweeping = Arc::new(AtomicBool::new(false));
    let skipped = Arc::new(AtomicU64::new(0));
    let job = {
        let sweeping = sweeping.clone();
        let skipped = skipped.clone();
        Job::new_async(cron.as_str(), move |_, _| {
            let tx = tx.clone();
            let sweeping = sweeping.clone();
            let skipped = skipped.clone();
            Box::pin(async move {
                if sweeping.load(Ordering::SeqCst) || tx.try_send(()).is_err() {
                    skipped.fetch_add(1, Ordering::SeqCst);
                    warn!("schedule tick skipped: the previous sweep is still running");
                }
            })
        })
        .map_err(schedule_err)?
    };
    let mut scheduler = JobScheduler::new().await.map_err(schedule_err)?;
    scheduler.add(job).await.map_err(schedule_err)?;
    scheduler.start().await.map_err(schedule_err)?;

    let mut stats = LoopStats::default();
    let running = AtomicU64::new(0);
    let mut first = sweep_at_start;
    let mut idle = tokio::time::interval(idle_every);
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !first {
            let mut ticked = false;
            while !ticked {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = idle.tick() => {
                        on_idle();
                        if settle.take_due(Instant::now()) {
                            let released = idle_memory::release_free_memory();
                            let code_mappings = idle_memory::page_out_code();
                            stats.memory_releases += 1;
                            debug!(released, code_mappings, "gave the last sweep's freed memory and code pages back to the system");
                        }
                    }
                    tick = rx.recv() => {
                        if tick.is_none() { break }
                        ticked = true;
                    }
                    () = LeaseGate::changed(&mut lease) => {
                        // A new term sweeps at once; anything else waits for a tick.
                        ticked = lease.as_ref().is_some_and(|g| {
                            let s = g.status.borrow();
                            s.role == LeaseRole::Holder && g.fence.armed_term() != Some(s.term)
                        });
                    }
                }
            }
            if !ticked {
                break;
            }
        }
        first = false;
        if shutdown.is_cancelled() {
            break;
        }
        if !may_sweep(engine, &lease).await {
            debug!("standby: not sweeping");
            continue;
        }
        sweeping.store(true, Ordering::SeqCst);
        let now_running = running.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_concurrent = stats.max_concurrent.max(now_running);
        let result = engine.sweep_by_team(&SweepMode::Apply, &mut *on_team).await;
        running.fetch_sub(1, Ordering::SeqCst);
        // Drop a tick that queued while we swept: it would be an overlap in disguise.
        while rx.try_recv().is_ok() {
            skipped.fetch_add(1, Ordering::SeqCst);
        }
        sweeping.store(false, Ordering::SeqCst);
        stats.sweeps += 1;
        settle.sweep_ended(Instant::now());
        match result {
            Ok(totals) => {
                info!(
                    lineages = totals.scope.lineages,
                    ok = totals.succeeded,
                    failed = totals.failed,
                    "sweep finished"
                );
                on_sweep(Some(&totals));
            }
            Err(e) => {
                error!(error = %e, "sweep ended early");
                on_sweep(None);
            }
        }
    }
    let _ = scheduler.shutdown().await;
    stats.skipped_ticks = skipped.load(Ordering::SeqCst);
    debug!(
        sweeps = stats.sweeps,
        skipped_ticks = stats.skipped_ticks,
        "sweep schedule ended"
    );
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_released_once_per_sweep_after_it_settles() {
        let t0 = Instant::now();
        let mut s = MemorySettle {
            settle_after: Duration::from_secs(15),
            busy_until: None,
        };
        assert!(!s.take_due(t0), "no sweep yet");
        s.sweep_ended(t0);
        assert!(!s.take_due(t0 + Duration::from_secs(14)));
        assert!(s.take_due(t0 + Duration::from_secs(15)));
        assert!(!s.take_due(t0 + Duration::from_secs(16)), "once per sweep");
        s.sweep_ended(t0 + Duration::from_secs(60));
        assert!(!s.take_due(t0 + Duration::from_secs(70)));
        assert!(s.take_due(t0 + Duration::from_secs(90)));
    }
}
