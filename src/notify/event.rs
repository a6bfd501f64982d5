//! What the webhook is told: the event names and the JSON body, exactly as the
//! product contract writes them, and the `[notify] events` filter over the names.
//!
//! The body always has the same eight fields, `null` where an event has nothing
//! to say, so a receiver can read every event with one schema. It is built only
//! from ids, names, an event name, a time and a detail that was cleaned of every
//! secret the daemon holds: no body can carry a secret.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// What happened. The names are the wire names (`rotation.completed`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// A lineage's new key is verified and in Vault (`key_id` is the new key).
    #[serde(rename = "rotation.completed")]
    RotationCompleted,
    /// A rotation (new or resumed) failed; the old key stays current.
    #[serde(rename = "rotation.failed")]
    RotationFailed,
    /// The daemon deactivated a replaced key.
    #[serde(rename = "key.deactivated")]
    KeyDeactivated,
    /// The daemon deleted a key (a retired one, or an orphan of a failed rotation).
    #[serde(rename = "key.deleted")]
    KeyDeleted,
    /// A current key is within `rotate_before_expiry` and its rotation failed.
    #[serde(rename = "key.expiring")]
    KeyExpiring,
    /// An active key unused for `unused_after`.
    #[serde(rename = "key.stale")]
    KeyStale,
    /// With `[ha]`: this instance took the leader lease (`detail` names the
    /// instance, its fencing token and the previous holder).
    #[serde(rename = "lease.acquired")]
    LeaseAcquired,
    /// With `[ha]`: this instance stopped holding the lease (`detail` says why).
    #[serde(rename = "lease.lost")]
    LeaseLost,
}

impl EventKind {
    /// Every event, in the contract's order.
    pub const ALL: [EventKind; 8] = [
        EventKind::RotationCompleted,
        EventKind::RotationFailed,
        EventKind::KeyDeactivated,
        EventKind::KeyDeleted,
        EventKind::KeyExpiring,
        EventKind::KeyStale,
        EventKind::LeaseAcquired,
        EventKind::LeaseLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RotationCompleted => "rotation.completed",
            EventKind::RotationFailed => "rotation.failed",
            EventKind::KeyDeactivated => "key.deactivated",
            EventKind::KeyDeleted => "key.deleted",
            EventKind::KeyExpiring => "key.expiring",
            EventKind::KeyStale => "key.stale",
            EventKind::LeaseAcquired => "lease.acquired",
            EventKind::LeaseLost => "lease.lost",
        }
    }

    /// Whether every sweep would repeat it while nothing changes (so it is
    /// told at most once a day per key).
    pub(super) fn is_standing(self) -> bool {
        self == EventKind::KeyStale
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which events are sent (`[notify] events`; all when the field is left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter(BTreeSet<EventKind>);

impl EventFilter {
    pub fn all() -> Self {
        EventFilter(EventKind::ALL.into_iter().collect())
    }

    pub fn only(kinds: impl IntoIterator<Item = EventKind>) -> Self {
        EventFilter(kinds.into_iter().collect())
    }

    pub fn allows(&self, kind: EventKind) -> bool {
        self.0.contains(&kind)
    }
}

impl Default for EventFilter {
    fn default() -> Self {
        Self::all()
    }
}

/// One event. Only ids, names, a kind, a time and a cleaned detail: nothing
/// here can hold a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    /// None for an event about the instance (the lease events).
    pub team_id: Option<String>,
    /// The lineage's key name (None for the lease events).
    pub key_name: Option<String>,
    pub key_id: Option<String>,
    pub previous_key_id: Option<String>,
    pub rotation_id: Option<String>,
    pub detail: Option<String>,
}

/// The JSON body of a POST: these fields, in this order.
#[derive(Serialize)]
struct Payload<'a> {
    event: EventKind,
    at: String,
    team_id: Option<&'a str>,
    key_name: Option<&'a str>,
    key_id: Option<&'a str>,
    previous_key_id: Option<&'a str>,
    rotation_id: Option<&'a str>,
    detail: Option<&'a str>,
}

impl Event {
    fn payload(&self) -> Payload<'_> {
        Payload {
            event: self.kind,
            at: self.at.to_rfc3339_opts(SecondsFormat::Secs, true),
            team_id: self.team_id.as_deref(),
            key_name: self.key_name.as_deref(),
            key_id: self.key_id.as_deref(),
            previous_key_id: self.previous_key_id.as_deref(),
            rotation_id: self.rotation_id.as_deref(),
            detail: self.detail.as_deref(),
        }
    }

    /// The exact bytes POSTed (and signed) for this event.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.payload()).expect("a payload of strings always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn the_body_has_the_contract_fields_in_order_with_nulls() {
        let at = DateTime::parse_from_rfc3339("2025-03-04T05:06:07.890+02:00")
            .unwrap()
            .with_timezone(&Utc);
        let event = Event {
            kind: EventKind::KeyStale,
            at,
            team_id: Some("T".into()),
            key_name: Some("ci-\"x\"".into()),
            key_id: Some("K".into()),
            previous_key_id: None,
            rotation_id: None,
            detail: None,
        };
        assert_eq!(
            String::from_utf8(event.body()).unwrap(),
            r#"{"event":"key.stale","at":"2025-03-04T03:06:07Z","team_id":"T","key_name":"ci-\"x\"","key_id":"K","previous_key_id":null,"rotation_id":null,"detail":null}"#
        );
    }

    #[test]
    fn the_filter_defaults_to_all() {
        let all = EventFilter::default();
        assert!(EventKind::ALL.iter().all(|k| all.allows(*k)));
        let some = EventFilter::only([EventKind::RotationFailed]);
        assert!(some.allows(EventKind::RotationFailed));
        assert!(!some.allows(EventKind::KeyStale));
    }
}
