//! `once` and `rotate` with `[ha]`: a one-shot mutates only as the lease
//! holder too (invariant 8). It runs the same keeper as `run` for the length
//! of its sweep: it waits while another instance holds a live lease (up to
//! one ttl and a half, the longest a dead holder's lease can take to be
//! taken over), hands the records over if another instance held it last,
//! sweeps, and releases the lease at once. If the lease stays with someone
//! else, nothing is done and the exit code is 4, as for a held database lock.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::ProdEngine;
use crate::config::HaConfig;
use crate::daemon::ready_term;
use crate::engine::ports::Fence;
use crate::exit::{CommandError, Exit};
use crate::lease::{LeaseRole, Timing};

/// The lease taken for one sweep; [`OneShotLease::release`] lets it go.
pub struct OneShotLease {
    stop: CancellationToken,
    keeping: JoinHandle<()>,
}

impl OneShotLease {
    /// Takes the lease for `engine` and returns it fenced by it, or says who holds it.
    pub async fn take(
        ha: &HaConfig,
        engine: ProdEngine,
    ) -> Result<(ProdEngine, OneShotLease), CommandError> {
        let timing = Timing { ttl: ha.lease_ttl };
        let keeper = crate::services::lease_keeper(ha, engine.secrets().clone());
        let fence = keeper.fence();
        let mut status = keeper.subscribe();
        let stop = CancellationToken::new();
        let keeping = tokio::spawn(keeper.run(stop.clone()));
        let lease = OneShotLease { stop, keeping };
        let patience = timing.ttl + timing.ttl / 2 + timing.every();
        let held = tokio::time::timeout(patience, status.wait_for(|s| s.role == LeaseRole::Holder))
            .await
            .is_ok_and(|r| r.is_ok());
        let status = status.borrow().clone();
        if !held {
            lease.release().await;
            let who = status.holder.map_or_else(
                || "another instance".to_string(),
                |h| format!("instance {h}"),
            );
            return Err(CommandError::new(
                Exit::Locked,
                format_args!(
                    "{who} holds the HA lease (waited {}): nothing done",
                    humantime::format_duration(patience)
                ),
            ));
        }
        if let Err(e) = ready_term(&engine, &status, &fence).await {
            lease.release().await;
            return Err(CommandError::failed(format_args!(
                "cannot hand the records over after taking the HA lease: {e}"
            )));
        }
        Ok((engine.with_fence(Arc::new(fence) as Arc<dyn Fence>), lease))
    }

    /// Lets the lease go (a standby may take it at once).
    pub async fn release(self) {
        self.stop.cancel();
        let _ = self.keeping.await;
    }
}
