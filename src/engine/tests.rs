//! The engine's state machine against in-memory fakes of MASV and Vault, with a
//! real SQLite file and a manual clock: the whole lifecycle, failures of each
//! call, and a crash at every boundary followed by a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::failpoints::Boundary;
use super::key::{CreatedKey, Key, KeyAction, KeyState, NewKey};
use super::model::{DueReason, RotationPhase};
use super::ports::{KeyApi, SecretStore};
use super::ports::{KeyApiError, SecretStoreError};
use super::secret::{LineageSecret, StoredSecret};
use super::{Engine, ManagedTeam, SweepMode, SweepReport};
use crate::clock::{Clock, ManualClock, SharedClock};
use crate::config::Policy;
use crate::masv::MasvError;
use crate::store::Records;
use crate::store::{AuditAction, AuditFilter, ChainReport, Outcome, Store};
use crate::vault::VaultError;

const TEAM: &str = "T1";

/// What the fake MASV should do wrong next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MasvFault {
    /// Create the key, then report the outcome as unknown.
    LoseCreateResponse,
    /// Refuse to create.
    CreateRejected,
    /// Every call fails as unreachable.
    Down,
    /// The key check says no.
    RejectCheck,
}

#[derive(Default)]
struct MasvState {
    keys: BTreeMap<String, (Key, String)>,
    next: u32,
    faults: Vec<MasvFault>,
    /// Every mutation: (verb, key id).
    log: Vec<(String, String)>,
    /// Every secret ever issued.
    issued: Vec<String>,
}

#[derive(Clone)]
struct FakeMasv {
    state: Arc<Mutex<MasvState>>,
    clock: ManualClock,
}

impl FakeMasv {
    fn new(clock: ManualClock) -> Self {
        Self {
            state: Arc::default(),
            clock,
        }
    }

    fn seed(
        &self,
        name: &str,
        state: KeyState,
        created_ago: Duration,
        expires_in: Option<Duration>,
    ) -> String {
        let now = self.clock.now();
        let mut s = self.state.lock().unwrap();
        s.next += 1;
        let id = format!("SEED{:03}", s.next);
        let secret = format!("seed-secret-{id}");
        s.issued.push(secret.clone());
        s.keys.insert(
            id.clone(),
            (
                Key {
                    id: id.clone(),
                    name: name.into(),
                    description: "by hand".into(),
                    state,
                    created_at: Some(now - created_ago),
                    expiry: expires_in.map(|d| now + d),
                    last_request_at: None,
                },
                secret,
            ),
        );
        id
    }

    fn fault(&self, f: MasvFault) {
        self.state.lock().unwrap().faults.push(f);
    }

    fn take_fault(&self, f: MasvFault) -> bool {
        let mut s = self.state.lock().unwrap();
        if let Some(i) = s.faults.iter().position(|x| *x == f) {
            s.faults.remove(i);
            true
        } else {
            false
        }
    }

    fn down(&self) -> bool {
        self.state.lock().unwrap().faults.contains(&MasvFault::Down)
    }

    fn key(&self, id: &str) -> Option<Key> {
        self.state
            .lock()
            .unwrap()
            .keys
            .get(id)
            .map(|(k, _)| k.clone())
    }

