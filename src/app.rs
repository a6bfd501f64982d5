//! The one way to assemble the rotator: [`App`] turns settings (usually the
//! config's, [`App::from_config`]) into the production engine over MASV, Vault
//! and the state database.
//!
//! `once`, `rotate`, `run` (and each SIGHUP reload), `demo` and the integration
//! tests' world all build through it, so the engine is put together in exactly
//! one place, and what a caller may bring is listed here: a clock (the demo and
//! the tests drive a manual one), a store or Vault handle it opened itself
//! instead of settings (the demo reads the audit log afterwards; tests hand in
//! read-only or proxied handles), the watchdog heartbeat (`run`), the request counters
//! for `/metrics` (`run`) and, with `[ha]`, the lease fence every mutating step
//! must pass. A dry run
//! before any database exists gets an engine without records
//! ([`DbAccess::ReadOnlyIfPresent`]). The daemon's shutdown token is not a
//! build setting: `run` re-arms it on the same engine for each round of sweeps
//! (`Engine::with_shutdown`).
//!
//! The adapters are made in a fixed order, database, then MASV, then Vault, so a
//! config with several problems always reports the same one first.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, Credentials};
use crate::engine::ports::{Fence, RecordStore};
use crate::engine::sweep::Heartbeat;
use crate::engine::{Engine, ManagedTeam};
use crate::exit::CommandError;
use crate::masv::{MasvClient, MasvSettings};
use crate::services::{self, DbAccess};
use crate::store::Records;
use crate::store::Store;
use crate::traffic::Traffic;
use crate::vault::{VaultSettings, VaultStore};

/// The production engine.
pub type ProdEngine = Engine<MasvClient, VaultStore>;

/// Where the engine's records come from.
pub enum RecordsSource {
    /// Open the database file at `path`, as `access` says.
    Open { path: PathBuf, access: DbAccess },
    /// A store the caller opened (and may go on using).
    Opened(Store),
}

/// Where the engine's Vault store comes from.
pub enum VaultSource {
    /// Connect with these settings (boxed: they are large beside a handle).
    Connect(Box<VaultSettings>),
    /// A store the caller connected.
    Connected(VaultStore),
}

/// What the engine is built from; [`App::build`] makes it.
pub struct App {
    masv: MasvSettings,
    vault: VaultSource,
    records: RecordsSource,
    teams: Vec<ManagedTeam>,
    clock: SharedClock,
    heartbeat: Option<Heartbeat>,
    fence: Option<Arc<dyn Fence>>,
    traffic: Traffic,
}

impl App {
    /// An engine for `teams` over these adapters, on the system clock. MASV's
    /// `max_concurrency` bounds the engine's concurrency too.
    pub fn new(
        masv: MasvSettings,
        vault: VaultSource,
        records: RecordsSource,
        teams: Vec<ManagedTeam>,
    ) -> Self {
        Self {
            masv,
            vault,
            records,
            teams,
            clock: Arc::new(SystemClock),
            heartbeat: None,
            fence: None,
            traffic: Traffic::default(),
        }
    }

    /// What the config asks for; `access` says how the database is opened.
    pub fn from_config(config: &Config, credentials: Credentials, access: DbAccess) -> Self {
        Self::new(
            MasvSettings::from_config(&config.masv, credentials.masv_password),
            VaultSource::Connect(Box::new(services::vault_settings(
                config,
                credentials.vault,
            ))),
            RecordsSource::Open {
                path: config.database.path.clone(),
                access,
            },
            crate::config::managed_teams(config),
        )
    }

    /// Use `store`, opened by the caller (who goes on using it), for the records.
    pub fn store(mut self, store: Store) -> Self {
        self.records = RecordsSource::Opened(store);
        self
    }

    /// Tell the time by `clock` instead of the system's.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Call `beat` between sweep steps (the systemd watchdog).
    pub fn heartbeat(mut self, beat: Heartbeat) -> Self {
        self.heartbeat = Some(beat);
        self
    }

    /// Mutate only through `fence` (the HA lease), if given.
    pub fn fence(mut self, fence: Option<Arc<dyn Fence>>) -> Self {
        self.fence = fence;
        self
    }

    /// Count the adapters' requests into `traffic` (`/metrics`).
    pub fn traffic(mut self, traffic: Traffic) -> Self {
        self.traffic = traffic;
        self
    }

    /// Opens the database, makes the MASV client and connects to Vault, in that
    /// order, and builds the engine over them.
    pub async fn build(self) -> Result<ProdEngine, CommandError> {
        let records = match self.records {
            RecordsSource::Open { path, access } => services::open_records(&path, access).await?,
            RecordsSource::Opened(store) => Some(Records::new(store)),
        };
        let concurrency = self.masv.max_concurrency;
        let masv = services::masv_client(self.masv, self.traffic.clone())?;
        let vault = match self.vault {
            VaultSource::Connect(settings) => {
                services::connect_vault(*settings, self.traffic).await?
            }
            VaultSource::Connected(store) => store,
        };
        let records = records.map(|r| Arc::new(r) as Arc<dyn RecordStore>);
        let mut engine = Engine::new(masv, vault, records, self.clock, self.teams, concurrency);
        if let Some(beat) = self.heartbeat {
            engine = engine.with_heartbeat(beat);
        }
        if let Some(fence) = self.fence {
            engine = engine.with_fence(fence);
        }
        Ok(engine)
    }
}
