//! When to take, keep and give up the lease: pure functions of what was read
//! from Vault, when, and this instance's own monotonic time. The keeper does
//! the I/O and calls these; the tests here are the lease's rules as a table.
//!
//! Safety does not rest on wall clocks agreeing. A holder's right to mutate
//! ends `ttl - margin` after it *sent* its last successful renewal, by its own
//! monotonic clock. A standby takes over only once it has seen the same lease
//! version unchanged for a whole `ttl` of its own monotonic clock, and it first
//! saw that version after the holder sent it; so the holder has stopped at
//! least `margin` before anyone else starts. The wall-clock `expires_at` is
//! for people (and `status`); it shortens a takeover only when it passed
//! more than a whole `ttl` ago (every instance down for a while), which keeps
//! any skew below `ttl + margin` harmless.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The lease as stored at `<path_prefix>/_leader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The holder's instance id; empty once released.
    pub holder: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl LeaseRecord {
    pub fn is_released(&self) -> bool {
        self.holder.is_empty()
    }
}

/// A lease read from Vault: its KV version (the fencing token) and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub version: u64,
    pub record: LeaseRecord,
}

/// The lease's timings, all derived from its time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ttl: Duration,
}

impl Timing {
    /// How often the holder renews and a standby looks: a third of the ttl.
    pub fn every(self) -> Duration {
        self.ttl / 3
    }

    /// How long before the lease's end a holder stops mutating.
    pub fn margin(self) -> Duration {
        self.ttl / 3
    }

    /// Until when a renewal (or acquisition) sent at `sent` lets its holder mutate.
    pub fn valid_until(self, sent: Instant) -> Instant {
        sent + self.ttl - self.margin()
    }
}

/// What a standby remembers between looks: the version it saw and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub version: u64,
    pub since: Instant,
}

/// Who held the lease before an acquisition: what decides whether this
/// instance's own records can still be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// Nobody ever held it.
    Nobody,
    /// It was released, by whom is not recorded.
    Released,
    /// This instance (it restarted, or lost and won it back with nobody between).
    Me,
    /// Another instance.
    Other(String),
}

/// What a standby does after a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StandbyMove {
    /// Try to take the lease: a check-and-set write against `cas`.
    Acquire { cas: u64, previous: Previous },
    /// Someone holds it: look again later.
    Wait { seen: Seen },
}

/// A standby's decision on the lease as read at `now` (`wall` by its clock).
pub fn standby_move(
    me: &str,
    timing: Timing,
    observed: Option<&Observed>,
    seen: Option<Seen>,
    now: Instant,
    wall: DateTime<Utc>,
) -> StandbyMove {
    let Some(lease) = observed else {
        return StandbyMove::Acquire {
            cas: 0,
            previous: Previous::Nobody,
        };
    };
    let previous = if lease.record.is_released() {
        Previous::Released
    } else if lease.record.holder == me {
        Previous::Me
    } else {
        Previous::Other(lease.record.holder.clone())
    };
    let seen = match seen {
        Some(s) if s.version == lease.version => s,
        _ => Seen {
            version: lease.version,
            since: now,
        },
    };
    let unchanged_for_a_ttl = now.saturating_duration_since(seen.since) >= timing.ttl;
    let long_expired = lease.record.expires_at
        + chrono::Duration::from_std(timing.ttl).unwrap_or(chrono::Duration::MAX)
        <= wall;
    if lease.record.is_released() || unchanged_for_a_ttl || long_expired {
        StandbyMove::Acquire {
            cas: lease.version,
            previous,
        }
    } else {
        StandbyMove::Wait { seen }
    }
}

/// The record a holder writes when it acquires or renews at `wall`.
pub fn held_record(
    me: &str,
    timing: Timing,
    acquired_at: DateTime<Utc>,
    wall: DateTime<Utc>,
) -> LeaseRecord {
    LeaseRecord {
        holder: me.to_string(),
        acquired_at,
        expires_at: wall + chrono::Duration::from_std(timing.ttl).unwrap_or(chrono::Duration::MAX),
    }
}

