//! The rotation policy as the engine reads it (docs/design.md, section 4): one
//! team's final durations. Where they come from (defaults, `[policy]`,
//! `[team.policy]`) is the config's business; the engine only reads them.

use std::time::Duration;

/// When keys are rotated, retired and reported, for one team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A key whose expiry is this close is due.
    pub rotate_before_expiry: Duration,
    /// A key older than this is due.
    pub max_age: Duration,
    /// The lifetime (expiry) given to a new key.
    pub new_key_lifetime: Duration,
    /// A replaced key stays active at least this long after it was replaced.
    pub grace_period: Duration,
    /// ...and until it has been idle this long.
    pub idle_before_deactivate: Duration,
    /// A replaced key is deactivated this long after it was replaced, in use or not.
    pub max_overlap: Duration,
    /// How long after the daemon deactivated a key it is deleted.
    pub delete_after: Duration,
    /// Keys unused for this long (never-used keys: this old) are reported as stale.
    pub unused_after: Duration,
}
