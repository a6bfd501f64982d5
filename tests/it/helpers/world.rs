//! An isolated world for one test: the MASV simulator, a real Vault (OpenBao),
//! a fresh SQLite file, and one manual clock shared by the simulator and the
//! engine. `engine()` builds the production engine over it with the app builder
//! the commands use ([`App`]); calling it again is a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use masv_key_rotator::app::{App, ProdEngine, RecordsSource, VaultSource};
use masv_key_rotator::clock::{Clock, ManualClock, SharedClock};
use masv_key_rotator::config::Policy;
use masv_key_rotator::engine::{ManagedTeam, SweepMode, SweepReport};
use masv_key_rotator::masv::{KeyState, MasvSettings, RetryPolicy};
use masv_key_rotator::simulator::{
    Fault, FaultKind, RunningSimulator, SeedKey, SeededKey, Simulator,
};
use masv_key_rotator::store::{AuditFilter, AuditRow, ChainReport, Store};
use masv_key_rotator::vault::{StoredSecret, VaultAuth, VaultError, VaultStore};
use secrecy::SecretString;

use super::vault::TestVault;
use super::write_private;

pub const TEAM: &str = "01FB4S68W7RAW4M89801H1C4CR";
pub const EMAIL: &str = "rotator@studio.example";
pub const PASSWORD: &str = "correct-horse-battery-staple";

pub type RealEngine = ProdEngine;

pub struct World {
    pub clock: ManualClock,
    pub sim: Simulator,
    pub running: RunningSimulator,
    pub vault: TestVault,
    pub store: Store,
    pub db_path: PathBuf,
    pub patterns: Vec<String>,
    pub policy: Policy,
    /// A root Vault client for the checks, made once.
    pub check_vault: tokio::sync::OnceCell<VaultStore>,
    /// The MASV client's per-request timeout (default 5 s).
    pub masv_timeout: std::sync::Mutex<StdDuration>,
    /// Key ids already read from immutable KV versions: (lineage, version) -> key id.
    pub stored_cache: std::sync::Mutex<std::collections::HashMap<(String, u64), String>>,
    /// Holds the database's directory for the test's lifetime.
    pub _dir: tempfile::TempDir,
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: StdDuration::from_millis(10),
        max_delay: StdDuration::from_millis(50),
        max_retry_after: StdDuration::from_secs(5),
        deadline: StdDuration::from_secs(20),
    }
}

impl World {
    pub async fn new() -> World {
        Self::with_vault(TestVault::start().await).await
    }

    pub async fn with_vault(vault: TestVault) -> World {
        Self::build(vault, false, None).await
    }

    /// A world whose state database lives at `db_path` (e.g. on a small file system).
    pub async fn with_db_at(db_path: PathBuf) -> World {
        Self::build(TestVault::start().await, false, Some(db_path)).await
    }

    /// A world whose simulator runs on the wall clock, for driving the real
    /// binary (which uses the wall clock too) through time-based policy.
    pub async fn realtime() -> World {
        Self::build(TestVault::start().await, true, None).await
    }

    async fn build(vault: TestVault, realtime: bool, db_path: Option<PathBuf>) -> World {
        let clock = ManualClock::new(Utc::now());
        let shared: SharedClock = if realtime {
            Arc::new(masv_key_rotator::clock::SystemClock)
        } else {
            Arc::new(clock.clone())
        };
        let sim = Simulator::with_owner(shared, TEAM, EMAIL, PASSWORD);
        let running = sim.spawn().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db_path = db_path.unwrap_or_else(|| dir.path().join("state.db"));
        let store = Store::open(&db_path).await.unwrap();
        World {
            clock,
            sim,
            running,
            vault,
            store,
            db_path,
            patterns: vec!["ci-*".into(), "render-*".into()],
            policy: Policy::default(),
            stored_cache: Default::default(),
            masv_timeout: std::sync::Mutex::new(StdDuration::from_secs(5)),
            check_vault: tokio::sync::OnceCell::new(),
            _dir: dir,
        }
    }

