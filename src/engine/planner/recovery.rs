//! What to do with a rotation left unfinished: resume it, roll it back, or
//! abandon it. A pure function of the rotation's recorded phase, the lineage's
//! listed keys, what Vault holds (read only when the phase leaves it in doubt)
//! and the time; the resume executor carries the steps out in order.

use chrono::{DateTime, Utc};

use super::super::key::{Key, KeyState};
use super::super::marker;
use super::super::model::{DueReason, RotationPhase, RotationRecord};

/// Why a stored incoming key can never be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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

/// What Vault was found to hold when the executor looked (at the pending path
/// for a rotation left staging, at the lineage's path for one left promoting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultHolding {
    pub key_id: String,
    pub rotation_id: String,
    pub version: u64,
    pub rotated_at: DateTime<Utc>,
}

/// Where the executor must look before the recovery can be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// The pending path: did the staging write land?
    Staged,
    /// The lineage's path: did the promotion land?
    Lineage,
}

/// One step of a recovery, in the order the executor takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryStep {
    /// The create's answer was lost but the key exists (found by its marker):
    /// record it; its secret is unknown, so a rollback follows.
    RecordFound { key_id: String },
    /// No listed key carries the rotation's marker: nothing was created.
    NothingCreated,
    /// The pending path does not hold the new key after a restart: record the failed stage.
    SecretMissing { key_id: String },
    /// Delete the new key (and its staged copy): its secret did not, or may not, reach Vault.
    RollBack { key_id: String },
    /// The pending path holds the new key: record it staged (with the activation's intent).
    RecordStaged { version: u64 },
    /// The stored new key can never be verified: give the rotation up…
    Abandon { key_id: String, why: DeadKey },
    /// …and start the rotation that replaces it, in the same sweep.
    Replace { reason: DueReason },
    /// Activate the new key; `intent_recorded` when "activating" is already on record.
    Activate { intent_recorded: bool },
    /// Prove the new key works.
    Verify,
    /// Promote the staged secret to the lineage's path, check-and-set against `cas`.
    Promote { cas: u64 },
    /// The lineage's path already holds this rotation's key: record it promoted.
    RecordPromoted {
        version: u64,
        promoted_at: DateTime<Utc>,
    },
}

/// Where to look before deciding, if anywhere.
pub fn needs_vault(rotation: &RotationRecord) -> Option<Look> {
    match rotation.phase {
        RotationPhase::Storing => Some(Look::Staged),
        RotationPhase::Promoting => Some(Look::Lineage),
        _ => None,
    }
}

/// Why an incoming key whose secret reached Vault can never be verified, if so.
/// Without this a rotation whose new key expired (or was suspended or deleted by
/// someone) before it could be verified would be resumed forever.
pub fn dead_incoming(keys: &[Key], key_id: &str, now: DateTime<Utc>) -> Option<DeadKey> {
    dead_key(keys.iter().find(|k| k.id == key_id), now)
}

