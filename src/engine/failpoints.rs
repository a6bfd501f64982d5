//! Crash points: named places in the executor where a test can make it stop dead.
//!
//! A crash is simulated by returning [`Crashed`] from the boundary: nothing after
//! it runs, and everything the process held only in memory (the new key's secret,
//! the step in flight) is lost, exactly as with `kill -9`. The test then builds a
//! fresh engine over the same database, MASV and Vault, i.e. a restart, and
//! checks it resumes or rolls back. Disarmed (the default and in production) a
//! check is one relaxed atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The boundaries around every external mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Boundary {
    /// Intent "creating" recorded, create not yet sent.
    BeforeCreate,
    /// MASV created the key; nothing recorded yet.
    AfterCreate,
    /// Intent "storing" recorded, Vault not yet written.
    BeforeStore,
    /// Vault written; nothing recorded yet.
    AfterStore,
    /// Intent "activating" recorded, activation not yet sent.
    BeforeActivate,
    /// MASV activated the key; nothing recorded yet.
    AfterActivate,
    /// Key verified with MASV; nothing recorded yet.
    AfterVerify,
    /// Intent "promoting" recorded, the lineage's path not yet written.
    BeforePromote,
    /// The secret promoted to the lineage's path; nothing recorded yet.
    AfterPromote,
    /// Intent "deactivating" recorded, not yet sent.
    BeforeDeactivate,
    /// MASV deactivated the old key; nothing recorded yet.
    AfterDeactivate,
    /// Intent "deleting" recorded, not yet sent.
    BeforeDelete,
    /// MASV deleted the key; nothing recorded yet.
    AfterDelete,
    /// Intent "rolling_back" recorded, the new key not yet deleted.
    BeforeRollback,
    /// The new key deleted during rollback; nothing recorded yet.
    AfterRollback,
}

impl Boundary {
    pub const ALL: [Boundary; 15] = [
        Boundary::BeforeCreate,
        Boundary::AfterCreate,
        Boundary::BeforeStore,
        Boundary::AfterStore,
        Boundary::BeforeActivate,
        Boundary::AfterActivate,
        Boundary::AfterVerify,
        Boundary::BeforePromote,
        Boundary::AfterPromote,
        Boundary::BeforeDeactivate,
        Boundary::AfterDeactivate,
        Boundary::BeforeDelete,
        Boundary::AfterDelete,
        Boundary::BeforeRollback,
        Boundary::AfterRollback,
    ];
}

/// The executor stopped at a crash point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("simulated crash at {0:?}")]
pub struct Crashed(pub Boundary);

/// A set of armed crash points, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    armed: Arc<AtomicBool>,
    at: Arc<Mutex<Option<Boundary>>>,
    hit: Arc<Mutex<Vec<Boundary>>>,
}

impl Failpoints {
    /// Crash the first time `boundary` is reached.
    pub fn arm(&self, boundary: Boundary) {
        *self.at.lock().expect("failpoints poisoned") = Some(boundary);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Whether the armed boundary has been reached (and so disarmed).
    pub fn fired(&self) -> Vec<Boundary> {
        self.hit.lock().expect("failpoints poisoned").clone()
    }

    /// Called by the executor at each boundary.
    pub fn check(&self, boundary: Boundary) -> Result<(), Crashed> {
        if !self.armed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut at = self.at.lock().expect("failpoints poisoned");
        if *at == Some(boundary) {
            *at = None;
            self.armed.store(false, Ordering::SeqCst);
            self.hit.lock().expect("failpoints poisoned").push(boundary);
            return Err(Crashed(boundary));
        }
        Ok(())
    }
}