    fn keys_named(&self, name: &str) -> Vec<Key> {
        self.state
            .lock()
            .unwrap()
            .keys
            .values()
            .filter(|(k, _)| k.name == name)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn touch(&self, id: &str) {
        let now = self.clock.now();
        if let Some((k, _)) = self.state.lock().unwrap().keys.get_mut(id) {
            k.last_request_at = Some(now);
        }
    }

    fn mutations(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().log.clone()
    }

    fn unreachable(call: &str) -> MasvError {
        MasvError::Unreachable {
            call: call.into(),
            reason: "connection refused".into(),
        }
    }
}

/// The fake's calls, failing with the MASV client's own errors.
impl FakeMasv {
    async fn masv_list_keys(&self, _team_id: &str) -> Result<Vec<Key>, MasvError> {
        if self.down() {
            return Err(Self::unreachable("list"));
        }
        Ok(self
            .state
            .lock()
            .unwrap()
            .keys
            .values()
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn masv_create_key(&self, _team_id: &str, new: &NewKey) -> Result<CreatedKey, MasvError> {
        if self.down() {
            return Err(Self::unreachable("create"));
        }
        if self.take_fault(MasvFault::CreateRejected) {
            return Err(MasvError::Status {
                call: "create".into(),
                status: 400,
                message: "nope".into(),
            });
        }
        let now = self.clock.now();
        let (key, secret) = {
            let mut s = self.state.lock().unwrap();
            s.next += 1;
            let id = format!("NEW{:03}", s.next);
            let secret = format!("new-secret-{id}-{}", s.next * 7919);
            let key = Key {
                id: id.clone(),
                name: new.name.clone(),
                description: new.description.clone(),
                state: match new.state {
                    KeyAction::Active => KeyState::Active,
                    KeyAction::Inactive => KeyState::Inactive,
                },
                created_at: Some(now),
                expiry: new.expiry,
                last_request_at: None,
            };
            s.keys.insert(id.clone(), (key.clone(), secret.clone()));
            s.issued.push(secret.clone());
            s.log.push(("create".into(), id));
            (key, secret)
        };
        if self.take_fault(MasvFault::LoseCreateResponse) {
            return Err(MasvError::OutcomeUnknown {
                call: "create".into(),
                reason: "connection reset".into(),
            });
        }
        Ok(CreatedKey {
            key,
            secret: SecretString::from(secret),
        })
    }

    async fn masv_set_key_state(&self, key_id: &str, action: KeyAction) -> Result<(), MasvError> {
        if self.down() {
            return Err(Self::unreachable("toggle"));
        }
        let mut s = self.state.lock().unwrap();
        let Some((k, _)) = s.keys.get_mut(key_id) else {
            return Err(MasvError::NotFound {
                call: "toggle".into(),
            });
        };
        if k.state == KeyState::Suspended {
            return Err(MasvError::Conflict {
                call: "toggle".into(),
                message: "suspended".into(),
            });
        }
        k.state = match action {
            KeyAction::Active => KeyState::Active,
            KeyAction::Inactive => KeyState::Inactive,
        };
        s.log.push((action.as_str().into(), key_id.into()));
        Ok(())
    }

    async fn masv_delete_key(&self, key_id: &str) -> Result<(), MasvError> {
        if self.down() {
            return Err(Self::unreachable("delete"));
        }
        let mut s = self.state.lock().unwrap();
        let Some((k, _)) = s.keys.get(key_id) else {
            return Err(MasvError::NotFound {
                call: "delete".into(),
            });
        };
        assert_ne!(
            k.state,
            KeyState::Active,
            "invariant 2: the engine deleted an active key {key_id}"
        );
        s.keys.remove(key_id);
        s.log.push(("delete".into(), key_id.into()));
        Ok(())
    }

    async fn masv_check_key(&self, _team_id: &str, secret: &SecretString) -> Result<(), MasvError> {
        if self.take_fault(MasvFault::RejectCheck) {
            return Err(MasvError::KeyRejected { status: 401 });
        }
        let now = self.clock.now();
        let mut s = self.state.lock().unwrap();
        let hit = s
            .keys
            .values_mut()
            .find(|(_, sec)| sec == secret.expose_secret());
        match hit {
            Some((k, _)) if k.state == KeyState::Active && k.expiry.is_none_or(|e| e > now) => {
                k.last_request_at = Some(now);
                Ok(())
            }
            _ => Err(MasvError::KeyRejected { status: 401 }),
        }
    }
}

/// One KV version: (key_id, api_key, rotation_id).
type Version = (String, String, String);

#[derive(Default)]
struct VaultState {
    versions: BTreeMap<(String, String), Vec<Version>>,
    /// The pending path's versions (removed whole by `unstage`).
    pending: BTreeMap<(String, String), Vec<Version>>,
    /// Everything ever staged, for the invariants (unstage does not forget).
    staged_ever: BTreeMap<(String, String), Vec<Version>>,
    down: bool,
    lose_write_response: bool,
    /// Reads of the lineage's path and of the pending path (the read budget).
    reads: usize,
    staged_reads: usize,
}

#[derive(Clone, Default)]
struct FakeVault {
    state: Arc<Mutex<VaultState>>,
}

impl FakeVault {
    fn current(&self, name: &str) -> Option<(u64, String, String)> {
        let s = self.state.lock().unwrap();
        let v = s.versions.get(&(TEAM.to_string(), name.to_string()))?;
        v.last()
            .map(|(id, key, _)| (v.len() as u64, id.clone(), key.clone()))
    }

    fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Every key id Vault has held, at the lineage's path or the pending one.
    fn all_key_ids(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.versions
            .values()
            .chain(s.staged_ever.values())
            .flatten()
            .map(|(id, _, _)| id.clone())
            .collect()
    }
}

/// The fake's calls, failing with the Vault adapter's own errors.
impl FakeVault {
    fn check_up(s: &VaultState) -> Result<(), VaultError> {
        if s.down {
            return Err(VaultError::Unreachable {
                address: "fake".into(),
                reason: "down".into(),
            });
        }
        Ok(())
    }

    fn latest(
        map: &BTreeMap<(String, String), Vec<Version>>,
        team_id: &str,
        name: &str,
    ) -> Option<StoredSecret> {
        let v = map.get(&(team_id.to_string(), name.to_string()))?;
        let (key_id, api_key, rotation_id) = v.last()?;
        Some(StoredSecret {
            version: v.len() as u64,
            secret: LineageSecret {
                api_key: SecretString::from(api_key.clone()),
                key_id: key_id.clone(),
                key_name: name.into(),
                team_id: team_id.into(),
                expiry: None,
                created_at: None,
                rotated_at: t0(),
                rotation_id: rotation_id.clone(),
            },
        })
    }

    async fn vault_read(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, VaultError> {
        let mut s = self.state.lock().unwrap();
        Self::check_up(&s)?;
        s.reads += 1;
        Ok(Self::latest(&s.versions, team_id, name))
    }

    async fn vault_read_staged(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, VaultError> {
        let mut s = self.state.lock().unwrap();
        Self::check_up(&s)?;
        s.staged_reads += 1;
        Ok(Self::latest(&s.pending, team_id, name))
    }

    /// A write to the lineage's path (`cas` given) or the pending path (None).
    async fn vault_write(
        &self,
        secret: &LineageSecret,
        cas: Option<u64>,
    ) -> Result<u64, VaultError> {
        let mut s = self.state.lock().unwrap();
        Self::check_up(&s)?;
        let lose = std::mem::take(&mut s.lose_write_response);
        if cas.is_none() {
            s.staged_ever
                .entry((secret.team_id.clone(), secret.key_name.clone()))
                .or_default()
                .push((
                    secret.key_id.clone(),
                    secret.api_key.expose_secret().to_string(),
                    secret.rotation_id.clone(),
                ));
        }
        let map = if cas.is_some() {
            &mut s.versions
        } else {
            &mut s.pending
        };
        let entry = map
            .entry((secret.team_id.clone(), secret.key_name.clone()))
            .or_default();
        if let Some(cas) = cas.filter(|cas| entry.len() as u64 != *cas) {
            return Err(VaultError::CasConflict {
                path: secret.key_name.clone(),
                expected: cas,
            });
        }
        entry.push((
            secret.key_id.clone(),
            secret.api_key.expose_secret().to_string(),
            secret.rotation_id.clone(),
        ));
        if lose {
            return Err(VaultError::Unreachable {
                address: "fake".into(),
                reason: "timeout after write".into(),
            });
        }
        Ok(entry.len() as u64)
    }

    async fn vault_unstage(&self, team_id: &str, name: &str) -> Result<(), VaultError> {
        let mut s = self.state.lock().unwrap();
        Self::check_up(&s)?;
        s.pending.remove(&(team_id.to_string(), name.to_string()));
        Ok(())
    }

    /// The pending path's key id and secret.
    fn pending(&self, name: &str) -> Option<(String, String)> {
        let s = self.state.lock().unwrap();
        Self::latest(&s.pending, TEAM, name).map(|p| {
            (
                p.secret.key_id,
                p.secret.api_key.expose_secret().to_string(),
            )
        })
    }
}

impl KeyApi for FakeMasv {
    async fn list_keys(&self, team_id: &str) -> Result<Vec<Key>, KeyApiError> {
        Ok(self.masv_list_keys(team_id).await?)
    }
    async fn create_key(&self, team_id: &str, new: &NewKey) -> Result<CreatedKey, KeyApiError> {
        Ok(self.masv_create_key(team_id, new).await?)
    }
    async fn set_key_state(&self, key_id: &str, action: KeyAction) -> Result<(), KeyApiError> {
        Ok(self.masv_set_key_state(key_id, action).await?)
    }
    async fn delete_key(&self, key_id: &str) -> Result<(), KeyApiError> {
        Ok(self.masv_delete_key(key_id).await?)
    }
    async fn check_key(&self, team_id: &str, secret: &SecretString) -> Result<(), KeyApiError> {
        Ok(self.masv_check_key(team_id, secret).await?)
    }
}

impl SecretStore for FakeVault {
    async fn read(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, SecretStoreError> {
        Ok(self.vault_read(team_id, name).await?)
    }
    async fn read_staged(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, SecretStoreError> {
        Ok(self.vault_read_staged(team_id, name).await?)
    }
    async fn stage(&self, secret: &LineageSecret) -> Result<u64, SecretStoreError> {
        Ok(self.vault_write(secret, None).await?)
    }
    async fn promote(&self, secret: &LineageSecret, cas: u64) -> Result<u64, SecretStoreError> {
        Ok(self.vault_write(secret, Some(cas)).await?)
    }
    async fn unstage(&self, team_id: &str, name: &str) -> Result<(), SecretStoreError> {
        Ok(self.vault_unstage(team_id, name).await?)
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

struct Rig {
    clock: ManualClock,
    masv: FakeMasv,
    vault: FakeVault,
    store: Store,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).await.unwrap();
        let clock = ManualClock::new(t0());
        Rig {
            masv: FakeMasv::new(clock.clone()),
            vault: FakeVault::default(),
            clock,
            store,
            _dir: dir,
        }
    }

    /// A fresh engine over the same world: what a restart looks like.
    fn engine(&self) -> Engine<FakeMasv, FakeVault> {
        self.engine_over(&self.store)
    }

    /// An engine over the same MASV and Vault with its own database (another instance).
    fn engine_over(&self, store: &Store) -> Engine<FakeMasv, FakeVault> {
        let team = ManagedTeam {
            id: TEAM.into(),
            matcher: {
                let mut b = globset::GlobSetBuilder::new();
                b.add(globset::Glob::new("ci-*").unwrap());
                b.build().unwrap()
            },
            policy: Policy::default(),
        };
        let clock: SharedClock = Arc::new(self.clock.clone());
        Engine::new(
            self.masv.clone(),
            self.vault.clone(),
            Some(std::sync::Arc::new(Records::new(store.clone()))),
            clock,
            vec![team],
            4,
        )
    }

    async fn sweep(&self) -> SweepReport {
        self.engine().sweep(&SweepMode::Apply).await.expect("sweep")
    }

    async fn audit(&self) -> Vec<crate::store::AuditRow> {
        self.store.audit(&AuditFilter::default()).await.unwrap()
    }

    /// Invariants checked from the outside after every step.
    async fn assert_invariants(&self, name: &str) {
        let keys = self.masv.keys_named(name);
        let in_vault = self.vault.all_key_ids();
        // 3: every key the daemon created is in Vault (some version), or will be cleaned up
        //    (inactive, unreferenced), never an active stranger.
        for k in keys.iter().filter(|k| k.id.starts_with("NEW")) {
            if !in_vault.contains(&k.id) {
                assert_ne!(
                    k.state,
                    KeyState::Active,
                    "an active key {} was created but never stored",
                    k.id
                );
            }
        }
        // 1: if anything of the lineage is inactive by our hand, the current key works.
        if let Some((_, current, secret)) = self.vault.current(name) {
            let deactivated = self
                .masv
                .mutations()
                .iter()
                .any(|(verb, _)| verb == "inactive");
            if deactivated {
                let cur = self.masv.key(&current).expect("current key listed");
                assert_eq!(
                    cur.state,
                    KeyState::Active,
                    "the current key must be active"
                );
                assert!(secret.starts_with("new-secret-"));
            }
        }
        // 6 (+ tamper evidence): the chain verifies.
        assert!(matches!(
            self.store.verify_chain().await.unwrap(),
            ChainReport::Intact { .. }
        ));
    }
}

#[tokio::test]
async fn adoption_then_full_lifecycle() {
    let rig = Rig::new().await;
    let old = rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(20)),
    );
    rig.masv
        .seed("render-1", KeyState::Active, Duration::days(500), None); // unmanaged

    let r = rig.sweep().await;
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    let (version, new_id, _) = rig.vault.current("ci-build").expect("stored");
    assert_eq!(version, 1);
    let new = rig.masv.key(&new_id).unwrap();
    assert_eq!(new.state, KeyState::Active);
    assert_eq!(new.expiry, Some(t0() + Duration::days(30)));
    assert_eq!(
        rig.masv.key(&old).unwrap().state,
        KeyState::Active,
        "old key kept through grace"
    );
    let actions: Vec<_> = rig
        .audit()
        .await
        .iter()
        .map(|a| (a.action, a.outcome))
        .collect();
    assert_eq!(
        actions,
        vec![
            (AuditAction::Create, Outcome::Ok),
            (AuditAction::Stage, Outcome::Ok),
            (AuditAction::Activate, Outcome::Ok),
            (AuditAction::Verify, Outcome::Ok),
            (AuditAction::Promote, Outcome::Ok)
        ]
    );

    // grace not over: nothing
    rig.clock.advance(Duration::minutes(30));
    assert!(rig.sweep().await.outcomes.is_empty());
    // in use past grace: still kept
    rig.clock.advance(Duration::hours(1));
    rig.masv.touch(&old);
    let r = rig.sweep().await;
    assert!(r.outcomes.is_empty());
    assert_eq!(rig.masv.key(&old).unwrap().state, KeyState::Active);
    // idle for 15 minutes: deactivated
    rig.clock.advance(Duration::minutes(16));
    let r = rig.sweep().await;
    assert_eq!(r.failed(), 0);
    assert_eq!(rig.masv.key(&old).unwrap().state, KeyState::Inactive);
    // delete_after later: deleted
    rig.clock.advance(Duration::days(7));
    rig.sweep().await;
    assert!(rig.masv.key(&old).is_none());
    assert!(rig.masv.key("SEED002").is_some(), "unmanaged key untouched");
    assert!(rig.masv.mutations().iter().all(|(_, id)| id != "SEED002"));
    rig.assert_invariants("ci-build").await;
}

#[tokio::test]
async fn lost_create_response_is_cleaned_up_by_marker() {
    let rig = Rig::new().await;
    let old = rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(2)),
    );
    rig.masv.fault(MasvFault::LoseCreateResponse);
    let r = rig.sweep().await;
    assert_eq!(r.failed(), 1);
    assert!(rig.vault.current("ci-build").is_none());
    let stray: Vec<_> = rig
        .masv
        .keys_named("ci-build")
        .into_iter()
        .filter(|k| k.id != old)
        .collect();
    assert_eq!(stray.len(), 1);
    assert_eq!(stray[0].state, KeyState::Inactive);
    // the next sweep finds it by its marker, deletes it, then the lineage rotates again
    let r = rig.sweep().await;
    assert!(rig.masv.key(&stray[0].id).is_none(), "orphan deleted");
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    let r = rig.sweep().await;
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    assert!(rig.vault.current("ci-build").is_some());
    assert_eq!(rig.masv.key(&old).unwrap().state, KeyState::Active);
    let audit = rig.audit().await;
    assert!(audit
        .iter()
        .any(|a| a.action == AuditAction::Create && a.outcome == Outcome::Failed));
    assert!(audit
        .iter()
        .any(|a| a.action == AuditAction::Rollback && a.outcome == Outcome::Ok));
    rig.assert_invariants("ci-build").await;
}

#[tokio::test]
async fn vault_down_rolls_back_and_keeps_the_old_key() {
    let rig = Rig::new().await;
    let old = rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(2)),
    );
    // First sweep sees Vault (absent), then Vault goes down before the write.
    rig.sweep().await; // adoption works
    rig.clock.advance(Duration::days(30)); // the new key is now due (expiry head start)
    rig.vault.set_down(true);
    let r = rig.sweep().await;
    assert!(r.scope.unreachable);
    assert_eq!(r.exit(), crate::exit::Exit::Unreachable);
    rig.vault.set_down(false);
    rig.assert_invariants("ci-build").await;
    let _ = old;
}

#[tokio::test]
async fn cas_conflict_rolls_back_the_new_key() {
    let rig = Rig::new().await;
    rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(2)),
    );
    rig.sweep().await; // cache says: no secret in Vault (then adoption stores version 1)
    let (_, current, _) = rig.vault.current("ci-build").unwrap();
    // someone else writes a version behind the daemon's back
    rig.vault
        .state
        .lock()
        .unwrap()
        .versions
        .get_mut(&(TEAM.into(), "ci-build".into()))
        .unwrap()
        .push((current.clone(), "x".into(), "foreign".into()));
    rig.clock.advance(Duration::days(30));
    let r = rig.sweep().await;
    assert_eq!(r.failed(), 1, "{:?}", r.outcomes);
    // nothing created: the fresh Vault read caught the change before any create
    assert_eq!(
        rig.masv
            .mutations()
            .iter()
            .filter(|(v, _)| v == "create")
            .count(),
        1
    );
    // the next sweep rotates against the fresh version
    let r = rig.sweep().await;
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    assert_eq!(rig.vault.current("ci-build").unwrap().0, 3);
}