/// Why `key` (None: not listed) can never be verified, if so.
pub fn dead_key(key: Option<&Key>, now: DateTime<Utc>) -> Option<DeadKey> {
    match key {
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

/// Activate (unless `active`), verify, promote against `cas`.
fn finish(intent_recorded: Option<bool>, cas: u64) -> Vec<RecoveryStep> {
    let mut steps: Vec<RecoveryStep> = intent_recorded
        .map(|intent_recorded| RecoveryStep::Activate { intent_recorded })
        .into_iter()
        .collect();
    steps.extend([RecoveryStep::Verify, RecoveryStep::Promote { cas }]);
    steps
}

/// The steps that finish or undo `rotation`. `vault` is what the place
/// [`needs_vault`] names holds now (None when nothing, or when not asked).
pub fn plan_recovery(
    rotation: &RotationRecord,
    keys: &[Key],
    vault: Option<&VaultHolding>,
    now: DateTime<Utc>,
) -> Vec<RecoveryStep> {
    use RecoveryStep::*;
    let rid = rotation.rotation_id.as_str();
    let new_id = rotation.new_key_id.clone().unwrap_or_default();
    let ours = vault.filter(|v| v.rotation_id == rid && v.key_id == new_id);
    if let (RotationPhase::Promoting, Some(held)) = (rotation.phase, ours) {
        // The promotion landed (perhaps late, after its answer was lost).
        return vec![RecordPromoted {
            version: held.version,
            promoted_at: held.rotated_at,
        }];
    }
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
        RotationPhase::Storing => match ours {
            Some(held) => {
                let mut steps = vec![RecordStaged {
                    version: held.version,
                }];
                match dead_incoming(keys, &new_id, now) {
                    Some(why) => steps.extend(abandon(&new_id, why)),
                    None => steps.extend(finish(Some(true), rotation.cas)),
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
        RotationPhase::Stored | RotationPhase::Activating => finish(
            Some(rotation.phase == RotationPhase::Activating),
            rotation.cas,
        ),
        RotationPhase::Active => {
            let deactivated = keys
                .iter()
                .any(|k| k.id == new_id && k.state == KeyState::Inactive);
            // Deactivated by someone since the daemon activated it: activate again.
            finish(deactivated.then_some(false), rotation.cas)
        }
        // Not ours at the lineage's path: someone wrote it since the rotation
        // started. The daemon owns the path; the verified key is promoted over
        // what is there now (still check-and-set; the other version stays in
        // the KV history, and the audit row says so).
        RotationPhase::Promoting => vec![Promote {
            cas: vault.map_or(0, |v| v.version),
        }],
        RotationPhase::Verified
        | RotationPhase::RolledBack
        | RotationPhase::Abandoned
        | RotationPhase::HandedOver => vec![],
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
            rotation_id: if key_id == "NEW" { "R1" } else { "R0" }.into(),
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
        assert_eq!(needs_vault(&rot), Some(Look::Staged));
        let keys = [key("NEW", KeyState::Inactive, "")];
        let found = plan_recovery(&rot, &keys, Some(&holding("NEW")), now());
        assert_eq!(found[0], RecoveryStep::RecordStaged { version: 2 });
        assert_eq!(
            &found[1..],
            &[
                RecoveryStep::Activate {
                    intent_recorded: true
                },
                RecoveryStep::Verify,
                RecoveryStep::Promote { cas: 1 }
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
                RotationPhase::Promoting,
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
            assert!(matches!(steps[0], RecoveryStep::RecordStaged { .. }));
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
                RecoveryStep::Verify,
                RecoveryStep::Promote { cas: 1 }
            ]
        );
        let active = [key("NEW", KeyState::Active, "")];
        let verify = plan_recovery(&rotation(RotationPhase::Active), &active, None, now());
        assert_eq!(
            verify,
            vec![RecoveryStep::Verify, RecoveryStep::Promote { cas: 1 }]
        );
        for done in [
            RotationPhase::Verified,
            RotationPhase::RolledBack,
            RotationPhase::Abandoned,
        ] {
            assert!(plan_recovery(&rotation(done), &active, None, now()).is_empty());
        }
    }

    #[test]
    fn promoting_looks_at_the_lineage_path_by_rotation_id() {
        let rot = rotation(RotationPhase::Promoting);
        assert_eq!(needs_vault(&rot), Some(Look::Lineage));
        let active = [key("NEW", KeyState::Active, "")];
        // The promotion landed (a late write): recorded, never written twice.
        let landed = plan_recovery(&rot, &active, Some(&holding("NEW")), now());
        assert_eq!(
            landed,
            vec![RecoveryStep::RecordPromoted {
                version: 2,
                promoted_at: now()
            }]
        );
        // It did not: promoted against what the path holds now, or to a new path.
        let old = plan_recovery(&rot, &active, Some(&holding("OLD")), now());
        assert_eq!(old, vec![RecoveryStep::Promote { cas: 2 }]);
        let empty = plan_recovery(&rot, &active, None, now());
        assert_eq!(empty, vec![RecoveryStep::Promote { cas: 0 }]);
        // A key with the new key's id but another rotation's id is not this promotion.
        let mut other = holding("NEW");
        other.rotation_id = "R9".into();
        let steps = plan_recovery(&rot, &active, Some(&other), now());
        assert_eq!(steps, vec![RecoveryStep::Promote { cas: 2 }]);
        // A key that died before its promotion is never promoted.
        let steps = plan_recovery(&rot, &[], Some(&holding("OLD")), now());
        assert!(
            matches!(steps[0], RecoveryStep::Abandon { .. }),
            "{steps:?}"
        );
    }
}