    /// Writes a config for this world (secrets in files beside it) and returns its path.
    /// `extra` is appended verbatim (e.g. a `[schedule]` table).
    pub fn write_config(&self, extra: &str) -> PathBuf {
        self.write_config_with(
            PASSWORD,
            &self.vault.root_token.clone(),
            &self.vault.address.clone(),
            extra,
        )
    }

    pub fn write_config_with(
        &self,
        password: &str,
        vault_token: &str,
        vault_address: &str,
        extra: &str,
    ) -> PathBuf {
        let dir = self._dir.path();
        let pw = dir.join("masv-password");
        let token = dir.join("vault-token");
        write_private(&pw, &format!("{password}\n"));
        write_private(&token, &format!("{vault_token}\n"));
        let patterns: Vec<String> = self.patterns.iter().map(|p| format!("{p:?}")).collect();
        let text = format!(
            r#"[masv]
base_url = "{base}"
email = "{EMAIL}"
password_file = "{pw}"
timeout = "5s"

[vault]
address = "{vault_address}"
{insecure}token_file = "{token}"
mount = "{mount}"
path_prefix = "{prefix}"

[database]
path = "{db}"

[[team]]
id = "{TEAM}"
keys = [{patterns}]

[log]
format = "text"
level = "info"
{extra}
"#,
            base = self.running.base_url,
            pw = pw.display(),
            token = token.display(),
            mount = self.vault.mount,
            prefix = self.vault.prefix,
            db = self.db_path.display(),
            patterns = patterns.join(", "),
            // Only a VAULT_ADDR given from outside can be plain http off loopback.
            insecure = if masv_key_rotator::plain_http::is_insecure(vault_address) {
                "allow_insecure_http = true\n"
            } else {
                ""
            },
        );
        let path = dir.join("config.toml");
        write_private(&path, &text);
        path
    }

    pub fn now(&self) -> chrono::DateTime<Utc> {
        self.clock.now()
    }

    /// The MASV client's settings: this world's simulator, fast retries.
    pub fn masv_settings(&self) -> MasvSettings {
        MasvSettings {
            base_url: self.running.base_url.clone(),
            email: EMAIL.into(),
            password: SecretString::from(PASSWORD.to_string()),
            timeout: *self.masv_timeout.lock().unwrap(),
            max_concurrency: 4,
            retry: fast_retry(),
        }
    }

    pub async fn vault_store(&self, token: &str) -> VaultStore {
        VaultStore::connect(
            self.vault
                .settings(VaultAuth::Token(SecretString::from(token.to_string()))),
        )
        .await
        .unwrap()
    }

    pub fn team(&self) -> ManagedTeam {
        let mut b = globset::GlobSetBuilder::new();
        for p in &self.patterns {
            b.add(globset::Glob::new(p).unwrap());
        }
        ManagedTeam {
            id: TEAM.into(),
            matcher: b.build().unwrap(),
            policy: self.policy,
        }
    }

    /// A fresh engine (a restart) with the root token.
    pub async fn engine(&self) -> RealEngine {
        let vault = self.vault_store(&self.vault.root_token.clone()).await;
        self.engine_with_vault(vault).await
    }

    /// An engine over a different handle on the state database (read-only, limited…).
    pub async fn engine_with_store(&self, store: Store) -> RealEngine {
        let vault = self.vault_store(&self.vault.root_token.clone()).await;
        self.build_engine(vault, store).await
    }

    /// An engine over a different Vault handle (another token, a proxy…).
    pub async fn engine_with_vault(&self, vault: VaultStore) -> RealEngine {
        self.build_engine(vault, self.store.clone()).await
    }

    /// A fresh engine that manages `TEAM` and each of `others` (added to the
    /// simulator, with the world's user in them) under the same patterns.
    pub async fn engine_for_teams(&self, others: &[&str]) -> RealEngine {
        let mut teams = vec![self.team()];
        for id in others {
            self.sim.add_team(id, "another team");
            self.sim.join_team(EMAIL, id);
            teams.push(ManagedTeam {
                id: id.to_string(),
                ..self.team()
            });
        }
        let vault = self.vault_store(&self.vault.root_token.clone()).await;
        self.build_engine_over(vault, self.store.clone(), teams)
            .await
    }

