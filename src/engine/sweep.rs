//! One sweep: list each team once, plan every lineage, carry out the plans.
//!
//! Teams are listed concurrently and lineages executed concurrently (each
//! lineage's own actions strictly in order); the MASV client's semaphore bounds
//! the calls actually in flight to `max_concurrency`, and the lineages in
//! flight across all teams are bounded too, so that MASV answers are handled
//! promptly. A team's lineages with no cached Vault view are told apart with
//! one `LIST` of its names: those missing from it have no secret to read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use globset::GlobSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::admission::{self, Unmanageable};
use super::executor::{Executor, LineageContext, StepError};
use super::failpoints::{Crashed, Failpoints};
use super::key::Key;
use super::model::{LineageId, VaultView};
use super::planner::{needs_pending, plan_lineage, LineagePlan, LineageSnapshot, Pending};
use super::policy::Policy;
use super::ports::{Fence, RecordError, RecordStore};
use super::ports::{KeyApi, SecretStore};
use super::records::{Change, TeamRecords};
use super::report::{ActionOutcome, Scope, SweepReport, SweepTotals};
use super::secret::StoredSecret;
use super::step::StepRunner;
use crate::clock::SharedClock;

/// Lineages worked on at once per MASV concurrency permit, within a team.
const LINEAGES_PER_PERMIT: usize = 4;

/// Lineages worked on at once per MASV concurrency permit, across the teams
/// swept at once: enough that Vault and database steps overlap the MASV
/// calls, few enough that an answer from MASV is not handled behind the
/// steps of hundreds of other lineages (its permit is held until it is).
const SWEEP_LINEAGES_PER_PERMIT: usize = 8;

/// A team as the engine manages it.
#[derive(Debug, Clone)]
pub struct ManagedTeam {
    pub id: String,
    pub matcher: GlobSet,
    pub policy: Policy,
}

/// What a sweep does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepMode {
    /// Plan and act.
    Apply,
    /// Plan only: no mutating call anywhere, nothing written.
    DryRun,
    /// Rotate one lineage now (and finish anything it has in flight).
    RotateNow(LineageId),
}

/// The error that ends a sweep early.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Crashed(#[from] Crashed),
    #[error("{0}")]
    Usage(String),
}

/// The rotation engine over a key API and a secret store.
pub struct Engine<K, S> {
    keys: K,
    secrets: S,
    records: Option<Arc<dyn RecordStore>>,
    clock: SharedClock,
    teams: Vec<ManagedTeam>,
    concurrency: usize,
    failpoints: Failpoints,
    shutdown: CancellationToken,
    heartbeat: Option<Heartbeat>,
    fence: Option<Arc<dyn Fence>>,
}

/// Called between sweep steps (the systemd watchdog hangs off it).
pub type Heartbeat = std::sync::Arc<dyn Fn() + Send + Sync>;

impl<K: KeyApi, S: SecretStore> Engine<K, S> {
    /// `records` is None only for a dry run without a database yet.
    pub fn new(
        keys: K,
        secrets: S,
        records: Option<Arc<dyn RecordStore>>,
        clock: SharedClock,
        teams: Vec<ManagedTeam>,
        concurrency: usize,
    ) -> Self {
        Self {
            keys,
            secrets,
            records,
            clock,
            teams,
            concurrency: concurrency.max(1),
            failpoints: Failpoints::default(),
            shutdown: CancellationToken::new(),
            heartbeat: None,
            fence: None,
        }
    }

