//! A stateful MASV simulator, faithful to the vendor's API pages, with fault
//! injection. Tests, `demo` and the benchmarks run against it; it can also be
//! served on a port so an operator can point a config at it.
//!
//! What it models: `POST /auth` issuing user tokens that expire (TTL on the
//! simulator's clock); the five API-key routes with the vendor's status codes and
//! shapes; the secret `key` only in the create response; `suspended` keys that
//! refuse to be toggled; roles (an Owner manages every key of the team, an Admin
//! or Integration Manager only the keys it created, a Member none); and
//! `X-API-KEY` on `GET /teams/{id}/packages`, accepted only for an active,
//! unexpired key of that team, bumping its `last_request_at`.
//!
//! Choices where the vendor pages are silent: toggling a suspended key answers
//! `409 Conflict`; an unknown key id (or one in a team the caller is not in)
//! `404`; a rejected user token `401`; errors carry `{"message": "..."}`.

mod faults;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;

pub use faults::{Fault, FaultKind};
pub use state::{Role, SimKey};

use crate::clock::SharedClock;
use crate::masv::KeyState;
use state::{random_token, User, World};

/// One request the simulator answered (or dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The status sent, or 0 when the connection was dropped without a response.
    pub status: u16,
    pub at: DateTime<Utc>,
}

impl RequestRecord {
    /// Whether this request changes API keys (create, update, toggle, delete).
    pub fn is_mutation(&self) -> bool {
        self.method != "GET" && self.path.contains("api_keys")
    }
}

/// A key to put into the simulator directly (as if made in the web app).
#[derive(Debug, Clone)]
pub struct SeedKey {
    pub name: String,
    pub description: String,
    pub state: KeyState,
    /// None: now.
    pub created_at: Option<DateTime<Utc>>,
    pub expiry: Option<DateTime<Utc>>,
    pub last_request_at: Option<DateTime<Utc>>,
    /// None: the team's first Owner.
    pub owner_user_id: Option<String>,
}

impl SeedKey {
    /// An active, never-used key without expiry.
    pub fn active(name: &str) -> Self {
        SeedKey {
            name: name.to_string(),
            description: String::new(),
            state: KeyState::Active,
            created_at: None,
            expiry: None,
            last_request_at: None,
            owner_user_id: None,
        }
    }
}

/// A seeded key's id and secret.
#[derive(Debug, Clone)]
pub struct SeededKey {
    pub id: String,
    pub secret: String,
}

pub(crate) struct Inner {
    pub clock: SharedClock,
    pub world: Mutex<World>,
    pub jwt_ttl: Mutex<Duration>,
    pub faults: Mutex<Vec<Fault>>,
    pub requests: Mutex<Vec<RequestRecord>>,
}

/// The simulator. Clones share one world.
#[derive(Clone)]
pub struct Simulator {
    pub(crate) inner: Arc<Inner>,
}

impl Simulator {
    pub fn new(clock: SharedClock) -> Self {
        Simulator {
            inner: Arc::new(Inner {
                clock,
                world: Mutex::new(World::default()),
                jwt_ttl: Mutex::new(Duration::hours(1)),
                faults: Mutex::new(Vec::new()),
                requests: Mutex::new(Vec::new()),
            }),
        }
    }