/// The record a holder writes when it lets go at `wall`.
pub fn released_record(acquired_at: DateTime<Utc>, wall: DateTime<Utc>) -> LeaseRecord {
    LeaseRecord {
        holder: String::new(),
        acquired_at,
        expires_at: wall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);
    const T: Timing = Timing { ttl: TTL };

    fn wall() -> DateTime<Utc> {
        "2026-12-02T12:00:00Z".parse().unwrap()
    }

    fn lease(version: u64, holder: &str, expires_in_secs: i64) -> Observed {
        Observed {
            version,
            record: LeaseRecord {
                holder: holder.into(),
                acquired_at: wall() - chrono::Duration::minutes(5),
                expires_at: wall() + chrono::Duration::seconds(expires_in_secs),
            },
        }
    }

    #[test]
    fn nobody_ever_held_it_take_it_with_cas_zero() {
        let now = Instant::now();
        assert_eq!(
            standby_move("a", T, None, None, now, wall()),
            StandbyMove::Acquire {
                cas: 0,
                previous: Previous::Nobody
            }
        );
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let now = Instant::now();
        let mut l = lease(7, "", 0);
        l.record.expires_at = wall();
        assert_eq!(
            standby_move("a", T, Some(&l), None, now, wall()),
            StandbyMove::Acquire {
                cas: 7,
                previous: Previous::Released
            }
        );
    }

    #[test]
    fn a_live_lease_is_waited_on_until_unchanged_for_a_whole_ttl() {
        let t0 = Instant::now();
        let l = lease(7, "b", 30);
        let first = standby_move("a", T, Some(&l), None, t0, wall());
        let seen = Seen {
            version: 7,
            since: t0,
        };
        assert_eq!(first, StandbyMove::Wait { seen });
        // Even once its wall-clock expiry has passed (the standby's clock may run ahead).
        let later = wall() + chrono::Duration::seconds(40);
        assert_eq!(
            standby_move(
                "a",
                T,
                Some(&l),
                Some(seen),
                t0 + TTL - Duration::from_millis(1),
                later
            ),
            StandbyMove::Wait { seen }
        );
        assert_eq!(
            standby_move("a", T, Some(&l), Some(seen), t0 + TTL, later),
            StandbyMove::Acquire {
                cas: 7,
                previous: Previous::Other("b".into())
            }
        );
    }

    #[test]
    fn a_renewal_restarts_the_standby_s_count() {
        let t0 = Instant::now();
        let seen = Seen {
            version: 7,
            since: t0,
        };
        let renewed = lease(8, "b", 30);
        let at = t0 + TTL + Duration::from_secs(1);
        assert_eq!(
            standby_move("a", T, Some(&renewed), Some(seen), at, wall()),
            StandbyMove::Wait {
                seen: Seen {
                    version: 8,
                    since: at
                }
            }
        );
    }

    #[test]
    fn a_lease_that_expired_more_than_a_ttl_ago_is_taken_at_once() {
        let now = Instant::now();
        let stale = lease(3, "b", -31);
        assert!(matches!(
            standby_move("a", T, Some(&stale), None, now, wall()),
            StandbyMove::Acquire { cas: 3, .. }
        ));
        let recent = lease(3, "b", -29);
        assert!(matches!(
            standby_move("a", T, Some(&recent), None, now, wall()),
            StandbyMove::Wait { .. }
        ));
    }

    #[test]
    fn its_own_name_is_waited_on_like_any_other() {
        // After a restart the old process may still be alive (or a twin has the
        // same id): waiting a ttl keeps two writers apart either way.
        let now = Instant::now();
        let mine = lease(4, "a", 30);
        assert!(matches!(
            standby_move("a", T, Some(&mine), None, now, wall()),
            StandbyMove::Wait { .. }
        ));
        let seen = Seen {
            version: 4,
            since: now,
        };
        assert_eq!(
            standby_move("a", T, Some(&mine), Some(seen), now + TTL, wall()),
            StandbyMove::Acquire {
                cas: 4,
                previous: Previous::Me
            }
        );
    }

    #[test]
    fn the_holder_stops_a_margin_before_any_standby_starts() {
        // The holder sends its renewal at `sent`; the fastest standby sees the new
        // version no earlier than that and waits a whole ttl from then.
        let sent = Instant::now();
        let standby_starts = sent + TTL;
        assert_eq!(standby_starts - T.valid_until(sent), T.margin());
        assert_eq!(T.every(), Duration::from_secs(10));
    }

    #[test]
    fn records_hold_the_holder_and_times() {
        let r = held_record("a", T, wall(), wall());
        assert_eq!(r.expires_at - r.acquired_at, chrono::Duration::seconds(30));
        assert!(!r.is_released());
        let gone = released_record(wall(), wall());
        assert!(gone.is_released());
    }
}
