//! Which event a change of the HA lease calls for: `lease.acquired` when this
//! instance becomes the holder, `lease.lost` when it stops being it (a failed
//! renewal, another writer, or the release at shutdown). Team, key and
//! rotation fields are null; `detail` names the instance and what happened.

use chrono::{DateTime, Utc};

use super::event::{Event, EventKind};
use crate::lease::{LeaseRole, LeaseStatus, Previous};

/// The event for the step from `before` to `after`, if it is one.
pub fn lease_event(before: &LeaseStatus, after: &LeaseStatus, at: DateTime<Utc>) -> Option<Event> {
    let was = before.role == LeaseRole::Holder;
    let is = after.role == LeaseRole::Holder;
    let took_again = is && was && after.term != before.term;
    let (kind, detail) = if is && (!was || took_again) {
        let previous = match &after.previous {
            Some(Previous::Other(who)) => format!("from {who}"),
            Some(Previous::Me) => "back from its own earlier term".into(),
            Some(Previous::Released) => "after it was released".into(),
            Some(Previous::Nobody) | None => "for the first time".into(),
        };
        (
            EventKind::LeaseAcquired,
            format!(
                "{} took the lease {previous} (fencing token {})",
                after.me,
                after.token.unwrap_or_default()
            ),
        )
    } else if was && !is {
        (
            EventKind::LeaseLost,
            format!(
                "{} no longer holds the lease: {}",
                after.me,
                after.lost_because.as_deref().unwrap_or("unknown reason")
            ),
        )
    } else {
        return None;
    };
    Some(Event {
        kind,
        at,
        team_id: None,
        key_name: None,
        key_id: None,
        previous_key_id: None,
        rotation_id: None,
        detail: Some(crate::redact::scrub(&detail)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(role: LeaseRole, term: u64) -> LeaseStatus {
        LeaseStatus {
            me: "node-a".into(),
            role,
            holder: None,
            expires_at: None,
            token: Some(12),
            term,
            previous: Some(Previous::Other("node-b".into())),
            transitions: 0,
            lost_because: Some("cannot renew it: Vault sealed".into()),
        }
    }

    #[test]
    fn taking_and_losing_the_lease_are_events_and_nothing_else_is() {
        let at = Utc::now();
        let standby = status(LeaseRole::Standby, 0);
        let holder = status(LeaseRole::Holder, 1);
        let took = lease_event(&standby, &holder, at).unwrap();
        assert_eq!(took.kind, EventKind::LeaseAcquired);
        assert_eq!(
            took.detail.as_deref(),
            Some("node-a took the lease from node-b (fencing token 12)")
        );
        assert_eq!((took.team_id, took.key_name), (None, None));
        let lost = lease_event(&holder, &status(LeaseRole::Standby, 1), at).unwrap();
        assert_eq!(lost.kind, EventKind::LeaseLost);
        assert!(lost.detail.unwrap().contains("Vault sealed"));
        assert!(lease_event(&holder, &holder, at).is_none(), "a renewal");
        assert!(lease_event(&standby, &standby, at).is_none());
        let again = lease_event(&holder, &status(LeaseRole::Holder, 2), at).unwrap();
        assert_eq!(
            again.kind,
            EventKind::LeaseAcquired,
            "lost and retaken between looks"
        );
    }
}
