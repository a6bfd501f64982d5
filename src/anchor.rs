//! The audit log's anchor in Vault (SPEC section 5, `_audit/<instance_id>`).
//!
//! The hash chain catches an edited row, but not a log cut short, nor one
//! rewritten whole with fresh hashes: whoever can write the database can do
//! either. So after each sweep that wrote rows, the chain's head (last row id,
//! its hash, the row count) is written to Vault with check-and-set, where the
//! database's owner cannot quietly move it back (Vault keeps every version, and
//! its audit device records who wrote each). `history --verify` then checks
//! that the log still contains the anchored head and reaches its count.
//!
//! The anchor may lag the log, never lead it: the head written is one already
//! committed, read from the database after the sweep, so a crash between a
//! commit and the anchor write leaves an anchor that the log still contains
//! (the next sweep brings it up to date). And it only moves forward over a log
//! that continues it: before writing, the rows since the last anchor are
//! verified to chain from the anchored hash, so a rewritten log is reported,
//! never laundered into a new anchor.

use tokio::sync::Mutex;

use crate::exit::Exit;
use crate::store::{ChainReport, Store, StoreError};
use crate::vault::{AuditAnchor, ObservedAnchor, VaultError, VaultStore};

/// How the log stands against its anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorVerdict {
    /// The log contains the anchored head; `lag` rows were written after it.
    Contains { lag: u64 },
    /// The log does not match its anchor, and why.
    Mismatch { reason: String },
}

/// Compares a log whose chain is intact (`rows` rows, `hash_at_anchor` being
/// its stored hash of row `anchor.id`, if it has that row) with its anchor.
pub fn compare(rows: u64, hash_at_anchor: Option<&str>, anchor: &AuditAnchor) -> AnchorVerdict {
    if rows < anchor.count {
        return AnchorVerdict::Mismatch {
            reason: format!(
                "the log has {rows} rows but its anchor records {} (up to row {}): {} rows are gone (a dropped tail, an older copy of the database, or rows cut out and the chain rebuilt)",
                anchor.count,
                anchor.id,
                anchor.count - rows
            ),
        };
    }
    match hash_at_anchor {
        None => AnchorVerdict::Mismatch {
            reason: format!("the anchored row {} is missing from the log", anchor.id),
        },
        Some(hash) if hash != anchor.hash => AnchorVerdict::Mismatch {
            reason: format!(
                "row {}'s hash is {hash} but its anchor records {}: the chain was rewritten (rows edited, removed or inserted and the hashes recomputed)",
                anchor.id, anchor.hash
            ),
        },
        Some(_) => AnchorVerdict::Contains {
            lag: rows - anchor.count,
        },
    }
}

/// Why the anchor could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("audit anchor at {location}: {source}")]
    Vault {
        location: String,
        #[source]
        source: VaultError,
    },
    #[error("audit anchor: reading the audit log: {0}")]
    Store(#[from] StoreError),
    /// The log does not continue its anchor: not anchored over, reported.
    #[error("the audit log does not match its anchor at {location}: {reason}; the anchor is left where it was (run `history --verify`)")]
    Mismatch { location: String, reason: String },
}

impl AnchorError {
    /// Vault unreachable: [`Exit::Unreachable`]; anything else [`Exit::ActionFailed`].
    pub fn exit(&self) -> Exit {
        match self {
            AnchorError::Vault { source, .. } if source.is_unreachable() => Exit::Unreachable,
            _ => Exit::ActionFailed,
        }
    }
}

/// What [`Anchorer::advance`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advanced {
    /// The log is empty: nothing to anchor.
    Empty,
    /// The anchor already names the log's head.
    Unchanged,
    /// The anchor now names row `id` (KV version `version`).
    Moved { id: i64, version: u64 },
}

/// Keeps `_audit/<instance_id>` up to date with one database's audit log.
pub struct Anchorer {
    store: Store,
    vault: VaultStore,
    instance_id: String,
    /// The anchor as this process last read or wrote it (None: read it first).
    last: Mutex<Option<ObservedAnchor>>,
}

impl Anchorer {
    pub fn new(store: Store, vault: VaultStore, instance_id: String) -> Self {
        Self {
            store,
            vault,
            instance_id,
            last: Mutex::new(None),
        }
    }