#[tokio::test]
async fn failed_verification_keeps_old_key_and_retries() {
    let rig = Rig::new().await;
    let old = rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(2)),
    );
    rig.masv.fault(MasvFault::RejectCheck);
    let r = rig.sweep().await;
    assert_eq!(r.failed(), 1);
    rig.clock.advance(Duration::days(3));
    let r = rig.sweep().await; // verification retried and passes; old key now retiring
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    assert_eq!(rig.masv.key(&old).unwrap().state, KeyState::Active);
    rig.clock.advance(Duration::hours(2));
    rig.sweep().await;
    assert_eq!(rig.masv.key(&old).unwrap().state, KeyState::Inactive);
    rig.assert_invariants("ci-build").await;
}

#[tokio::test]
async fn create_rejected_is_rolled_back_without_a_key() {
    let rig = Rig::new().await;
    rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(2)),
    );
    rig.masv.fault(MasvFault::CreateRejected);
    let r = rig.sweep().await;
    assert_eq!(r.exit(), crate::exit::Exit::ActionFailed);
    assert!(rig.masv.mutations().is_empty());
    let r = rig.sweep().await;
    assert_eq!(r.failed(), 0);
    assert!(rig.vault.current("ci-build").is_some());
}

#[tokio::test]
async fn masv_down_is_exit_3_and_changes_nothing() {
    let rig = Rig::new().await;
    rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(2)),
    );
    rig.masv.fault(MasvFault::Down);
    let r = rig.sweep().await;
    assert_eq!(r.exit(), crate::exit::Exit::Unreachable);
    assert!(rig.masv.mutations().is_empty());
    assert!(rig.vault.current("ci-build").is_none());
}

