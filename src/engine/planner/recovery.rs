//! What to do with a rotation left unfinished: resume it, roll it back, or
//! abandon it. A pure function of the rotation's recorded phase, the lineage's
//! listed keys, what Vault holds (read only when the phase leaves it in doubt)
//! and the time; the resume executor carries the steps out in order.

use chrono::{DateTime, Utc};

use super::super::key::{Key, KeyState};
use super::super::marker;
use super::super::model::{DueReason, RotationPhase, RotationRecord};

/// Why a stored incoming key can never be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadKey {
    Gone,
    Suspended,
    Expired,
}

impl DeadKey {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadKey::Gone => "is gone from MASV",
            DeadKey::Suspended => "was suspended",
            DeadKey::Expired => "expired",
        }
    }

    /// Why the lineage is due again once the rotation is given up.
    pub fn due_reason(self) -> DueReason {
        match self {
            DeadKey::Gone => DueReason::CurrentGone,
            DeadKey::Suspended => DueReason::CurrentSuspended,
            DeadKey::Expired => DueReason::Expiring,
        }
    }
}

/// What Vault was found to hold for the lineage when the executor looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultHolding {
    pub key_id: String,
    pub version: u64,
    pub rotated_at: DateTime<Utc>,
}

/// One step of a recovery, in the order the executor takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryStep {
    /// The create's answer was lost but the key exists (found by its marker):
    /// record it; its secret is unknown, so a rollback follows.
    RecordFound { key_id: String },
    /// No listed key carries the rotation's marker: nothing was created.
    NothingCreated,
    /// Vault does not hold the new key after a restart: record the failed store.
    SecretMissing { key_id: String },
    /// Delete the new key: its secret did not, or may not, reach Vault.
    RollBack { key_id: String },
    /// Vault holds the new key: record it stored (with the activation's intent).
    RecordStored {
        version: u64,
        stored_at: DateTime<Utc>,
    },
    /// The stored new key can never be verified: give the rotation up…
    Abandon { key_id: String, why: DeadKey },
    /// …and start the rotation that replaces it, in the same sweep.
    Replace { reason: DueReason },
    /// Activate the new key; `intent_recorded` when "activating" is already on record.
    Activate { intent_recorded: bool },
    /// Prove the new key works; old keys start retiring.
    Verify,
}

/// Whether deciding needs a fresh look at Vault first.
pub fn needs_vault(rotation: &RotationRecord) -> bool {
    rotation.phase == RotationPhase::Storing
}

/// Why an incoming key whose secret reached Vault can never be verified, if so.
/// Without this a rotation whose new key expired (or was suspended or deleted by
/// someone) before it could be verified would be resumed forever.
pub fn dead_incoming(keys: &[Key], key_id: &str, now: DateTime<Utc>) -> Option<DeadKey> {
    match keys.iter().find(|k| k.id == key_id) {
        None => Some(DeadKey::Gone),
        Some(k) if k.state == KeyState::Suspended => Some(DeadKey::Suspended),
        Some(k) if k.expiry.is_some_and(|e| e <= now) => Some(DeadKey::Expired),
        Some(_) => None,
    }
}

fn abandon(key_id: &str, why: DeadKey) -> Vec<RecoveryStep> {
    vec![
        RecoveryStep::Abandon {
            key_id: key_id.to_string(),
            why,
        },
        RecoveryStep::Replace {
            reason: why.due_reason(),
        },
    ]
}