    fn vault_err(&self, source: VaultError) -> AnchorError {
        AnchorError::Vault {
            location: self.vault.anchor_location(&self.instance_id),
            source,
        }
    }

    /// Writes the log's committed head to the anchor if it is ahead of it,
    /// after checking that the rows since the anchor chain from it. One retry
    /// after a check-and-set conflict (someone wrote the anchor meanwhile).
    #[tracing::instrument(skip_all, fields(instance_id = %self.instance_id))]
    pub async fn advance(&self) -> Result<Advanced, AnchorError> {
        let mut last = self.last.lock().await;
        let Some((id, hash, count)) = self.store.chain_head().await? else {
            return Ok(Advanced::Empty);
        };
        let head = AuditAnchor { id, hash, count };
        let mut retried = false;
        loop {
            let observed = match last.take() {
                Some(o) => Some(o),
                None => self
                    .vault
                    .read_anchor(&self.instance_id)
                    .await
                    .map_err(|e| self.vault_err(e))?,
            };
            if let Some(o) = &observed {
                if o.anchor == head {
                    *last = observed;
                    return Ok(Advanced::Unchanged);
                }
            }
            self.check_continues(observed.as_ref().map(|o| &o.anchor), head.count)
                .await?;
            let cas = observed.as_ref().map_or(0, |o| o.version);
            match self.vault.write_anchor(&self.instance_id, &head, cas).await {
                Ok(version) => {
                    *last = Some(ObservedAnchor {
                        version,
                        anchor: head.clone(),
                    });
                    tracing::debug!(id = head.id, version, "audit anchor moved");
                    return Ok(Advanced::Moved {
                        id: head.id,
                        version,
                    });
                }
                Err(VaultError::CasConflict { .. }) if !retried => retried = true,
                Err(e) => return Err(self.vault_err(e)),
            }
        }
    }

    /// The log (whose head has `rows` rows) continues `anchor`: it contains the
    /// anchored head and the rows after it chain from it (all rows, for None).
    async fn check_continues(
        &self,
        anchor: Option<&AuditAnchor>,
        rows: u64,
    ) -> Result<(), AnchorError> {
        let mismatch = |reason: String| AnchorError::Mismatch {
            location: self.vault.anchor_location(&self.instance_id),
            reason,
        };
        let start = match anchor {
            Some(a) => {
                let stored = self.store.audit_hash(a.id).await?;
                if let AnchorVerdict::Mismatch { reason } = compare(rows, stored.as_deref(), a) {
                    return Err(mismatch(reason));
                }
                Some((a.id, a.hash.as_str()))
            }
            None => None,
        };
        match self.store.verify_chain_after(start).await? {
            ChainReport::Intact { .. } => Ok(()),
            ChainReport::Broken {
                first_bad_id,
                reason,
            } => Err(mismatch(format!(
                "the chain breaks at row {first_bad_id}: {reason}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(id: i64, hash: &str) -> AuditAnchor {
        AuditAnchor {
            id,
            hash: hash.into(),
            count: id as u64,
        }
    }

    #[test]
    fn the_log_may_run_ahead_of_its_anchor_but_not_fall_behind_or_differ() {
        let a = anchor(10, "h10");
        assert_eq!(
            compare(10, Some("h10"), &a),
            AnchorVerdict::Contains { lag: 0 }
        );
        assert_eq!(
            compare(12, Some("h10"), &a),
            AnchorVerdict::Contains { lag: 2 }
        );
        let AnchorVerdict::Mismatch { reason } = compare(7, Some("h7"), &a) else {
            panic!("a shorter log")
        };
        assert!(
            reason.contains("has 7 rows but its anchor records 10 (up to row 10): 3 rows are gone"),
            "{reason}"
        );
        let AnchorVerdict::Mismatch { reason } = compare(12, Some("other"), &a) else {
            panic!("another hash")
        };
        assert!(
            reason.contains(
                "row 10's hash is other but its anchor records h10: the chain was rewritten"
            ),
            "{reason}"
        );
        let AnchorVerdict::Mismatch { reason } = compare(12, None, &a) else {
            panic!("no such row")
        };
        assert!(reason.contains("anchored row 10 is missing"), "{reason}");
    }
}