    /// The app builder over this world: its simulator, its clock, its team.
    async fn build_engine(&self, vault: VaultStore, store: Store) -> RealEngine {
        self.build_engine_over(vault, store, vec![self.team()])
            .await
    }

    async fn build_engine_over(
        &self,
        vault: VaultStore,
        store: Store,
        teams: Vec<ManagedTeam>,
    ) -> RealEngine {
        App::new(
            self.masv_settings(),
            VaultSource::Connected(vault),
            RecordsSource::Opened(store),
            teams,
        )
        .clock(Arc::new(self.clock.clone()))
        .build()
        .await
        .unwrap()
    }

    /// Brings a lineage whose only key is hand-made to where a sweep reaches
    /// `boundary`: a create whose answer is lost (a rollback's boundaries), a
    /// finished rotation past its grace period (a deactivation's) or past
    /// `delete_after` (a deletion's); nothing for a rotation's own boundaries.
    /// Returns whether a rotation was finished on the way.
    pub async fn prepare_crash_at(&self, boundary: masv_key_rotator::engine::Boundary) -> bool {
        use masv_key_rotator::engine::Boundary::*;
        match boundary {
            BeforeRollback | AfterRollback => {
                self.sim.inject(Fault::new(FaultKind::LoseCreateResponse));
                self.sweep().await;
                false
            }
            BeforeDeactivate | AfterDeactivate => {
                self.sweep().await;
                self.clock.advance(Duration::hours(2));
                true
            }
            BeforeDelete | AfterDelete => {
                self.sweep().await;
                self.clock.advance(Duration::hours(2));
                self.sweep().await;
                self.clock.advance(Duration::days(8));
                true
            }
            _ => false,
        }
    }

    /// A sweep by a fresh engine that dies at `boundary` (which it must
    /// reach), then the checks that hold right after a crash.
    pub async fn sweep_crashing_at(&self, boundary: masv_key_rotator::engine::Boundary) {
        let engine = self.engine().await;
        engine.failpoints().arm(boundary);
        assert!(
            engine.sweep(&SweepMode::Apply).await.is_err(),
            "{boundary:?} not reached"
        );
        drop(engine);
        self.assert_safe_after_crash().await;
    }

    pub async fn sweep(&self) -> SweepReport {
        self.engine()
            .await
            .sweep(&SweepMode::Apply)
            .await
            .expect("sweep")
    }

    /// Seeds a key as if made by hand: created `age` ago, expiring in `expires_in`.
    pub fn seed(&self, name: &str, age: Duration, expires_in: Option<Duration>) -> SeededKey {
        let now = self.now();
        self.sim.seed_key(
            TEAM,
            SeedKey {
                created_at: Some(now - age),
                expiry: expires_in.map(|d| now + d),
                description: "made by hand".into(),
                ..SeedKey::active(name)
            },
        )
    }

    pub async fn current(&self, name: &str) -> Option<StoredSecret> {
        self.vault_store(&self.vault.root_token.clone())
            .await
            .read(TEAM, name)
            .await
            .unwrap()
    }

    pub fn state(&self, key_id: &str) -> Option<KeyState> {
        self.sim.key(key_id).map(|k| k.state)
    }

    pub async fn audit(&self) -> Vec<AuditRow> {
        self.store.audit(&AuditFilter::default()).await.unwrap()
    }