    /// With several instances: make every mutating step ask `fence` first, and
    /// record its fencing token in the step's audit row (invariant 8).
    pub fn with_fence(mut self, fence: Arc<dyn Fence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Calls `beat` between steps, so a watchdog sees progress during long sweeps.
    pub fn with_heartbeat(mut self, beat: Heartbeat) -> Self {
        self.heartbeat = Some(beat);
        self
    }

    fn beat(&self) {
        if let Some(b) = &self.heartbeat {
            b();
        }
    }

    /// Stop between steps once `token` is cancelled: the step in flight finishes,
    /// the rest waits for the next sweep.
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    pub fn failpoints(&self) -> &Failpoints {
        &self.failpoints
    }

    pub fn keys(&self) -> &K {
        &self.keys
    }

    pub fn secrets(&self) -> &S {
        &self.secrets
    }

    /// Called when this instance acquires the lease from a different holder
    /// (takeover rule R4, docs/design.md, section 9):
    /// closes the local open rotations without touching MASV or Vault, drops
    /// the cached Vault views and the retirements this instance has not
    /// deactivated. The next sweep judges what it had in flight afresh from
    /// MASV and Vault.
    ///
    /// Sweeping on a stale open rotation *without* this call (a former leader
    /// that resumes its own records after another instance acted) is outside
    /// what the takeover rules cover: the daemon always calls it on a change
    /// of holder.
    pub async fn hand_over(&self) -> Result<super::takeover::HandOverReport, RecordError> {
        let records = self
            .records
            .as_ref()
            .ok_or_else(|| RecordError::new("a hand-over needs the state database"))?;
        super::takeover::hand_over(records.as_ref(), self.clock.now()).await
    }

    /// Runs one sweep and keeps every team's report. Only a simulated crash
    /// (tests) or bad usage ends it early; every other failure is recorded in
    /// the report and the sweep goes on.
    pub async fn sweep(&self, mode: &SweepMode) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        let totals = self.sweep_by_team(mode, |team| report.absorb(team)).await?;
        report.started_at = totals.started_at;
        report.finished_at = totals.finished_at;
        report.plans.sort_by(|a, b| a.lineage.cmp(&b.lineage));
        Ok(report)
    }

    /// Runs one sweep, handing each team's report to `on_team` as the team
    /// finishes (in no set order), and returns the sweep's totals: the
    /// details of a team are held only while it is in flight.
    pub async fn sweep_by_team(
        &self,
        mode: &SweepMode,
        mut on_team: impl FnMut(SweepReport),
    ) -> Result<SweepTotals, SweepError> {
        let mut totals = SweepTotals {
            started_at: Some(self.clock.now()),
            ..SweepTotals::default()
        };
        if mode != &SweepMode::DryRun && self.records.is_none() {
            return Err(SweepError::Usage(
                "a sweep that acts needs the state database".into(),
            ));
        }
        let teams: Vec<&ManagedTeam> = match mode {
            SweepMode::RotateNow(l) => {
                let team = self
                    .teams
                    .iter()
                    .find(|t| t.id == l.team_id)
                    .ok_or_else(|| {
                        SweepError::Usage(format!("team {} is not in the config", l.team_id))
                    })?;
                if !team.matcher.is_match(&l.name) {
                    return Err(SweepError::Usage(format!(
                        "{} matches none of team {}'s key patterns: the daemon does not manage it",
                        l.name, l.team_id
                    )));
                }
                vec![team]
            }
            _ => self.teams.iter().collect(),
        };
        let slots = tokio::sync::Semaphore::new(self.concurrency * SWEEP_LINEAGES_PER_PERMIT);
        let slots = &slots;
        let mut finished = stream::iter(teams)
            .map(|team| async move {
                let started_at = Some(self.clock.now());
                let mut report = self.sweep_team(team, mode, slots).await?;
                report.started_at = started_at;
                report.finished_at = Some(self.clock.now());
                Ok::<_, Crashed>(report)
            })
            .buffer_unordered(self.concurrency);
        // A simulated crash ends the sweep once the teams in flight are done.
        let mut crashed = None;
        while let Some(result) = finished.next().await {
            match result {
                Ok(team) => {
                    totals.add(&team);
                    on_team(team);
                }
                Err(c) => crashed = crashed.or(Some(c)),
            }
        }
        if let Some(c) = crashed {
            return Err(c.into());
        }
        totals.finished_at = Some(self.clock.now());
        Ok(totals)
    }

