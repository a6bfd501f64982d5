//! The fence the engine checks before every mutating step: this instance may
//! mutate only while it holds an unexpired lease, with the safety margin, and
//! only once the daemon has armed the term (after reconciling its records with
//! what other holders may have done, `Engine::hand_over`).
//!
//! Checking is a lock and a clock read: no I/O, so it is done before every
//! step rather than once per sweep.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::engine::ports::{Fence, NotHolder};

#[derive(Debug, Clone, Copy)]
enum Hold {
    /// Not the holder.
    None,
    /// Holding since acquisition number `term`, under the fencing `token`.
    Held {
        term: u64,
        token: u64,
        valid_until: Instant,
        armed: bool,
    },
}

/// Shared between the keeper (which holds and drops), the daemon (which arms)
/// and every engine built while the process runs.
#[derive(Debug, Clone)]
pub struct LeaseFence {
    hold: Arc<Mutex<Hold>>,
}

impl Default for LeaseFence {
    fn default() -> Self {
        Self {
            hold: Arc::new(Mutex::new(Hold::None)),
        }
    }
}

impl LeaseFence {
    fn with<T>(&self, f: impl FnOnce(&mut Hold) -> T) -> T {
        f(&mut self.hold.lock().expect("fence mutex poisoned"))
    }

    /// A new term begins (not armed yet).
    pub(super) fn acquired(&self, term: u64, token: u64, valid_until: Instant) {
        self.with(|h| {
            *h = Hold::Held {
                term,
                token,
                valid_until,
                armed: false,
            }
        });
    }

    /// A renewal moved the token and the end of validity.
    pub(super) fn renewed(&self, new_token: u64, until: Instant) {
        self.with(|h| {
            if let Hold::Held {
                token, valid_until, ..
            } = h
            {
                *token = new_token;
                *valid_until = until;
            }
        });
    }

    /// Stop mutating at once.
    pub(super) fn dropped(&self) {
        self.with(|h| *h = Hold::None);
    }

    /// Lets the engine mutate in `term`, once its records are reconciled.
    /// False when that term is already over.
    pub fn arm(&self, term: u64) -> bool {
        self.with(|h| match h {
            Hold::Held { term: t, armed, .. } if *t == term => {
                *armed = true;
                true
            }
            _ => false,
        })
    }

    /// The current term's number, once armed.
    pub fn armed_term(&self) -> Option<u64> {
        self.with(|h| match *h {
            Hold::Held {
                term, armed: true, ..
            } => Some(term),
            _ => None,
        })
    }

    /// The current term's number and token, armed or not.
    pub fn term(&self) -> Option<(u64, u64)> {
        self.with(|h| match *h {
            Hold::Held { term, token, .. } => Some((term, token)),
            Hold::None => None,
        })
    }
}

impl Fence for LeaseFence {
    fn check(&self) -> Result<u64, NotHolder> {
        let now = Instant::now();
        self.with(|h| match *h {
            Hold::None => Err(NotHolder::new("this instance does not hold the HA lease")),
            Hold::Held { armed: false, .. } => Err(NotHolder::new(
                "the HA lease was just taken; its records are not reconciled yet",
            )),
            Hold::Held {
                valid_until, token, ..
            } if now < valid_until => Ok(token),
            Hold::Held { .. } => Err(NotHolder::new(
                "the HA lease is within its safety margin of expiring (renewal overdue)",
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_an_armed_unexpired_term_may_mutate() {
        let f = LeaseFence::default();
        assert!(f.check().is_err(), "never held");
        let until = Instant::now() + Duration::from_secs(60);
        f.acquired(1, 5, until);
        assert!(f.check().is_err(), "not armed yet");
        assert!(!f.arm(2), "another term");
        assert!(f.arm(1));
        assert_eq!(f.check().unwrap(), 5);
        f.renewed(6, until);
        assert_eq!(f.check().unwrap(), 6);
        f.renewed(7, Instant::now());
        assert!(f.check().unwrap_err().to_string().contains("margin"));
        f.dropped();
        assert!(!f.arm(1), "a dropped term cannot be armed");
        assert!(f.check().is_err());
        f.acquired(2, 9, until);
        assert!(f.check().is_err(), "a new term starts unarmed");
    }
}