/// The steps that finish or undo `rotation`. `vault` is what Vault holds now,
/// read only when [`needs_vault`] says so (None otherwise, or when empty).
pub fn plan_recovery(
    rotation: &RotationRecord,
    keys: &[Key],
    vault: Option<&VaultHolding>,
    now: DateTime<Utc>,
) -> Vec<RecoveryStep> {
    use RecoveryStep::*;
    let rid = rotation.rotation_id.as_str();
    let new_id = rotation.new_key_id.clone().unwrap_or_default();
    if rotation.phase.secret_stored() {
        if let Some(why) = dead_incoming(keys, &new_id, now) {
            return abandon(&new_id, why);
        }
    }
    match rotation.phase {
        RotationPhase::Creating => {
            match keys
                .iter()
                .find(|k| marker::rotation_id(&k.description) == Some(rid))
            {
                Some(k) => vec![
                    RecordFound {
                        key_id: k.id.clone(),
                    },
                    RollBack {
                        key_id: k.id.clone(),
                    },
                ],
                None => vec![NothingCreated],
            }
        }
        RotationPhase::Created | RotationPhase::RollingBack => vec![RollBack { key_id: new_id }],
        RotationPhase::Storing => match vault.filter(|v| v.key_id == new_id) {
            Some(held) => {
                let mut steps = vec![RecordStored {
                    version: held.version,
                    stored_at: held.rotated_at,
                }];
                match dead_incoming(keys, &new_id, now) {
                    Some(why) => steps.extend(abandon(&new_id, why)),
                    None => steps.extend([
                        Activate {
                            intent_recorded: true,
                        },
                        Verify,
                    ]),
                }
                steps
            }
            None => vec![
                SecretMissing {
                    key_id: new_id.clone(),
                },
                RollBack { key_id: new_id },
            ],
        },
        RotationPhase::Stored | RotationPhase::Activating => vec![
            Activate {
                intent_recorded: rotation.phase == RotationPhase::Activating,
            },
            Verify,
        ],
        RotationPhase::Active => {
            let deactivated = keys
                .iter()
                .any(|k| k.id == new_id && k.state == KeyState::Inactive);
            if deactivated {
                // Deactivated by someone since the daemon activated it: activate again.
                vec![
                    Activate {
                        intent_recorded: false,
                    },
                    Verify,
                ]
            } else {
                vec![Verify]
            }
        }
        RotationPhase::Verified | RotationPhase::RolledBack | RotationPhase::Abandoned => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::LineageId;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
    }

    fn rotation(phase: RotationPhase) -> RotationRecord {
        RotationRecord {
            rotation_id: "R1".into(),
            lineage: LineageId::new("T", "ci"),
            reason: DueReason::MaxAge,
            old_key_id: Some("OLD".into()),
            new_key_id: (phase != RotationPhase::Creating).then(|| "NEW".to_string()),
            phase,
            cas: 1,
            vault_version: None,
            started_at: now(),
            stored_at: None,
            last_error: None,
        }
    }

    fn key(id: &str, state: KeyState, description: &str) -> Key {
        Key {
            id: id.into(),
            name: "ci".into(),
            description: description.into(),
            state,
            created_at: Some(now()),
            expiry: None,
            last_request_at: None,
        }
    }

    fn holding(key_id: &str) -> VaultHolding {
        VaultHolding {
            key_id: key_id.into(),
            version: 2,
            rotated_at: now(),
        }
    }

    #[test]
    fn lost_create_rolls_back_the_marked_key_or_records_nothing_created() {
        let marked = key("NEW", KeyState::Inactive, &marker::description("R1"));
        let steps = plan_recovery(&rotation(RotationPhase::Creating), &[marked], None, now());
        assert_eq!(
            steps,
            vec![
                RecoveryStep::RecordFound {
                    key_id: "NEW".into()
                },
                RecoveryStep::RollBack {
                    key_id: "NEW".into()
                }
            ]
        );
        let steps = plan_recovery(&rotation(RotationPhase::Creating), &[], None, now());
        assert_eq!(steps, vec![RecoveryStep::NothingCreated]);
    }

    #[test]
    fn storing_looks_at_vault_and_finishes_or_rolls_back() {
        let rot = rotation(RotationPhase::Storing);
        assert!(needs_vault(&rot));
        let keys = [key("NEW", KeyState::Inactive, "")];
        let found = plan_recovery(&rot, &keys, Some(&holding("NEW")), now());
        assert_eq!(
            found[0],
            RecoveryStep::RecordStored {
                version: 2,
                stored_at: now()
            }
        );
        assert_eq!(
            &found[1..],
            &[
                RecoveryStep::Activate {
                    intent_recorded: true
                },
                RecoveryStep::Verify
            ]
        );
        for vault in [None, Some(holding("OLD"))] {
            let steps = plan_recovery(&rot, &keys, vault.as_ref(), now());
            assert_eq!(
                steps,
                vec![
                    RecoveryStep::SecretMissing {
                        key_id: "NEW".into()
                    },
                    RecoveryStep::RollBack {
                        key_id: "NEW".into()
                    }
                ]
            );
        }
    }

    #[test]
    fn a_stored_key_that_can_never_work_is_abandoned_and_replaced() {
        let mut expired = key("NEW", KeyState::Active, "");
        expired.expiry = Some(now());
        let cases = [
            (vec![], DeadKey::Gone, DueReason::CurrentGone),
            (
                vec![key("NEW", KeyState::Suspended, "")],
                DeadKey::Suspended,
                DueReason::CurrentSuspended,
            ),
            (vec![expired], DeadKey::Expired, DueReason::Expiring),
        ];
        for (keys, why, reason) in cases {
            for phase in [
                RotationPhase::Stored,
                RotationPhase::Activating,
                RotationPhase::Active,
            ] {
                let steps = plan_recovery(&rotation(phase), &keys, None, now());
                assert_eq!(
                    steps,
                    vec![
                        RecoveryStep::Abandon {
                            key_id: "NEW".into(),
                            why
                        },
                        RecoveryStep::Replace { reason }
                    ],
                    "{phase}"
                );
            }
            let steps = plan_recovery(
                &rotation(RotationPhase::Storing),
                &keys,
                Some(&holding("NEW")),
                now(),
            );
            assert!(matches!(steps[0], RecoveryStep::RecordStored { .. }));
            assert_eq!(
                steps[1],
                RecoveryStep::Abandon {
                    key_id: "NEW".into(),
                    why
                }
            );
        }
    }

    #[test]
    fn activation_intent_is_written_unless_on_record_and_reactivated_keys_activate_again() {
        let keys = [key("NEW", KeyState::Inactive, "")];
        let stored = plan_recovery(&rotation(RotationPhase::Stored), &keys, None, now());
        assert_eq!(
            stored[0],
            RecoveryStep::Activate {
                intent_recorded: false
            }
        );
        let activating = plan_recovery(&rotation(RotationPhase::Activating), &keys, None, now());
        assert_eq!(
            activating[0],
            RecoveryStep::Activate {
                intent_recorded: true
            }
        );
        let deactivated = plan_recovery(&rotation(RotationPhase::Active), &keys, None, now());
        assert_eq!(
            deactivated,
            vec![
                RecoveryStep::Activate {
                    intent_recorded: false
                },
                RecoveryStep::Verify
            ]
        );
        let active = [key("NEW", KeyState::Active, "")];
        let verify = plan_recovery(&rotation(RotationPhase::Active), &active, None, now());
        assert_eq!(verify, vec![RecoveryStep::Verify]);
        for done in [
            RotationPhase::Verified,
            RotationPhase::RolledBack,
            RotationPhase::Abandoned,
        ] {
            assert!(plan_recovery(&rotation(done), &active, None, now()).is_empty());
        }
    }
}