#[tokio::test]
async fn suspended_current_key_is_replaced_without_toggling_it() {
    let rig = Rig::new().await;
    let old = rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(1),
        Some(Duration::days(25)),
    );
    rig.sweep().await;
    let (_, current, _) = rig.vault.current("ci-build").unwrap();
    rig.clock.advance(Duration::days(8));
    rig.sweep().await; // old deactivated after grace/idle
                       // MASV suspends the current key
    rig.masv
        .state
        .lock()
        .unwrap()
        .keys
        .get_mut(&current)
        .unwrap()
        .0
        .state = KeyState::Suspended;
    let before = rig.masv.mutations().len();
    let r = rig.sweep().await;
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    let (_, newer, _) = rig.vault.current("ci-build").unwrap();
    assert_ne!(newer, current);
    for _ in 0..3 {
        rig.clock.advance(Duration::days(8));
        rig.sweep().await;
    }
    assert_eq!(rig.masv.key(&current).unwrap().state, KeyState::Suspended);
    assert!(
        rig.masv.mutations()[before..]
            .iter()
            .all(|(_, id)| id != &current),
        "suspended key never toggled"
    );
    let _ = old;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let rig = Rig::new().await;
    rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(2)),
    );
    let report = rig.engine().sweep(&SweepMode::DryRun).await.unwrap();
    assert_eq!(report.plans.len(), 1);
    assert!(!report.plans[0].actions.is_empty());
    assert!(rig.masv.mutations().is_empty());
    assert!(rig.vault.current("ci-build").is_none());
    assert!(rig.audit().await.is_empty());
}