    /// What is known of a key, for a failed check: the requests naming it, its
    /// description (the rotation marker) and the rotations that name it or its marker.
    async fn trail_of(&self, key_id: &str) -> String {
        let requests: Vec<String> = self
            .sim
            .requests()
            .iter()
            .filter(|r| r.path.contains(key_id))
            .map(|r| format!("{} {} {} at {}", r.method, r.path, r.status, r.at))
            .collect();
        let description = self
            .sim
            .keys(TEAM)
            .into_iter()
            .find(|k| k.id == key_id)
            .map(|k| k.description)
            .unwrap_or_else(|| "(no longer listed)".into());
        let rotations: Vec<(String, Option<String>, String, String)> = sqlx::query_as(
            "SELECT rotation_id, new_key_id, phase, updated_at FROM rotations WHERE new_key_id = ?1 OR instr(?2, rotation_id) > 0",
        )
        .bind(key_id)
        .bind(&description)
        .fetch_all(self.store.pool())
        .await
        .unwrap_or_default();
        format!("requests naming it: {requests:#?}\ndescription: {description:?}\nrotations: {rotations:#?}")
    }

    /// The six invariants, checked from the outside.
    pub async fn assert_invariants(&self) {
        self.check(&[], true).await
    }

    /// Right after a crash: everything but audit completeness, which the restart
    /// restores (an outcome not yet recorded when the process died).
    pub async fn assert_safe_after_crash(&self) {
        self.check(&[], false).await
    }

    /// Another instance's state database over this world's simulator and Vault
    /// (an HA peer with a database of its own).
    pub async fn peer(&self, name: &str) -> Peer {
        let db_path = self._dir.path().join(format!("{name}.db"));
        let store = Store::open(&db_path).await.unwrap();
        Peer { store, db_path }
    }

    /// The invariants with several instances, each with its own database:
    /// this world's and the `peers'`. Every mutation has its audit row in one
    /// of them, every verification counts whichever instance made it.
    pub async fn assert_invariants_with(&self, peers: &[&Peer]) {
        self.check(peers, true).await
    }

