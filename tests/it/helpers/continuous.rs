//! Continuous rotation for the real binary on the wall clock: a policy under
//! which keys live 30 s and are replaced 10 s into their life, a sweep every
//! second, and lineages whose hand-made key is due at once. The kill matrix and
//! the consumer tests run the daemon this way.

use chrono::Duration;

use super::world::World;

pub const FAST_POLICY: &str = r#"
[schedule]
cron = "* * * * * *"

[policy]
rotate_before_expiry = "20s"
max_age = "1h"
new_key_lifetime = "30s"
grace_period = "1s"
idle_before_deactivate = "1s"
max_overlap = "3s"
delete_after = "2s"
unused_after = "1h"
"#;

/// Seeds `count` lineages `ci-0`, `ci-1`… whose key expires in 5 s (so is due
/// under `FAST_POLICY`) and returns their names.
pub fn due_lineages(w: &World, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("ci-{i}")).collect();
    for name in &names {
        w.seed(name, Duration::days(1), Some(Duration::seconds(5)));
    }
    names
}

/// A count from the environment variable `var` (a number of kills, of
/// seconds…), or `default` when it is unset or not a number.
pub fn count_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