/// The one thing every boundary test checks after the restart has settled.
async fn settled_after_crash(boundary: Boundary) {
    let rig = Rig::new().await;
    let old = rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(2)),
    );
    let engine = rig.engine();
    // Get to the boundary: rotation boundaries are hit on the first sweep, retirement
    // ones after grace (deactivate) and delete_after (delete); rollback ones need a
    // Vault failure.
    let needs_rollback = matches!(boundary, Boundary::BeforeRollback | Boundary::AfterRollback);
    if needs_rollback {
        rig.vault.state.lock().unwrap().down = false;
        rig.masv.fault(MasvFault::LoseCreateResponse);
        rig.sweep().await; // create outcome unknown: the next sweep rolls back
    }
    let retirement = matches!(
        boundary,
        Boundary::BeforeDeactivate
            | Boundary::AfterDeactivate
            | Boundary::BeforeDelete
            | Boundary::AfterDelete
    );
    if retirement {
        rig.sweep().await;
        rig.clock.advance(Duration::hours(2));
        if matches!(boundary, Boundary::BeforeDelete | Boundary::AfterDelete) {
            rig.sweep().await;
            rig.clock.advance(Duration::days(8));
        }
    }
    engine.failpoints().arm(boundary);
    let crashed = engine.sweep(&SweepMode::Apply).await;
    assert!(crashed.is_err(), "{boundary:?} was never reached");
    assert_eq!(engine.failpoints().fired(), vec![boundary]);
    drop(engine); // the process is gone: its memory (the secret in flight) with it
    rig.assert_invariants("ci-build").await;

    // Restart, and let the next sweeps settle everything.
    for _ in 0..3 {
        let r = rig.sweep().await;
        assert_eq!(r.failed(), 0, "{boundary:?}: {:?}", r.outcomes);
        rig.assert_invariants("ci-build").await;
    }
    // Settled: exactly one stored current key, active; no stray daemon-made key.
    let (_, current, secret) = rig
        .vault
        .current("ci-build")
        .expect("a current key in Vault");
    let cur = rig.masv.key(&current).expect("current listed");
    assert_eq!(cur.state, KeyState::Active, "{boundary:?}");
    assert!(rig
        .masv
        .check_key(TEAM, &SecretString::from(secret))
        .await
        .is_ok());
    let created: Vec<_> = rig
        .masv
        .mutations()
        .into_iter()
        .filter(|(v, _)| v == "create")
        .map(|(_, id)| id)
        .collect();
    for id in created {
        let stored = rig.vault.all_key_ids().contains(&id);
        let exists = rig.masv.key(&id).is_some();
        assert!(
            stored || !exists,
            "{boundary:?}: key {id} created, never stored, still exists"
        );
    }
    // No rotation is left in flight, and none was doubled.
    let open: Vec<_> = Records::new(rig.store.clone())
        .rotations()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| !r.phase.is_terminal())
        .collect();
    assert!(open.is_empty(), "{boundary:?}: {open:?}");
    // Invariant 6: every create/toggle/delete MASV saw has an audit row for its key.
    let audit = rig.audit().await;
    for (verb, id) in rig.masv.mutations() {
        assert!(
            audit
                .iter()
                .any(|a| a.key_id.as_deref() == Some(id.as_str()) && a.outcome == Outcome::Ok),
            "{boundary:?}: {verb} of {id} has no ok audit row"
        );
    }
    let _ = old;
}

#[tokio::test]
async fn crash_at_every_boundary_then_restart_settles() {
    for boundary in Boundary::ALL {
        settled_after_crash(boundary).await;
    }
}