    /// The secret at the lineage's path: it names a listed, active key, and
    /// its value is that key's secret (invariant 7, settled).
    pub async fn assert_current_works(&self, name: &str) -> StoredSecret {
        let vault = self
            .check_vault
            .get_or_init(|| self.vault_store(&self.vault.root_token))
            .await;
        let current = vault
            .read(TEAM, name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: no key at the lineage's path"));
        let key = self
            .sim
            .key(&current.secret.key_id)
            .expect("current key listed");
        assert_eq!(
            key.state,
            KeyState::Active,
            "{name}: current key must be active"
        );
        assert_eq!(
            key.secret,
            secrecy::ExposeSecret::expose_secret(&current.secret.api_key).to_string(),
            "{name}: the stored secret is the key's"
        );
        current
    }

    /// As [`World::assert_invariants_with`], but without audit completeness:
    /// a crashed instance records its last outcome only when it comes back.
    pub async fn assert_safe_with(&self, peers: &[&Peer]) {
        self.check(peers, false).await
    }

    async fn check(&self, peers: &[&Peer], audit_complete: bool) {
        let mine = Peer {
            store: self.store.clone(),
            db_path: self.db_path.clone(),
        };
        let dbs: Vec<&Peer> = std::iter::once(&mine)
            .chain(peers.iter().copied())
            .collect();
        // 4: at most one rotation per lineage in flight (per instance: a
        //    hand-over closes what an instance had when another took over).
        for db in &dbs {
            let open: Vec<(String, i64)> = sqlx::query_as(
                "SELECT key_name, COUNT(*) FROM rotations WHERE phase NOT IN ('verified', 'rolled_back', 'abandoned', 'handed_over') GROUP BY team_id, key_name",
            )
            .fetch_all(db.store.pool())
            .await
            .unwrap();
            assert!(
                open.iter().all(|(_, n)| *n <= 1),
                "more than one rotation in flight: {open:?}"
            );
        }
        let vault = self
            .check_vault
            .get_or_init(|| self.vault_store(&self.vault.root_token))
            .await;
        let keys = self.sim.keys(TEAM);
        let mutations = self.sim.mutations();
        // 3: every key the daemon created is stored (some version) or gone; an
        //    unstored one that still exists must be inactive (awaiting cleanup).
        let mut stored_ids = std::collections::HashSet::new();
        // Only managed lineages can have anything of the daemon's.
        let matcher = self.team().matcher;
        let names: std::collections::BTreeSet<String> = keys
            .iter()
            .filter(|k| matcher.is_match(&k.name))
            .map(|k| k.name.clone())
            .collect();
        for name in &names {
            let versions = patiently(|| vault.versions(TEAM, name)).await;
            for v in versions.unwrap_or_default() {
                let key = (name.clone(), v.version);
                let cached = self.stored_cache.lock().unwrap().get(&key).cloned();
                let id = match cached {
                    Some(id) => Some(id),
                    None => patiently(|| vault.read_version(TEAM, name, v.version))
                        .await
                        .ok()
                        .map(|s| s.secret.key_id),
                };
                if let Some(id) = id {
                    self.stored_cache.lock().unwrap().insert(key, id.clone());
                    stored_ids.insert(id);
                }
            }
            // A key between its staging and its promotion has its secret at the pending path.
            if let Ok(Some(staged)) = patiently(|| vault.read_staged(TEAM, name)).await {
                stored_ids.insert(staged.secret.key_id);
            }
        }
        for k in keys
            .iter()
            .filter(|k| k.description.starts_with("managed by masv-key-rotator"))
        {
            if !stored_ids.contains(&k.id) {
                assert_ne!(
                    k.state,
                    KeyState::Active,
                    "key {} created by the daemon is active but never stored",
                    k.id
                );
            }
        }
        // 1 (SPEC wording): for every key the daemon deactivated, a newer key of its
        // lineage is active, has its secret in Vault (some version) and was verified.
        // "Newer" by the simulator's ULID ids (creation order in real time), not by
        // MASV's created_at, which a test may skew.
        // Settled (no crash pending), the key Vault holds now must itself be active.
        let mut verified = std::collections::HashSet::new();
        for db in &dbs {
            verified.extend(
                sqlx::query_scalar::<_, String>(
                    "SELECT key_id FROM audit_log WHERE action = 'verify' AND outcome = 'ok' AND key_id IS NOT NULL",
                )
                .fetch_all(db.store.pool())
                .await
                .unwrap(),
            );
        }
        for name in &names {
            let lineage: Vec<_> = keys.iter().filter(|k| &k.name == name).collect();
            let deactivated: Vec<_> = lineage
                .iter()
                .filter(|k| {
                    mutations
                        .iter()
                        .any(|m| m.path.ends_with(&format!("{}/inactive", k.id)) && m.status == 204)
                })
                .collect();
            for old in &deactivated {
                let replaced = lineage.iter().any(|n| {
                    n.id > old.id
                        && n.state == KeyState::Active
                        && stored_ids.contains(&n.id)
                        && verified.contains(&n.id)
                });
                assert!(
                    replaced,
                    "{name}: {} was deactivated without a newer active, stored, verified key",
                    old.id
                );
            }
            if audit_complete && !deactivated.is_empty() {
                self.assert_current_works(name).await;
            }
        }
        // 2: no active key deleted.
        assert!(
            self.sim.deleted_while_active().is_empty(),
            "active keys deleted: {:?}",
            self.sim.deleted_while_active()
        );
        // 5: no secret in any database file.
        // The daemon can only ever have seen the secrets of keys it created (the only
        // responses that carry one), user tokens and the password: scan for those.
        let seeded: std::collections::HashSet<String> = keys
            .iter()
            .filter(|k| !k.description.starts_with("managed by masv-key-rotator"))
            .map(|k| k.secret.clone())
            .collect();
        let issued = self.sim.issued_secrets();
        let password = PASSWORD.to_string();
        let secrets: Vec<&[u8]> = issued
            .iter()
            .filter(|s| !seeded.contains(*s))
            .chain([&password])
            .map(|s| s.as_bytes())
            .collect();
        for d in &dbs {
            let (db, wal) = super::database_bytes(&d.db_path);
            assert!(
                !contains_any(&db, &secrets) && !contains_any(&wal, &secrets),
                "a secret is in the database {}",
                d.db_path.display()
            );
        }
        // 6 and tamper evidence.
        let mut audited = std::collections::HashSet::new();
        for db in &dbs {
            assert!(matches!(
                db.store.verify_chain().await.unwrap(),
                ChainReport::Intact { .. }
            ));
            if audit_complete {
                let rows = db.store.audit(&AuditFilter::default()).await.unwrap();
                audited.extend(rows.into_iter().filter_map(|a| a.key_id));
            }
        }
        for m in mutations
            .iter()
            .filter(|m| audit_complete && m.status / 100 == 2)
        {
            let id = m.path.rsplit('/').find(|p| p.len() == 26 && *p != TEAM);
            if let Some(id) = id {
                if !audited.contains(id) {
                    panic!(
                        "mutation {} {} has no audit row\n{}",
                        m.method,
                        m.path,
                        self.trail_of(id).await
                    );
                }
            }
        }
        for db in &dbs {
            db.store.integrity_check().await.unwrap();
        }
    }
}

/// Another instance's state database (see [`World::peer`]).
pub struct Peer {
    pub store: Store,
    pub db_path: PathBuf,
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(haystack, needle).is_some()
}

/// Whether any of `needles` occurs in `haystack`, in one pass: the kill matrix
/// checks hundreds of secrets against a database of megabytes after every
/// kill, in a debug build. Secrets are alphanumeric tokens, so only runs of
/// alphanumeric bytes at least as long as a secret are looked into; any other
/// needle (a password with punctuation) gets a plain search.
pub fn contains_any(haystack: &[u8], needles: &[&[u8]]) -> bool {
    let (tokens, others): (Vec<&[u8]>, Vec<&[u8]>) = needles
        .iter()
        .filter(|n| !n.is_empty())
        .partition(|n| n.iter().all(u8::is_ascii_alphanumeric));
    if others.iter().any(|n| contains(haystack, n)) {
        return true;
    }
    let mut by_len: std::collections::HashMap<usize, std::collections::HashSet<&[u8]>> =
        std::collections::HashMap::new();
    for n in tokens {
        by_len.entry(n.len()).or_default().insert(n);
    }
    let Some(shortest) = by_len.keys().min().copied() else {
        return false;
    };
    haystack
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|run| run.len() >= shortest)
        .any(|run| {
            by_len
                .iter()
                .any(|(len, set)| run.len() >= *len && run.windows(*len).any(|w| set.contains(w)))
        })
}