    #[tracing::instrument(skip_all, fields(team_id = %team.id))]
    async fn sweep_team(
        &self,
        team: &ManagedTeam,
        mode: &SweepMode,
        slots: &tokio::sync::Semaphore,
    ) -> Result<SweepReport, Crashed> {
        let mut result = SweepReport {
            scope: Scope {
                teams: 1,
                ..Scope::default()
            },
            ..SweepReport::default()
        };
        let listed = match self.keys.list_keys(&team.id).await {
            Ok(keys) => keys,
            Err(e) => {
                warn!(error = %e, "cannot list the team's keys; skipping the team this sweep");
                result.scope.teams_failed = 1;
                result.scope.unreachable = e.is_unreachable();
                result.errors.push(format!("team {}: {e}", team.id));
                return Ok(result);
            }
        };
        let now = self.clock.now();
        let managed = admit(team, listed, &mut result);
        result.scope.managed_keys = managed.len();
        let managed_refs: Vec<&Key> = managed.iter().collect();
        let records = match &self.records {
            Some(r) => match r.load_team(&team.id, &managed_refs).await {
                Ok(recs) => recs,
                Err(e) => {
                    result.scope.teams_failed = 1;
                    result.errors.push(format!(
                        "team {}: cannot read the state database: {e}",
                        team.id
                    ));
                    return Ok(result);
                }
            },
            None => TeamRecords::default(),
        };
        if mode != &SweepMode::DryRun {
            if let Some(r) = &self.records {
                if let Err(e) = r.snapshot_keys(&team.id, &managed_refs, now).await {
                    warn!(error = %e, "cannot record the key snapshot");
                }
            }
        }

        drop(managed_refs);
        let lineages = lineages(team, managed, &records, mode);
        // Lineages with no cached Vault view would each be read; one list of
        // the team's names tells which of them have no secret at all
        // (adoption), and those need no read.
        let listed = if lineages
            .iter()
            .any(|(name, _)| !records.vault.contains_key(name))
        {
            self.secrets.lineage_names(&team.id).await
        } else {
            None
        };
        let listed = listed.as_ref();
        let records = &records;
        let jobs = lineages.into_iter().map(|(name, keys)| async move {
            let _slot = slots.acquire().await.expect("never closed");
            self.run_lineage(
                team,
                LineageId::new(&team.id, name),
                keys,
                (records, listed),
                mode,
            )
            .await
        });
        // More lineages than MASV permits, so Vault and database steps overlap the
        // MASV calls; the client's semaphore still bounds MASV to max_concurrency.
        let lineage_results: Vec<Result<LineageResult, Crashed>> = stream::iter(jobs)
            .buffer_unordered(self.concurrency * LINEAGES_PER_PERMIT)
            .collect()
            .await;
        for lr in lineage_results {
            let lr = lr?;
            result.scope.unreachable |= lr.unreachable;
            result.plans.push(lr.plan);
            result.outcomes.extend(lr.outcomes);
            result.errors.extend(lr.errors);
        }
        result.scope.lineages = result.plans.len();
        result.plans.sort_by(|a, b| a.lineage.cmp(&b.lineage));
        Ok(result)
    }

    /// The lineage's Vault view: from the cache, or, as of now (then `true`),
    /// none when the team's list of names (`listed`) lacks it, else read.
    async fn vault_view(
        &self,
        lineage: &LineageId,
        (records, listed): (&TeamRecords, Option<&BTreeSet<String>>),
        mode: &SweepMode,
    ) -> Result<(Option<VaultView>, bool), StepError> {
        if let Some(view) = records.vault.get(&lineage.name) {
            return Ok((view.clone(), false));
        }
        if listed.is_some_and(|names| !names.contains(&lineage.name)) {
            return Ok((None, true));
        }
        let stored = self.secrets.read(&lineage.team_id, &lineage.name).await?;
        let view = stored.as_ref().map(StoredSecret::view);
        if mode != &SweepMode::DryRun {
            if let Some(r) = &self.records {
                r.apply(
                    self.clock.now(),
                    vec![Change::Vault {
                        lineage: lineage.clone(),
                        view: view.clone(),
                    }],
                    vec![],
                )
                .await?;
            }
        }
        Ok((view, true))
    }

