//! The operator's view of every managed key, built from the local database only
//! (the last list of each team, the rotation records, the Vault view the daemon
//! keeps), so `status` and `report` work without reaching MASV or Vault.
//!
//! Every judgement shown (what is due and when, overdue, stale, over `max_age`,
//! suspended, within policy) is the planner's [`standing`], worked out from the
//! same snapshot a sweep plans with; this module only gathers and copies.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::engine::key::{Key, KeyState};
use crate::engine::model::LineageId;
use crate::engine::planner::{standing, KeyRole, LineageSnapshot, NextStep, Why};
use crate::store::Records;
use crate::store::StoreError;

/// One managed key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub team_id: String,
    pub lineage: String,
    pub key_id: String,
    pub state: KeyState,
    pub role: KeyRole,
    pub created_at: Option<DateTime<Utc>>,
    pub expiry: Option<DateTime<Utc>>,
    pub last_request_at: Option<DateTime<Utc>>,
    pub age_days: Option<i64>,
    pub next_action: NextStep,
    pub next_at: Option<DateTime<Utc>>,
    /// Why the next step comes then, in words.
    pub why: Option<&'static str>,
    pub stale: bool,
}

/// One lineage, with what an auditor asks about it.
#[derive(Debug, Clone, Serialize)]
pub struct LineageView {
    pub team_id: String,
    pub lineage: String,
    /// The key whose secret is in Vault.
    pub current_key_id: Option<String>,
    pub current_age_days: Option<i64>,
    pub last_rotation: Option<DateTime<Utc>>,
    /// When the current key falls due (None: never, or no current key).
    pub next_due: Option<DateTime<Utc>>,
    /// Why it falls due then, in the plan lines' words.
    pub due_because: Option<&'static str>,
    /// Due and not rotated (or no stored key at all).
    pub overdue: bool,
    /// The current key has not been used for `unused_after`.
    pub stale: bool,
    pub suspended_keys: Vec<String>,
    /// Keys older than `max_age`.
    pub over_max_age: Vec<String>,
    pub rotation_in_flight: bool,
    pub within_policy: bool,
    pub keys: Vec<KeyView>,
}

/// The whole view.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub generated_at: DateTime<Utc>,
    /// When each team was last listed (the view is as fresh as that).
    pub listed_at: Option<DateTime<Utc>>,
    pub lineages: Vec<LineageView>,
}

impl View {
    pub fn keys(&self) -> impl Iterator<Item = &KeyView> {
        self.lineages.iter().flat_map(|l| l.keys.iter())
    }

    /// Share of lineages within policy, in percent (100 when there are none).
    pub fn within_policy_percent(&self) -> f64 {
        if self.lineages.is_empty() {
            return 100.0;
        }
        let ok = self.lineages.iter().filter(|l| l.within_policy).count();
        100.0 * ok as f64 / self.lineages.len() as f64
    }
}

fn age_days(key: &Key, now: DateTime<Utc>) -> Option<i64> {
    key.created_at.map(|c| (now - c).num_days())
}

/// Builds the view from the database.
pub async fn build(
    config: &Config,
    records: &Records,
    now: DateTime<Utc>,
) -> Result<View, StoreError> {
    let mut lineages = Vec::new();
    let mut listed_at: Option<DateTime<Utc>> = None;
    for team in &config.teams {
        let policy = team.policy;
        let matcher = team.matcher();
        let (keys, seen) = records.snapshot(&team.id).await?;
        listed_at = match (listed_at, seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let managed: Vec<&Key> = keys.iter().filter(|k| matcher.is_match(&k.name)).collect();
        let recs = records.load_team(&team.id, &managed).await?;
        let last = records.last_rotations(&team.id).await?;
        let mut names: Vec<String> = managed.iter().map(|k| k.name.clone()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let lineage_keys: Vec<&Key> = keys.iter().filter(|k| k.name == name).collect();
            let standing = standing(&LineageSnapshot::from_records(
                &recs,
                LineageId::new(&team.id, &name),
                lineage_keys.clone(),
                recs.vault.get(&name).cloned().flatten(),
                policy,
                now,
            ));
            let current = standing
                .current_key_id
                .as_ref()
                .and_then(|id| lineage_keys.iter().find(|k| &k.id == id));
            let key_views: Vec<KeyView> = lineage_keys
                .iter()
                .zip(&standing.keys)
                .map(|(k, s)| KeyView {
                    team_id: team.id.clone(),
                    lineage: name.clone(),
                    key_id: k.id.clone(),
                    state: k.state,
                    role: s.role,
                    created_at: k.created_at,
                    expiry: k.expiry,
                    last_request_at: k.last_request_at,
                    age_days: age_days(k, now),
                    next_action: s.next,
                    next_at: s.next_at,
                    why: s.why.map(Why::words),
                    stale: s.stale,
                })
                .collect();
            lineages.push(LineageView {
                team_id: team.id.clone(),
                lineage: name.clone(),
                current_key_id: standing.current_key_id,
                current_age_days: current.and_then(|c| age_days(c, now)),
                last_rotation: last.get(&name).copied(),
                next_due: standing.next_due,
                due_because: key_views
                    .iter()
                    .find(|k| k.role == KeyRole::Current)
                    .and_then(|k| k.why),
                overdue: standing.overdue,
                stale: standing.stale,
                suspended_keys: standing.suspended,
                over_max_age: standing.over_max_age,
                rotation_in_flight: recs.open.contains_key(&name),
                within_policy: standing.within_policy,
                keys: key_views,
            });
        }
    }
    Ok(View {
        generated_at: now,
        listed_at,
        lineages,
    })
}

/// A view with one lineage per name, every text field derived from the name
/// (the tests of `status` and `report` feed it hostile names).
#[cfg(test)]
pub(crate) fn sample(names: &[&str]) -> View {
    let now = DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
        .expect("a valid time")
        .with_timezone(&Utc);
    let lineages = names
        .iter()
        .map(|name| {
            let key = KeyView {
                team_id: "01FB4S68W7RAW4M89801H1C4CR".into(),
                lineage: name.to_string(),
                key_id: format!("{name}-key"),
                state: KeyState::Active,
                role: KeyRole::Current,
                created_at: Some(now),
                expiry: None,
                last_request_at: None,
                age_days: Some(-1),
                next_action: NextStep::Rotate,
                next_at: Some(now),
                why: Some(Why::Due(crate::engine::model::DueReason::Expiring).words()),
                stale: false,
            };
            LineageView {
                team_id: key.team_id.clone(),
                lineage: name.to_string(),
                current_key_id: Some(key.key_id.clone()),
                current_age_days: Some(-1),
                last_rotation: Some(now),
                next_due: Some(now),
                due_because: key.why,
                overdue: false,
                stale: false,
                suspended_keys: vec![name.to_string(), format!("{name}-2")],
                over_max_age: vec![name.to_string()],
                rotation_in_flight: false,
                within_policy: true,
                keys: vec![key],
            }
        })
        .collect();
    View {
        generated_at: now,
        listed_at: Some(now),
        lineages,
    }
}
