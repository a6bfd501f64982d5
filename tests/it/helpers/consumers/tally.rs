//! What consumers saw: calls made, refusals (each with the key, when it was
//! read and refused, its state in MASV and what Vault named then), and the
//! reads that found no key, counted apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use masv_key_rotator::simulator::Simulator;

use crate::helpers::world::TEAM;

/// One call MASV refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The test case it happened in, when a test runs several.
    pub case: Option<String>,
    pub lineage: String,
    pub key_id: String,
    pub status: u16,
    /// Where the key came from: the Vault version read, or the file.
    pub read_from: String,
    pub read_at: DateTime<Utc>,
    pub refused_at: DateTime<Utc>,
    /// The key's state in the simulator right after the refusal.
    pub masv: MasvView,
    /// What the lineage's Vault path named right after the refusal.
    pub vault_then: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(case) = &self.case {
            write!(f, "[{case}] ")?;
        }
        write!(
            f,
            "{}: key {} refused ({}) at {}, read at {} from {}; in MASV right after: {}; Vault right after named {}",
            self.lineage,
            self.key_id,
            self.status,
            stamp(self.refused_at),
            stamp(self.read_at),
            self.read_from,
            self.masv.state,
            self.vault_then
        )
    }
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The counts of one or more consumers.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls to MASV with a key that was read.
    pub calls: u64,
    pub refusals: Vec<Refusal>,
    /// Reads that found no key before this consumer had ever seen one.
    pub missing: u64,
    /// Reads that found no key after this consumer had seen one.
    pub gaps: u64,
    /// Reads that failed.
    pub unread: u64,
    /// Calls that got neither an answer nor a refusal (a transport error, a 5xx).
    pub unanswered: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.calls += other.calls;
        self.refusals.extend(other.refusals);
        self.missing += other.missing;
        self.gaps += other.gaps;
        self.unread += other.unread;
        self.unanswered += other.unanswered;
    }

    /// The same counts, each refusal marked as seen in `case`.
    pub fn in_case(mut self, case: &str) -> Tally {
        for r in &mut self.refusals {
            r.case = Some(case.to_string());
        }
        self
    }

    pub fn refused_key_ids(&self) -> BTreeSet<&str> {
        self.refusals.iter().map(|r| r.key_id.as_str()).collect()
    }

    /// How many refusals there were of keys with each MASV history.
    fn refusals_by_history(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for r in &self.refusals {
            *counts.entry(r.masv.history).or_default() += 1;
        }
        counts
    }

    /// Refusals of keys that had expired by then: Vault named a key the daemon
    /// did not replace in time because no daemon was running (the kill matrix
    /// keeps it down while it checks the invariants), not a key that did not
    /// work yet.
    pub fn expired(&self) -> usize {
        self.refusals
            .iter()
            .filter(|r| Self::was_expired(r))
            .count()
    }

    fn was_expired(r: &Refusal) -> bool {
        r.masv.expiry.is_some_and(|e| e <= r.refused_at)
    }

    /// Fails naming every refused key and the first refusals in full. A refusal
    /// of a key that had expired by then is counted apart ([`Tally::expired`]).
    pub fn assert_no_refusals(&self, what: &str) {
        const SHOWN: usize = 20;
        let mut in_order: Vec<&Refusal> = self
            .refusals
            .iter()
            .filter(|r| !Self::was_expired(r))
            .collect();
        in_order.sort_by_key(|r| r.refused_at);
        let shown: Vec<String> = in_order
            .iter()
            .take(SHOWN)
            .map(|r| format!("  {r}"))
            .collect();
        assert!(
            in_order.is_empty(),
            "{what}: MASV refused {} of {} consumer calls, with keys {:?} that Vault named\n{}{}",
            in_order.len(),
            self.calls,
            self.refused_key_ids(),
            shown.join("\n"),
            if in_order.len() > SHOWN {
                format!("\n  … and {} more", in_order.len() - SHOWN)
            } else {
                String::new()
            }
        );
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls, {} refused ({} distinct keys, {} of them expired by then{}); {} reads before a first key, {} reads finding none after one, {} failed reads, {} calls unanswered",
            self.calls,
            self.refusals.len(),
            self.refused_key_ids().len(),
            self.expired(),
            self.refusals_by_history()
                .iter()
                .map(|(history, n)| format!("; {n} with the key {history}"))
                .collect::<String>(),
            self.missing,
            self.gaps,
            self.unread,
            self.unanswered
        )
    }
}

/// A refused key as the simulator has it: whether it was ever activated or
/// deactivated tells a key refused before its activation (the handoff window)
/// from one retired under a consumer that read too late.
#[derive(Debug, Clone)]
pub struct MasvView {
    pub key_id: Option<String>,
    /// Its toggles so far: "never activated so far", "activated, then deactivated"…
    pub history: &'static str,
    /// Its state, toggles and expiry, for a message.
    pub state: String,
    /// When it expires (None: never, or unknown to MASV).
    pub expiry: Option<DateTime<Utc>>,
}

/// The key holding `api_key` in the simulator, and its state there.
pub fn masv_view(sim: &Simulator, api_key: &str) -> MasvView {
    let Some(key) = sim.keys(TEAM).into_iter().find(|k| k.secret == api_key) else {
        let history = "unknown to MASV (deleted, or never issued)";
        return MasvView {
            key_id: None,
            history,
            state: history.into(),
            expiry: None,
        };
    };
    let toggled = |action: &str| {
        let suffix = format!("{}/{action}", key.id);
        sim.mutations()
            .iter()
            .any(|m| m.path.ends_with(&suffix) && m.status / 100 == 2)
    };
    let history = match (toggled("active"), toggled("inactive")) {
        (false, false) => "never activated so far",
        (true, false) => "activated by the time it was looked at",
        (false, true) => "deactivated, never activated by a call",
        (true, true) => "activated, then deactivated",
    };
    let expiry = key
        .expiry
        .map(|e| format!(", expiry {}", stamp(e)))
        .unwrap_or_default();
    MasvView {
        key_id: Some(key.id.clone()),
        history,
        state: format!("{:?} ({history}{expiry})", key.state),
        expiry: key.expiry,
    }
}