#[test]
fn contains_any_finds_each_needle_wherever_it_is() {
    let hay = b"xx secret-one yy secret-two-longer zz";
    assert!(contains_any(hay, &[b"nothing", b"secret-two-longer"]));
    assert!(contains_any(hay, &[b"secret-one"]));
    assert!(contains_any(b"secret-one", &[b"secret-one"]));
    assert!(!contains_any(
        hay,
        &[
            b"secret-three",
            b"",
            b"xx secret-one yy secret-two-longer zzz"
        ]
    ));
    assert!(!contains_any(b"", &[b"a"]));
    // Alphanumeric tokens, inside longer runs and at the edges.
    let db = b"\x00\x01ab12TOKENxyz9\x00zz|TOKEN2|";
    assert!(contains_any(db, &[b"TOKENxyz"]));
    assert!(contains_any(db, &[b"zzzzzzzz", b"TOKEN2"]));
    assert!(contains_any(db, &[b"ab12"]));
    assert!(!contains_any(db, &[b"TOKENxyz9z", b"12TOKENy"]));
}

/// A read for an invariant check: an unreachable or slow Vault (a loaded
/// machine) is asked again, and one that stays so fails the test as such,
/// never as a broken invariant; any other answer (absent, deleted) is returned.
async fn patiently<T, F, Fut>(mut read: F) -> Result<T, VaultError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, VaultError>>,
{
    for _ in 0..5 {
        match read().await {
            Err(e) if e.is_unreachable() => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            other => return other,
        }
    }
    match read().await {
        Err(e) if e.is_unreachable() => panic!("cannot read Vault for an invariant check: {e}"),
        other => other,
    }
}