/// A rotation interrupted after its new key reached Vault, whose new key then
/// dies (expires, is suspended or deleted by someone) before a restart.
async fn interrupted_then_new_key_dies(boundary: Boundary, kill: fn(&Rig, &str)) -> Rig {
    let rig = Rig::crashed_at(boundary, Duration::days(2)).await;
    let old = rig
        .masv
        .keys_named("ci-build")
        .into_iter()
        .find(|k| !k.id.starts_with("NEW"))
        .expect("the hand-made key")
        .id;
    let (dead, _) = rig
        .vault
        .pending("ci-build")
        .expect("staged before the crash");
    kill(&rig, &dead);

    let r = rig.sweep().await;
    assert_eq!(r.failed(), 0, "{boundary:?}: {:?}", r.outcomes);
    // The stuck rotation was given up and a fresh one finished in the same sweep.
    let rotations = Records::new(rig.store.clone()).rotations().await.unwrap();
    let mut phases: Vec<_> = rotations.iter().map(|r| r.phase.as_str()).collect();
    phases.sort();
    assert_eq!(phases, vec!["abandoned", "verified"], "{boundary:?}");
    let (_, current, secret) = rig.vault.current("ci-build").unwrap();
    assert_ne!(current, dead);
    assert!(rig
        .masv
        .check_key(TEAM, &SecretString::from(secret))
        .await
        .is_ok());
    assert!(rig
        .audit()
        .await
        .iter()
        .any(|a| a.action == AuditAction::Abandon && a.key_id.as_deref() == Some(dead.as_str())));
    // Nothing was taken from the old key while the dead one was current.
    assert!(rig.masv.mutations().iter().all(|(_, id)| id != &old));
    rig.assert_invariants("ci-build").await;
    rig
}

fn expire(rig: &Rig, _dead: &str) {
    rig.clock.advance(Duration::days(31));
}

#[tokio::test]
async fn new_key_expired_before_verification_is_abandoned_and_replaced() {
    for boundary in [Boundary::AfterStore, Boundary::BeforeActivate] {
        let rig = interrupted_then_new_key_dies(boundary, expire).await;
        // The dead key was never activated: it is deleted delete_after later,
        // and the old key retires as usual once the new one is verified.
        let dead = rig.vault.state.lock().unwrap().staged_ever[&(TEAM.into(), "ci-build".into())]
            [0]
        .0
        .clone();
        assert_eq!(rig.masv.key(&dead).unwrap().state, KeyState::Inactive);
        rig.clock.advance(Duration::days(8));
        let r = rig.sweep().await;
        assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
        assert!(
            rig.masv.key(&dead).is_none(),
            "{boundary:?}: dead key left behind"
        );
        let old = rig.masv.keys_named("ci-build");
        assert_eq!(old.len(), 2, "{old:?}");
        rig.assert_invariants("ci-build").await;
    }
}

#[tokio::test]
async fn activated_new_key_expired_before_verification_retires_like_an_old_one() {
    let rig = interrupted_then_new_key_dies(Boundary::AfterActivate, expire).await;
    let dead = rig.vault.state.lock().unwrap().staged_ever[&(TEAM.into(), "ci-build".into())][0]
        .0
        .clone();
    // Active (though expired): deactivated only behind the verified replacement.
    assert_eq!(rig.masv.key(&dead).unwrap().state, KeyState::Active);
    rig.clock.advance(Duration::hours(2));
    rig.sweep().await;
    assert_eq!(rig.masv.key(&dead).unwrap().state, KeyState::Inactive);
    rig.clock.advance(Duration::days(8));
    rig.sweep().await;
    assert!(rig.masv.key(&dead).is_none());
    rig.assert_invariants("ci-build").await;
}

#[tokio::test]
async fn suspended_or_deleted_new_key_is_abandoned_without_toggling_it() {
    let rig = interrupted_then_new_key_dies(Boundary::AfterStore, |rig, dead| {
        let mut s = rig.masv.state.lock().unwrap();
        s.keys.get_mut(dead).unwrap().0.state = KeyState::Suspended;
    })
    .await;
    let dead = rig.vault.state.lock().unwrap().staged_ever[&(TEAM.into(), "ci-build".into())][0]
        .0
        .clone();
    assert!(
        !rig.masv
            .mutations()
            .iter()
            .any(|(verb, id)| id == &dead && (verb == "active" || verb == "inactive")),
        "a suspended key was toggled"
    );
    assert_eq!(rig.masv.key(&dead).unwrap().state, KeyState::Suspended);

    interrupted_then_new_key_dies(Boundary::AfterActivate, |rig, dead| {
        rig.masv.state.lock().unwrap().keys.remove(dead);
    })
    .await;
}

#[tokio::test]
async fn new_key_deactivated_by_someone_before_verification_is_activated_again() {
    let rig = Rig::new().await;
    rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(2)),
    );
    rig.masv.fault(MasvFault::RejectCheck);
    assert_eq!(rig.sweep().await.failed(), 1); // staged and active, not verified
    let (new_id, secret) = rig.vault.pending("ci-build").unwrap();
    rig.masv
        .state
        .lock()
        .unwrap()
        .keys
        .get_mut(&new_id)
        .unwrap()
        .0
        .state = KeyState::Inactive;

    let r = rig.sweep().await;
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    assert_eq!(rig.masv.key(&new_id).unwrap().state, KeyState::Active);
    assert!(rig
        .masv
        .check_key(TEAM, &SecretString::from(secret))
        .await
        .is_ok());
    let rotations = Records::new(rig.store.clone()).rotations().await.unwrap();
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].phase.as_str(), "verified");
    rig.assert_invariants("ci-build").await;
}

