//! The keeper: one task per process that looks at the lease every third of its
//! ttl, takes it when [`rules`](super::rules) say so, renews it while held,
//! and releases it at shutdown. It publishes what it knows on a watch channel
//! (`status`, `/healthz`, metrics, events and the sweep loop read it) and
//! keeps the [`LeaseFence`] the engine checks.
//!
//! Every Vault call is bounded by a third of the ttl, so a hung request never
//! outlives the holder's right to mutate; any failure to renew drops the fence
//! at once (the instance becomes a standby and looks again at the next tick).

use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::fence::LeaseFence;
use super::rules::{self, Previous, Seen, StandbyMove, Timing};
use super::{LeaseStore, LeaseStoreError, Observed};
use crate::clock::SharedClock;

/// This instance's part in the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRole {
    /// Has not read the lease yet (Vault not reached).
    Starting,
    Standby,
    Holder,
}

impl LeaseRole {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseRole::Starting => "starting",
            LeaseRole::Standby => "standby",
            LeaseRole::Holder => "holder",
        }
    }
}

/// What the keeper last knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    pub me: String,
    pub role: LeaseRole,
    /// The holder as last read or written (None: nobody).
    pub holder: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The fencing token while holding.
    pub token: Option<u64>,
    /// Acquisitions by this process so far; the current term's number while holding.
    pub term: u64,
    /// Who held the lease before the current term.
    pub previous: Option<Previous>,
    /// Times this process became holder or stopped being it.
    pub transitions: u64,
    /// Why the last term ended, if one did.
    pub lost_because: Option<String>,
}

/// Keeps the lease for one instance.
pub struct LeaseKeeper<S> {
    store: S,
    me: String,
    timing: Timing,
    clock: SharedClock,
    fence: LeaseFence,
    status: watch::Sender<LeaseStatus>,
}

/// What the keeper holds between ticks.
enum State {
    Standby {
        seen: Option<Seen>,
    },
    Holder {
        acquired_at: DateTime<Utc>,
        token: u64,
    },
}

impl<S: LeaseStore> LeaseKeeper<S> {
    pub fn new(store: S, me: String, timing: Timing, clock: SharedClock) -> Self {
        let (status, _) = watch::channel(LeaseStatus {
            me: me.clone(),
            role: LeaseRole::Starting,
            holder: None,
            expires_at: None,
            token: None,
            term: 0,
            previous: None,
            transitions: 0,
            lost_because: None,
        });
        Self {
            store,
            me,
            timing,
            clock,
            fence: LeaseFence::default(),
            status,
        }
    }

    /// The fence the engine checks.
    pub fn fence(&self) -> LeaseFence {
        self.fence.clone()
    }

    /// Follows the keeper's status.
    pub fn subscribe(&self) -> watch::Receiver<LeaseStatus> {
        self.status.subscribe()
    }

    /// Looks, takes, renews until `shutdown`; then releases a held lease.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut state = State::Standby { seen: None };
        let mut next = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(next.into()) => {}
            }
            next = Instant::now() + self.timing.every();
            state = match state {
                State::Standby { seen } => self.look(seen).await,
                State::Holder { acquired_at, token } => self.renew(acquired_at, token).await,
            };
        }
        if let State::Holder { acquired_at, token } = state {
            self.release(acquired_at, token).await;
        }
    }

    /// A Vault call bounded by a third of the ttl.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, LeaseStoreError>>,
    ) -> Result<T, LeaseStoreError> {
        tokio::time::timeout(self.timing.every(), call)
            .await
            .unwrap_or_else(|_| {
                Err(LeaseStoreError {
                    conflict: false,
                    message: format!(
                        "no answer from Vault within {}",
                        humantime::format_duration(self.timing.every())
                    ),
                })
            })
    }

    async fn look(&self, seen: Option<Seen>) -> State {
        let observed = match self.bounded(self.store.read_lease()).await {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, "cannot read the HA lease; looking again shortly");
                return State::Standby { seen };
            }
        };
        let now = Instant::now();
        match rules::standby_move(
            &self.me,
            self.timing,
            observed.as_ref(),
            seen,
            now,
            self.clock.now(),
        ) {
            StandbyMove::Wait { seen } => {
                self.publish_standby(observed.as_ref());
                State::Standby { seen: Some(seen) }
            }
            StandbyMove::Acquire { cas, previous } => self.acquire(cas, previous).await,
        }
    }

    async fn acquire(&self, cas: u64, previous: Previous) -> State {
        let wall = self.clock.now();
        let record = rules::held_record(&self.me, self.timing, wall, wall);
        let sent = Instant::now();
        match self.bounded(self.store.write_lease(&record, cas)).await {
            Ok(token) => {
                let term = self.status.borrow().term + 1;
                self.fence
                    .acquired(term, token, self.timing.valid_until(sent));
                info!(token, term, previous = ?previous, "took the HA lease");
                self.status.send_modify(|s| {
                    s.role = LeaseRole::Holder;
                    s.holder = Some(self.me.clone());
                    s.expires_at = Some(record.expires_at);
                    s.token = Some(token);
                    s.term = term;
                    s.previous = Some(previous);
                    s.transitions += 1;
                });
                State::Holder {
                    acquired_at: wall,
                    token,
                }
            }
            Err(e) => {
                if e.conflict {
                    info!("another instance took the HA lease first");
                } else {
                    warn!(error = %e, "cannot take the HA lease");
                }
                self.publish_standby(None);
                State::Standby { seen: None }
            }
        }
    }

    async fn renew(&self, acquired_at: DateTime<Utc>, token: u64) -> State {
        let record = rules::held_record(&self.me, self.timing, acquired_at, self.clock.now());
        let sent = Instant::now();
        match self.bounded(self.store.write_lease(&record, token)).await {
            Ok(new_token) => {
                self.fence.renewed(new_token, self.timing.valid_until(sent));
                self.status.send_modify(|s| {
                    s.token = Some(new_token);
                    s.expires_at = Some(record.expires_at);
                });
                State::Holder {
                    acquired_at,
                    token: new_token,
                }
            }
            Err(e) => {
                self.fence.dropped();
                let why = if e.conflict {
                    "another instance wrote the lease".to_string()
                } else {
                    format!("cannot renew it: {e}")
                };
                warn!(reason = %why, "lost the HA lease: no more changes until it is taken again");
                self.status.send_modify(|s| {
                    s.role = LeaseRole::Standby;
                    s.token = None;
                    s.transitions += 1;
                    s.lost_because = Some(why);
                });
                State::Standby { seen: None }
            }
        }
    }

    async fn release(&self, acquired_at: DateTime<Utc>, token: u64) {
        self.fence.dropped();
        let record = rules::released_record(acquired_at, self.clock.now());
        match self.bounded(self.store.write_lease(&record, token)).await {
            Ok(_) => info!("released the HA lease"),
            Err(e) => warn!(error = %e, "cannot release the HA lease; it expires on its own"),
        }
        self.status.send_modify(|s| {
            s.role = LeaseRole::Standby;
            s.holder = None;
            s.token = None;
            s.transitions += 1;
            s.lost_because = Some("released at shutdown".into());
        });
    }

    fn publish_standby(&self, observed: Option<&Observed>) {
        self.status.send_modify(|s| {
            s.role = LeaseRole::Standby;
            s.token = None;
            if let Some(o) = observed {
                s.holder = (!o.record.is_released()).then(|| o.record.holder.clone());
                s.expires_at = Some(o.record.expires_at);
            }
        });
    }
}