    /// One team with one Owner: the common setup.
    pub fn with_owner(clock: SharedClock, team_id: &str, email: &str, password: &str) -> Self {
        let sim = Simulator::new(clock);
        sim.add_team(team_id, "Team");
        sim.add_user(email, password, Role::Owner, &[team_id]);
        sim
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.inner.world.lock().expect("simulator world poisoned")
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// How long user tokens stay valid (default 1 hour).
    pub fn set_jwt_ttl(&self, ttl: Duration) {
        *self.inner.jwt_ttl.lock().expect("poisoned") = ttl;
    }

    pub(crate) fn jwt_ttl(&self) -> Duration {
        *self.inner.jwt_ttl.lock().expect("poisoned")
    }

    pub fn add_team(&self, team_id: &str, name: &str) {
        self.world()
            .teams
            .insert(team_id.to_string(), name.to_string());
    }

    /// Makes the user of `email` a member of `team_id` too.
    pub fn join_team(&self, email: &str, team_id: &str) {
        let mut world = self.world();
        if let Some(user) = world.users.iter_mut().find(|u| u.email == email) {
            user.teams.push(team_id.to_string());
        }
    }

    /// Adds a user; returns its id.
    pub fn add_user(&self, email: &str, password: &str, role: Role, team_ids: &[&str]) -> String {
        let id = ulid::Ulid::new().to_string();
        self.world().users.push(User {
            id: id.clone(),
            email: email.to_string(),
            password: password.to_string(),
            role,
            teams: team_ids.iter().map(|t| t.to_string()).collect(),
        });
        id
    }

    /// Puts a key straight into a team.
    pub fn seed_key(&self, team_id: &str, seed: SeedKey) -> SeededKey {
        let now = self.now();
        let mut world = self.world();
        let owner = seed.owner_user_id.clone().unwrap_or_else(|| {
            world
                .users
                .iter()
                .find(|u| u.role == Role::Owner && u.teams.iter().any(|t| t == team_id))
                .map(|u| u.id.clone())
                .unwrap_or_default()
        });
        let created = seed.created_at.unwrap_or(now);
        let key = SimKey {
            id: ulid::Ulid::new().to_string(),
            team_id: team_id.to_string(),
            owner_user_id: owner,
            name: seed.name,
            description: seed.description,
            state: seed.state,
            created_at: created,
            updated_at: created,
            expiry: seed.expiry,
            last_request_at: seed.last_request_at,
            secret: world.new_secret(),
        };
        let seeded = SeededKey {
            id: key.id.clone(),
            secret: key.secret.clone(),
        };
        world.insert_key(key);
        seeded
    }

    /// Every key of a team, secrets included, in creation order.
    pub fn keys(&self, team_id: &str) -> Vec<SimKey> {
        let world = self.world();
        world
            .by_team
            .get(team_id)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| world.keys.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn key(&self, id: &str) -> Option<SimKey> {
        self.world().keys.get(id).cloned()
    }

    /// Test backdoor: set a key's state as MASV itself would (e.g. suspend it).
    pub fn set_key_state(&self, id: &str, state: KeyState) {
        if let Some(k) = self.world().keys.get_mut(id) {
            k.state = state;
        }
    }

    /// Marks a key as just used (as if a client had used it).
    pub fn touch_key(&self, id: &str) {
        let now = self.now();
        if let Some(k) = self.world().keys.get_mut(id) {
            k.last_request_at = Some(now);
        }
    }

    /// Adds a fault; faults match in the order they were added.
    pub fn inject(&self, fault: Fault) {
        self.inner.faults.lock().expect("poisoned").push(fault);
    }

    pub fn clear_faults(&self) {
        self.inner.faults.lock().expect("poisoned").clear();
    }

    /// Every request, in order, faulted ones included.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.requests.lock().expect("poisoned").clone()
    }

    /// The requests that change API keys (create, update, toggle, delete).
    pub fn mutations(&self) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(RequestRecord::is_mutation)
            .collect()
    }

    /// Every API key secret and user token the simulator ever issued.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.world().issued.clone()
    }

    /// Keys that were deleted while active (invariant 2 watch).
    pub fn deleted_while_active(&self) -> Vec<String> {
        self.world().deleted_active.clone()
    }

    /// The HTTP API.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// Serves on `listener` until `shutdown` is cancelled.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }

    /// Serves on a free loopback port in the background until the handle drops.
    pub async fn spawn(&self) -> std::io::Result<RunningSimulator> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let token = CancellationToken::new();
        let sim = self.clone();
        let stop = token.clone();
        tokio::spawn(async move {
            let _ = sim.serve(listener, stop).await;
        });
        Ok(RunningSimulator {
            base_url: format!("http://{addr}/v1"),
            addr,
            shutdown: token,
        })
    }

    /// A throwaway password for a standalone simulator.
    pub fn random_password() -> String {
        random_token(24)
    }
}

/// A simulator serving in the background; stops when dropped.
#[derive(Debug)]
pub struct RunningSimulator {
    /// e.g. `http://127.0.0.1:41234/v1`
    pub base_url: String,
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