    /// The lineage's context for this sweep, and the planner's plan for it.
    /// The lineage's pending path is read first when the planner needs it
    /// (a foreign key, or a current key promoted by another instance).
    async fn plan(
        &self,
        team: &ManagedTeam,
        lineage: LineageId,
        keys: Vec<Key>,
        records: &TeamRecords,
        vault: (Option<VaultView>, bool),
        mode: &SweepMode,
    ) -> Result<(LineageContext, LineagePlan), StepError> {
        let mut snapshot = LineageSnapshot::from_records(
            records,
            lineage.clone(),
            keys.iter().collect(),
            vault.0.clone(),
            team.policy,
            self.clock.now(),
        );
        snapshot.rotate_now = matches!(mode, SweepMode::RotateNow(_));
        if needs_pending(&snapshot) {
            let staged = self
                .secrets
                .read_staged(&lineage.team_id, &lineage.name)
                .await?;
            snapshot.pending = match staged {
                Some(s) => Pending::Holds {
                    key_id: s.secret.key_id,
                    rotation_id: s.secret.rotation_id,
                },
                None => Pending::Empty,
            };
        }
        let plan = plan_lineage(&snapshot);
        let open_rotation = snapshot.open_rotation.take();
        let retirements = std::mem::take(&mut snapshot.retirements);
        drop(snapshot);
        let ctx = LineageContext {
            lineage,
            policy: team.policy,
            vault: vault.0,
            vault_fresh: vault.1,
            open_rotation,
            retirements,
            verified: records.verified.clone(),
            keys,
        };
        Ok((ctx, plan))
    }

    /// Carries out the plan's actions in order, stopping between two at shutdown.
    async fn carry_out(
        &self,
        ctx: &LineageContext,
        plan: &LineagePlan,
        result: &mut LineageResult,
    ) -> Result<(), Crashed> {
        let lineage = &ctx.lineage;
        let records_handle = self.records.as_ref().expect("checked at sweep start");
        let exec = Executor {
            keys: &self.keys,
            secrets: &self.secrets,
            steps: StepRunner {
                records: records_handle.as_ref(),
                clock: &self.clock,
                failpoints: &self.failpoints,
                fence: self.fence.as_deref(),
            },
        };
        for action in &plan.actions {
            self.beat();
            if self.shutdown.is_cancelled() {
                result.errors.push(format!(
                    "{lineage}: stopped before {} (shutdown)",
                    action.kind()
                ));
                break;
            }
            if let Some(Err(why)) = self.fence.as_ref().map(|f| f.check()) {
                result.errors.push(format!(
                    "{lineage}: stopped before {} ({why})",
                    action.kind()
                ));
                break;
            }
            let started = self.clock.now();
            let outcome = exec.carry_out(ctx, action).await;
            let took = (self.clock.now() - started).to_std().unwrap_or_default();
            let (ok, detail, rotated) = match outcome {
                Ok(rotated) => (true, String::new(), rotated),
                Err(StepError::Crashed(c)) => return Err(c),
                Err(e) => {
                    warn!(error = %e, action = action.kind().as_str(), "action failed");
                    result.unreachable |= e.is_unreachable();
                    (false, e.to_string(), None)
                }
            };
            if action.mutates() || !ok {
                result.outcomes.push(ActionOutcome {
                    lineage: lineage.clone(),
                    action: action.kind(),
                    key_id: action.key_id().map(str::to_string),
                    ok,
                    detail,
                    rotated,
                    took,
                });
            }
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(team_id = %lineage.team_id, key_name = %lineage.name))]
    async fn run_lineage(
        &self,
        team: &ManagedTeam,
        lineage: LineageId,
        keys: Vec<Key>,
        (records, listed): (&TeamRecords, Option<&BTreeSet<String>>),
        mode: &SweepMode,
    ) -> Result<LineageResult, Crashed> {
        let mut result = LineageResult {
            plan: LineagePlan {
                lineage: lineage.clone(),
                actions: vec![],
                notes: vec![],
                keys: vec![],
            },
            ..LineageResult::default()
        };
        let vault = match self.vault_view(&lineage, (records, listed), mode).await {
            Ok(v) => v,
            Err(e) => {
                result.unreachable = e.is_unreachable();
                result.errors.push(match e {
                    StepError::Store(_) => format!("{lineage}: {e}"),
                    _ => format!("{lineage}: cannot read Vault: {e}"),
                });
                return Ok(result);
            }
        };
        let (ctx, plan) = match self
            .plan(team, lineage.clone(), keys, records, vault, mode)
            .await
        {
            Ok(planned) => planned,
            Err(e) => {
                result.unreachable = e.is_unreachable();
                result
                    .errors
                    .push(format!("{lineage}: cannot read the pending path: {e}"));
                return Ok(result);
            }
        };
        if mode == &SweepMode::DryRun {
            result.plan = plan;
            return Ok(result);
        }
        self.carry_out(&ctx, &plan, &mut result).await?;
        if !plan.actions.is_empty() {
            info!(actions = plan.actions.len(), "lineage done");
        }
        result.plan = plan;
        Ok(result)
    }
}

