//! The step runner: the one place where a call to MASV or Vault becomes a
//! recorded step.
//!
//! Every mutation has the same rhythm, written here once: record the intent (and
//! wait for its commit), pass the crash point before the call, make the call,
//! pass the crash point after it, then record the outcome together with its
//! audit row in one transaction. A crash between any two of those leaves a
//! record that the resume path knows how to finish or undo (docs/design.md,
//! invariants 4 and 6). Steps that learn something without a call (a key found
//! by its marker after a restart, a rotation given up) go through
//! [`StepRunner::record`], so their audit rows take the same road.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::audit::{AuditAction, NewAuditEntry, Outcome};
use super::failpoints::{Boundary, Crashed, Failpoints};
use super::model::LineageId;
use super::ports::{Fence, KeyApiError, NotHolder, RecordError, RecordStore, SecretStoreError};
use super::records::Change;
use crate::clock::SharedClock;

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Crashed(#[from] Crashed),
    #[error("MASV: {0}")]
    Masv(#[from] KeyApiError),
    #[error("Vault: {0}")]
    Vault(#[from] SecretStoreError),
    /// The intent or outcome could not be recorded: nothing further is mutated.
    #[error("state database: {0}")]
    Store(#[from] RecordError),
    /// A safety check refused the step.
    #[error("refused: {0}")]
    Guard(String),
    /// With several instances, this one may not mutate now (invariant 8).
    #[error("not taken: {0}")]
    Fenced(#[from] NotHolder),
}

impl StepError {
    /// Whether the failure is that MASV or Vault could not be reached.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StepError::Masv(e) => e.is_unreachable(),
            StepError::Vault(e) => e.is_unreachable(),
            _ => false,
        }
    }
}

/// What a step is about: the audit row's subject and the step's crash points.
pub(super) struct Step<'s> {
    pub lineage: &'s LineageId,
    pub key_id: Option<&'s str>,
    pub rotation_id: Option<&'s str>,
    pub action: AuditAction,
    /// Committed before the call. Empty when the previous step's outcome
    /// already carried this step's intent in its own commit.
    pub intent: Vec<Change>,
    pub before: Option<Boundary>,
    pub after: Option<Boundary>,
}

/// What an outcome writes: the state changes and the audit row's detail.
pub(super) struct Recorded {
    pub changes: Vec<Change>,
    pub detail: String,
    /// The key the audit row names when the call revealed it (a created key).
    pub key_id: Option<String>,
}

impl Recorded {
    pub fn new(changes: Vec<Change>, detail: impl Into<String>) -> Self {
        Self {
            changes,
            detail: detail.into(),
            key_id: None,
        }
    }

    /// The audit row names `key_id` rather than the step's key.
    pub fn naming(mut self, key_id: &str) -> Self {
        self.key_id = Some(key_id.to_string());
        self
    }
}

/// Runs steps against the engine's records, clock and crash points.
pub(super) struct StepRunner<'a> {
    pub records: &'a dyn RecordStore,
    pub clock: &'a SharedClock,
    pub failpoints: &'a Failpoints,
    /// With several instances, the lease every mutating call must be under.
    pub fence: Option<&'a dyn Fence>,
}

impl StepRunner<'_> {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Intent, call, outcome. The call's own result comes back once its
    /// outcome is on record; the outer error is a crash, an unrecordable
    /// outcome or a lease this instance does not hold (checked before the
    /// intent and again right before the call), after which nothing further
    /// may be done.
    pub async fn run<T, E>(
        &self,
        step: Step<'_>,
        call: impl Future<Output = Result<T, E>>,
        ok: impl FnOnce(&T) -> Recorded,
        failed: impl FnOnce(&E) -> Recorded,
    ) -> Result<Result<T, E>, StepError> {
        let Step {
            lineage,
            key_id,
            rotation_id,
            action,
            intent,
            before,
            after,
        } = step;
        self.fenced()?;
        if !intent.is_empty() {
            self.records.apply(self.now(), intent, vec![]).await?;
        }
        self.crash_point(before)?;
        let lease_token = self.fenced()?;
        let result = call.await;
        let (outcome, recorded) = match &result {
            Ok(value) => {
                self.crash_point(after)?;
                (Outcome::Ok, ok(value))
            }
            Err(error) => (Outcome::Failed, failed(error)),
        };
        let key_id = recorded.key_id.as_deref().or(key_id);
        let mut entry = self.entry(
            lineage,
            key_id,
            rotation_id,
            action,
            outcome,
            recorded.detail,
        );
        entry.lease_token = lease_token;
        self.records
            .apply(self.now(), recorded.changes, vec![entry])
            .await?;
        Ok(result)
    }

    /// Records what was learnt without a call, with its audit row if it has one.
    pub async fn record(
        &self,
        changes: Vec<Change>,
        audit: Option<(Step<'_>, Outcome, String)>,
    ) -> Result<(), StepError> {
        let entries = audit
            .map(|(s, outcome, detail)| {
                self.entry(
                    s.lineage,
                    s.key_id,
                    s.rotation_id,
                    s.action,
                    outcome,
                    detail,
                )
            })
            .into_iter()
            .collect();
        self.records.apply(self.now(), changes, entries).await?;
        Ok(())
    }

    /// The fencing token to record, if this instance runs with a lease and
    /// holds it now; an error if it runs with one and does not.
    fn fenced(&self) -> Result<Option<i64>, NotHolder> {
        self.fence
            .map(|f| f.check().map(|t| i64::try_from(t).unwrap_or(i64::MAX)))
            .transpose()
    }

    fn crash_point(&self, at: Option<Boundary>) -> Result<(), Crashed> {
        match at {
            Some(b) => self.failpoints.check(b),
            None => Ok(()),
        }
    }

    fn entry(
        &self,
        lineage: &LineageId,
        key_id: Option<&str>,
        rotation_id: Option<&str>,
        action: AuditAction,
        outcome: Outcome,
        detail: String,
    ) -> NewAuditEntry {
        NewAuditEntry {
            at: self.now(),
            team_id: Some(lineage.team_id.clone()),
            key_id: key_id.map(str::to_string),
            key_name: Some(lineage.name.clone()),
            action,
            outcome,
            detail,
            rotation_id: rotation_id.map(str::to_string),
            lease_token: None,
        }
    }
}

/// A step about one key of a lineage, with no intent and no crash points yet.
pub(super) fn about<'s>(
    lineage: &'s LineageId,
    key_id: Option<&'s str>,
    rotation_id: Option<&'s str>,
    action: AuditAction,
) -> Step<'s> {
    Step {
        lineage,
        key_id,
        rotation_id,
        action,
        intent: vec![],
        before: None,
        after: None,
    }
}

impl<'s> Step<'s> {
    /// The intent committed before the call.
    pub fn intent(mut self, changes: Vec<Change>) -> Self {
        self.intent = changes;
        self
    }

    /// The crash points around the call.
    pub fn crash_points(mut self, before: Option<Boundary>, after: Option<Boundary>) -> Self {
        self.before = before;
        self.after = after;
        self
    }
}