#[tokio::test]
async fn a_completed_rotation_names_its_new_and_previous_key() {
    let rig = Rig::new().await;
    rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(20)),
    );
    let first = rig.sweep().await;
    let (_, adopted, _) = rig.vault.current("ci-build").expect("stored");
    let rotated: Vec<_> = first
        .outcomes
        .iter()
        .filter_map(|o| o.rotated.clone())
        .collect();
    assert_eq!(rotated.len(), 1, "{:?}", first.outcomes);
    assert_eq!(rotated[0].new_key_id, adopted);
    assert_eq!(
        rotated[0].previous_key_id, None,
        "adoption replaces no stored key"
    );

    let lineage = super::LineageId::new(TEAM, "ci-build");
    let second = rig
        .engine()
        .sweep(&SweepMode::RotateNow(lineage))
        .await
        .expect("sweep");
    let (_, newer, _) = rig.vault.current("ci-build").expect("stored");
    let rotated: Vec<_> = second
        .outcomes
        .iter()
        .filter_map(|o| o.rotated.clone())
        .collect();
    assert_eq!(rotated.len(), 1, "{:?}", second.outcomes);
    assert_eq!(rotated[0].new_key_id, newer);
    assert_eq!(
        rotated[0].previous_key_id.as_deref(),
        Some(adopted.as_str())
    );
    assert!(second
        .outcomes
        .iter()
        .filter(|o| o.rotated.is_none())
        .all(|o| o.ok));
}

#[tokio::test]
async fn the_lineage_path_names_the_new_key_only_once_it_is_verified() {
    let rig = Rig::new().await;
    rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(20)),
    );
    rig.sweep().await; // adoption
    let (version, adopted, _) = rig.vault.current("ci-build").expect("stored");
    assert_eq!(rig.vault.pending("ci-build"), None, "removed once promoted");

    rig.masv.fault(MasvFault::RejectCheck);
    rig.clock.advance(Duration::days(25));
    let r = rig.sweep().await;
    assert_eq!(r.failed(), 1, "{:?}", r.outcomes);
    // Created, staged and activated, but not verified: consumers still read the old key.
    let (staged, _) = rig.vault.pending("ci-build").expect("staged");
    assert_ne!(staged, adopted);
    assert_eq!(rig.vault.current("ci-build").unwrap().1, adopted);
    assert_eq!(rig.vault.current("ci-build").unwrap().0, version);
    assert_eq!(rig.masv.key(&staged).unwrap().state, KeyState::Active);

    let r = rig.sweep().await; // the check passes now: promoted
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    assert_eq!(rig.vault.current("ci-build").unwrap().1, staged);
    assert_eq!(rig.vault.pending("ci-build"), None);
    let actions: Vec<AuditAction> = rig.audit().await.iter().map(|a| a.action).collect();
    assert!(actions.contains(&AuditAction::Stage), "{actions:?}");
    assert!(actions.contains(&AuditAction::Promote), "{actions:?}");
    rig.assert_invariants("ci-build").await;
}

impl Rig {
    /// A lineage with one hand-made key expiring in `expires_in`, whose first
    /// rotation crashed at `boundary` (the process is gone).
    async fn crashed_at(boundary: Boundary, expires_in: Duration) -> Rig {
        let rig = Rig::new().await;
        rig.masv.seed(
            "ci-build",
            KeyState::Active,
            Duration::days(10),
            Some(expires_in),
        );
        let engine = rig.engine();
        engine.failpoints().arm(boundary);
        assert!(engine.sweep(&SweepMode::Apply).await.is_err());
        drop(engine);
        rig
    }

    /// Another instance's engine over the same MASV and Vault with a fresh
    /// database of its own (kept in the returned directory).
    async fn peer(&self) -> (Engine<FakeMasv, FakeVault>, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("peer.db")).await.unwrap();
        (self.engine_over(&store), store, dir)
    }
}

/// Vault reads (lineage path, pending path) since the last call.
fn vault_reads(vault: &FakeVault) -> (usize, usize) {
    let mut s = vault.state.lock().unwrap();
    (
        std::mem::take(&mut s.reads),
        std::mem::take(&mut s.staged_reads),
    )
}

#[tokio::test]
async fn after_a_takeover_the_pending_path_is_read_once_then_never_in_steady_state() {
    let rig = Rig::new().await;
    rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(20)),
    );
    rig.sweep().await; // instance A adopts the lineage
                       // Instance B, with a database of its own, finds A's promoted key (R3).
    let dir = tempfile::tempdir().unwrap();
    let b_store = Store::open(&dir.path().join("b.db")).await.unwrap();
    let b = rig.engine_over(&b_store);
    vault_reads(&rig.vault);
    let r = b.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    assert_eq!(vault_reads(&rig.vault), (1, 1), "one read of each path");
    let actions: Vec<AuditAction> = b_store
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, vec![AuditAction::Adopt]);
    // Steady state: the cached view, a known rotation; no Vault read at all.
    for _ in 0..2 {
        b.sweep(&SweepMode::Apply).await.unwrap();
        assert_eq!(vault_reads(&rig.vault), (0, 0));
    }
    // The replaced hand-made key retires behind A's key (proven, R1).
    rig.clock.advance(Duration::hours(2));
    b.sweep(&SweepMode::Apply).await.unwrap();
    let hand_made = rig
        .masv
        .keys_named("ci-build")
        .into_iter()
        .find(|k| !k.id.starts_with("NEW"))
        .unwrap();
    assert_eq!(hand_made.state, KeyState::Inactive);
    assert_eq!(vault_reads(&rig.vault), (0, 0));
}