/// The team's listed keys that match its patterns and can be managed; the
/// others are counted (and the unmanageable ones reported) in `result`.
fn admit(team: &ManagedTeam, listed: Vec<Key>, result: &mut SweepReport) -> Vec<Key> {
    let mut unmatched = 0;
    let mut managed = Vec::with_capacity(listed.len());
    for key in listed {
        if !team.matcher.is_match(&key.name) {
            unmatched += 1;
            continue;
        }
        match admission::problem(&key) {
            None => managed.push(key),
            Some(reason) => {
                warn!(key_id = %key.id, reason = %reason.describe(), "key left alone: it cannot be managed");
                result.unmanageable.push(Unmanageable {
                    team_id: team.id.clone(),
                    key_id: key.id,
                    reason,
                });
            }
        }
    }
    result.scope.unmanaged_keys = unmatched;
    managed
}

/// The team's lineages this sweep works on, each with its listed keys.
/// Lineages known only from the records (all their keys gone) still count.
fn lineages(
    team: &ManagedTeam,
    managed: Vec<Key>,
    records: &TeamRecords,
    mode: &SweepMode,
) -> Vec<(String, Vec<Key>)> {
    let mut by_name: BTreeMap<String, Vec<Key>> = BTreeMap::new();
    for k in managed {
        match by_name.get_mut(&k.name) {
            Some(keys) => keys.push(k),
            None => {
                by_name.insert(k.name.clone(), vec![k]);
            }
        }
    }
    let mut names: BTreeSet<String> = by_name.keys().cloned().collect();
    for (name, view) in &records.vault {
        if view.is_some() && team.matcher.is_match(name) {
            names.insert(name.clone());
        }
    }
    for name in records.open.keys() {
        if team.matcher.is_match(name) {
            names.insert(name.clone());
        }
    }
    if let SweepMode::RotateNow(l) = mode {
        names.retain(|n| n == &l.name);
        names.insert(l.name.clone());
    }
    names
        .into_iter()
        .map(|name| {
            let keys = by_name.remove(name.as_str()).unwrap_or_default();
            (name, keys)
        })
        .collect()
}

#[derive(Default)]
struct LineageResult {
    unreachable: bool,
    plan: LineagePlan,
    outcomes: Vec<ActionOutcome>,
    errors: Vec<String>,
}

impl Default for LineagePlan {
    fn default() -> Self {
        LineagePlan {
            lineage: LineageId::new("", ""),
            actions: vec![],
            notes: vec![],
            keys: vec![],
        }
    }
}
