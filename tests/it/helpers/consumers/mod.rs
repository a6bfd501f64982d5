//! Consumers: apps that take the key a lineage's Vault path names (or a file an
//! agent renders from it) and use it at once, which is how many apps get their
//! secrets. Each loops: wait a random pause, read, call MASV's `X-API-KEY`
//! check with what it read, count. A refusal (401/403) is a key Vault handed
//! out that MASV does not accept; the daemon must never allow one. A read
//! before the lineage's first rotation finds nothing: counted apart, not a
//! refusal.
//!
//! The check is sent as `HEAD` on `…/teams/{id}/packages`: the simulator answers
//! it with the same handler as the daemon's `GET` (same refusals, same
//! `last_request_at`), but the fault matrices aim their faults at the daemon's
//! `GET`, and a consumer must not take a fault meant for the daemon.

mod source;
mod tally;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use masv_key_rotator::simulator::Simulator;
use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use source::{Read, Seen, Source, VaultReader};
pub use tally::{Refusal, Tally};

use crate::helpers::world::{World, TEAM};

/// An app's pace: a read every 50 to 500 ms.
pub const APP_PACE: RangeInclusive<Duration> =
    Duration::from_millis(50)..=Duration::from_millis(500);

/// A pace for sweeps run in-process, which last milliseconds unless a fault
/// slows them: a read every 10 to 50 ms.
pub const QUICK_PACE: RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_millis(50);

/// What consumers share: the Vault they read, the simulator they call, their pace.
#[derive(Clone)]
pub struct Rig {
    vault: VaultReader,
    sim: Simulator,
    http: reqwest::Client,
    check_url: String,
    pace: RangeInclusive<Duration>,
}

impl Rig {
    /// Consumers of `world`, reading Vault with a read-only token, each waiting a
    /// random pause within `pace` before every read.
    pub async fn new(world: &World, pace: RangeInclusive<Duration>) -> Rig {
        let token = world.vault.read_only_token().await;
        Rig {
            vault: VaultReader::new(world, token),
            sim: world.sim.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            check_url: format!("{}/teams/{TEAM}/packages", world.running.base_url),
            pace,
        }
    }

    /// The Vault reader the consumers use (for a test's own reads).
    pub fn vault(&self) -> &VaultReader {
        &self.vault
    }

    /// `per_lineage` consumers on each lineage's Vault path.
    pub fn reading_vault(&self, lineages: &[String], per_lineage: usize) -> Consumers {
        let each = lineages
            .iter()
            .flat_map(|l| std::iter::repeat_n((l.clone(), Source::Vault), per_lineage))
            .collect();
        self.start(each)
    }

    /// One consumer per `(lineage, file)`: the file holds the lineage's key.
    pub fn reading_files(&self, files: &[(String, PathBuf)]) -> Consumers {
        let each = files
            .iter()
            .map(|(l, f)| (l.clone(), Source::File(f.clone())))
            .collect();
        self.start(each)
    }

    fn start(&self, each: Vec<(String, Source)>) -> Consumers {
        let stop = CancellationToken::new();
        let tasks = each
            .into_iter()
            .map(|(lineage, source)| {
                let rig = self.clone();
                let stop = stop.clone();
                tokio::spawn(async move { rig.consume(lineage, source, stop).await })
            })
            .collect();
        Consumers { stop, tasks }
    }

    async fn consume(self, lineage: String, source: Source, stop: CancellationToken) -> Tally {
        let mut tally = Tally::default();
        let mut seen_one = false;
        loop {
            let pause = rand::thread_rng().gen_range(self.pace.clone());
            tokio::select! {
                _ = stop.cancelled() => return tally,
                _ = tokio::time::sleep(pause) => {}
            }
            let read_at = Utc::now();
            let seen = match source.read(&self.vault, &lineage).await {
                Read::Key(seen) => seen,
                Read::Missing if seen_one => {
                    tally.gaps += 1;
                    continue;
                }
                Read::Missing => {
                    tally.missing += 1;
                    continue;
                }
                Read::Failed(_) => {
                    tally.unread += 1;
                    continue;
                }
            };
            seen_one = true;
            tally.calls += 1;
            match self.check(&seen.api_key).await {
                Some(status) if status == 401 || status == 403 => {
                    let refusal = self.refusal(&lineage, &source, seen, read_at, status).await;
                    tally.refusals.push(refusal);
                }
                Some(status) if (200..300).contains(&status) => {}
                _ => tally.unanswered += 1,
            }
        }
    }

    /// The status of the `X-API-KEY` check with `api_key`, if one came back.
    async fn check(&self, api_key: &str) -> Option<u16> {
        self.http
            .head(&self.check_url)
            .header("X-API-KEY", api_key)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// A refusal with what MASV and Vault say right after it.
    async fn refusal(
        &self,
        lineage: &str,
        source: &Source,
        seen: Seen,
        read_at: chrono::DateTime<Utc>,
        status: u16,
    ) -> Refusal {
        let refused_at = Utc::now();
        let masv = tally::masv_view(&self.sim, &seen.api_key);
        let key_id = seen
            .key_id
            .clone()
            .or_else(|| masv.key_id.clone())
            .unwrap_or_else(|| "(unknown)".into());
        let read_from = match source {
            Source::Vault => seen.describe(),
            Source::File(path) => format!("file {}", path.display()),
        };
        let vault_then = match self.vault.read(lineage).await {
            Read::Key(now) => now.describe(),
            Read::Missing => "nothing".into(),
            Read::Failed(e) => format!("(unread: {e})"),
        };
        Refusal {
            case: None,
            lineage: lineage.to_string(),
            key_id,
            status,
            read_from,
            read_at,
            refused_at,
            masv,
            vault_then,
        }
    }
}

/// Running consumers; `stop` ends them and adds up what they saw.
pub struct Consumers {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<Tally>>,
}

impl Consumers {
    /// Stops every consumer (each finishes the call it is making) and returns their counts.
    pub async fn stop(self) -> Tally {
        self.stop.cancel();
        let mut total = Tally::default();
        for task in self.tasks {
            total.add(task.await.expect("a consumer task panicked"));
        }
        total
    }
}