#[tokio::test]
async fn a_hand_over_closes_the_open_rotation_which_the_next_sweep_adopts_from_vault() {
    let rig = Rig::crashed_at(Boundary::AfterActivate, Duration::days(2)).await;
    let engine = rig.engine();
    let handed = engine.hand_over().await.unwrap();
    assert_eq!(handed.closed.len(), 1);
    let rid = handed.closed[0].rotation_id.clone();
    let records = Records::new(rig.store.clone());
    let closed = records.rotation(&rid).await.unwrap().unwrap();
    assert_eq!(closed.phase, RotationPhase::HandedOver);
    assert!(records.in_flight().await.unwrap().rotations.is_empty());
    let rows = rig.audit().await;
    let last = rows.last().unwrap();
    assert_eq!(
        (last.action, last.rotation_id.as_deref()),
        (AuditAction::HandOver, Some(rid.as_str()))
    );
    // Nothing else changed: no call was made.
    assert_eq!(rig.vault.current("ci-build"), None);
    let (staged, _) = rig.vault.pending("ci-build").expect("still staged");
    // The next sweep judges the key afresh: staged and active, it is adopted
    // (the handed-over row is replaced) and finished, no new key created.
    let created = rig.masv.keys_named("ci-build").len();
    let r = engine.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    assert_eq!(rig.masv.keys_named("ci-build").len(), created);
    assert_eq!(rig.vault.current("ci-build").unwrap().1, staged);
    assert_eq!(rig.vault.pending("ci-build"), None);
    let adopted = records.rotation(&rid).await.unwrap().unwrap();
    assert_eq!(adopted.phase, RotationPhase::Verified);
    assert_eq!(adopted.reason, DueReason::Takeover);
    rig.assert_invariants("ci-build").await;
}

/// Instance A crashes with its new key staged (inactive); `kill` makes that key
/// dead; instance B, with a fresh database, sweeps. Returns the rig, B's
/// database, B's engine and the dead key.
async fn takeover_of_a_dead_key(
    kill: fn(&Rig, &str),
) -> (
    Rig,
    Store,
    Engine<FakeMasv, FakeVault>,
    String,
    tempfile::TempDir,
) {
    let rig = Rig::crashed_at(Boundary::AfterStore, Duration::days(40)).await;
    let (dead, _) = rig.vault.pending("ci-build").expect("staged");
    kill(&rig, &dead);
    let (b, b_store, dir) = rig.peer().await;
    let r = b.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    (rig, b_store, b, dead, dir)
}

#[tokio::test]
async fn a_dead_foreign_key_at_the_pending_path_is_discarded_and_never_toggled() {
    // Expired (and inactive): the rotation is given up, the key deleted, and
    // the lineage rotated by B in the same sweep.
    let (rig, b_store, b, dead, _dir) = takeover_of_a_dead_key(expire).await;
    assert!(rig.masv.key(&dead).is_none(), "dead inactive key deleted");
    let rows = b_store.audit(&AuditFilter::default()).await.unwrap();
    for action in [AuditAction::Abandon, AuditAction::CleanupOrphan] {
        assert!(
            rows.iter()
                .any(|a| a.action == action && a.key_id.as_deref() == Some(dead.as_str())),
            "{action:?}"
        );
    }
    let (_, current, _) = rig.vault.current("ci-build").expect("rotated by B");
    assert_ne!(current, dead);
    assert_eq!(rig.vault.pending("ci-build"), None);
    vault_reads(&rig.vault);
    b.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(vault_reads(&rig.vault), (0, 0), "nothing read again");
    rig.assert_invariants("ci-build").await;

    // Suspended: the pending entry goes, the key is never toggled nor deleted.
    let (rig, _b_store, b, dead, _dir) = takeover_of_a_dead_key(|rig, dead| {
        let mut s = rig.masv.state.lock().unwrap();
        s.keys.get_mut(dead).unwrap().0.state = KeyState::Suspended;
    })
    .await;
    assert_eq!(rig.masv.key(&dead).unwrap().state, KeyState::Suspended);
    assert!(
        !rig.masv
            .mutations()
            .iter()
            .any(|(verb, id)| id == &dead && verb != "create"),
        "a suspended key was toggled or deleted: {:?}",
        rig.masv.mutations()
    );
    assert_eq!(rig.vault.pending("ci-build"), None);
    vault_reads(&rig.vault);
    let r = b.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(vault_reads(&rig.vault), (0, 0), "known now: not read again");
    assert!(r.notes().any(|(_, n)| n
        == &super::planner::Note::Suspended {
            key_id: dead.clone()
        }));
    rig.assert_invariants("ci-build").await;
}

#[tokio::test]
async fn an_inactive_foreign_key_older_than_the_current_one_is_deleted_after_delete_after() {
    // A rotates twice and deactivates its first key; B, fresh, finds it
    // inactive, marked by a rotation it does not know, older than the current key.
    let rig = Rig::new().await;
    rig.masv.seed(
        "ci-build",
        KeyState::Active,
        Duration::days(10),
        Some(Duration::days(40)),
    );
    rig.sweep().await;
    let (_, first, _) = rig.vault.current("ci-build").unwrap();
    rig.clock.advance(Duration::days(24));
    rig.sweep().await;
    rig.clock.advance(Duration::hours(2));
    rig.sweep().await;
    assert_eq!(rig.masv.key(&first).unwrap().state, KeyState::Inactive);
    let (b, b_store, _dir) = rig.peer().await;
    let r = b.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(r.failed(), 0, "{:?}", r.outcomes);
    assert!(rig.masv.key(&first).is_some(), "not deleted at once");
    vault_reads(&rig.vault);
    rig.clock.advance(Duration::days(6));
    b.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(vault_reads(&rig.vault), (0, 0), "retiring: not read again");
    assert!(rig.masv.key(&first).is_some(), "not before delete_after");
    rig.clock.advance(Duration::days(2));
    b.sweep(&SweepMode::Apply).await.unwrap();
    assert!(rig.masv.key(&first).is_none(), "deleted delete_after later");
    let rows = b_store.audit(&AuditFilter::default()).await.unwrap();
    assert!(rows
        .iter()
        .any(|a| a.action == AuditAction::Delete && a.key_id.as_deref() == Some(first.as_str())));
    rig.assert_invariants("ci-build").await;
}
