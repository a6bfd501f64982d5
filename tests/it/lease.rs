//! The HA lease against a real OpenBao: several keepers on one `_leader`,
//! each with its own fence, as the daemon runs them (a term is armed as soon
//! as it is taken). A monitor samples every fence every few milliseconds and
//! fails the test if two instances may mutate at the same instant.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use masv_key_rotator::clock::{Clock, SharedClock, SystemClock};
use masv_key_rotator::engine::ports::Fence;
use masv_key_rotator::lease::{LeaseFence, LeaseKeeper, LeaseRole, LeaseStatus, Timing};
use masv_key_rotator::vault::{VaultAuth, VaultStore};
use secrecy::SecretString;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::helpers::vault::TestVault;
use crate::helpers::vault_proxy::VaultProxy;

/// A clock `offset` away from the system's.
struct Skewed(chrono::Duration);

impl Clock for Skewed {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

async fn store_at(vault: &TestVault, address: &str) -> VaultStore {
    let mut settings = vault.settings(VaultAuth::Token(SecretString::from(
        vault.root_token.clone(),
    )));
    settings.address = address.to_string();
    VaultStore::connect(settings).await.unwrap()
}

/// One instance's keeper, armed on every term it takes (as the daemon does).
struct Instance {
    name: String,
    fence: LeaseFence,
    status: watch::Receiver<LeaseStatus>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Instance {
    fn start(store: VaultStore, name: &str, ttl: Duration, clock: SharedClock) -> Instance {
        let keeper = LeaseKeeper::new(store, name.to_string(), Timing { ttl }, clock);
        let fence = keeper.fence();
        let status = keeper.subscribe();
        let mut arming = keeper.subscribe();
        let armed = fence.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(keeper.run(stop.clone()));
        tokio::spawn(async move {
            while arming.changed().await.is_ok() {
                let s = arming.borrow_and_update().clone();
                if s.role == LeaseRole::Holder {
                    armed.arm(s.term);
                }
            }
        });
        Instance {
            name: name.to_string(),
            fence,
            status,
            stop,
            task,
        }
    }

    fn holds(&self) -> bool {
        self.fence.check().is_ok()
    }

    fn role(&self) -> LeaseRole {
        self.status.borrow().role
    }

    /// SIGTERM: the keeper releases the lease.
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }

    /// kill -9: the keeper stops dead; nothing is released.
    fn kill(self) -> LeaseFence {
        self.task.abort();
        self.fence
    }
}

/// Samples fences until stopped; counts instants at which two could mutate.
struct Monitor {
    overlaps: Arc<AtomicUsize>,
    samples: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    fences: Arc<std::sync::Mutex<Vec<LeaseFence>>>,
}

impl Monitor {
    fn start() -> Monitor {
        let m = Monitor {
            overlaps: Arc::default(),
            samples: Arc::default(),
            stop: Arc::default(),
            fences: Arc::default(),
        };
        let (overlaps, samples, stop, fences) = (
            m.overlaps.clone(),
            m.samples.clone(),
            m.stop.clone(),
            m.fences.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let holding = fences
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|f| f.check().is_ok())
                    .count();
                samples.fetch_add(1, Ordering::SeqCst);
                if holding > 1 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        m
    }

    fn watch(&self, fence: &LeaseFence) {
        self.fences.lock().unwrap().push(fence.clone());
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        (
            self.overlaps.load(Ordering::SeqCst),
            self.samples.load(Ordering::SeqCst),
        )
    }
}

/// Waits until one of `instances` (other than `not`) holds the lease; its index and the wait.
async fn next_holder(
    instances: &[Instance],
    not: Option<&str>,
    within: Duration,
) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        if let Some(i) = instances
            .iter()
            .position(|i| i.holds() && Some(i.name.as_str()) != not)
        {
            return (i, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "nobody took the lease within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const TTL: Duration = Duration::from_secs(3);

#[tokio::test]
async fn one_holder_a_release_hands_over_at_once_and_a_dead_holder_within_the_ttl() {
    let vault = TestVault::start().await;
    let monitor = Monitor::start();
    let mut instances = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        let i = Instance::start(
            store_at(&vault, &vault.address).await,
            name,
            TTL,
            Arc::new(SystemClock),
        );
        monitor.watch(&i.fence);
        instances.push(i);
    }
    let (first, _) = next_holder(&instances, None, Duration::from_secs(3)).await;
    // Everyone has looked at least once after a few renewals.
    tokio::time::sleep(TTL).await;
    assert_eq!(instances.iter().filter(|i| i.holds()).count(), 1);
    assert!(instances
        .iter()
        .all(|i| i.role() == LeaseRole::Holder || i.role() == LeaseRole::Standby));
    let lease = store_at(&vault, &vault.address)
        .await
        .read_lease()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.record.holder, instances[first].name);
    let ahead = lease.record.expires_at - Utc::now();
    assert!(
        ahead <= chrono::Duration::seconds(3) && ahead > chrono::Duration::seconds(1),
        "expires_at is a ttl after the last renewal: {ahead}"
    );

    // SIGTERM: released, taken by a standby at its next look.
    let stopped = instances.remove(first);
    let name = stopped.name.clone();
    stopped.stop().await;
    let (second, released_after) =
        next_holder(&instances, Some(&name), Duration::from_secs(5)).await;
    assert!(
        released_after <= TTL / 3 + Duration::from_millis(700),
        "a released lease is taken within one look: {released_after:?}"
    );

    // kill -9: nothing released; a standby waits out a whole ttl of its own clock.
    let killed = instances.remove(second);
    let killed_name = killed.name.clone();
    let dead_fence = killed.kill();
    let (_, dead_after) =
        next_holder(&instances, Some(&killed_name), Duration::from_secs(10)).await;
    assert!(
        dead_after <= TTL + 2 * (TTL / 3) + Duration::from_millis(500),
        "takeover after a kill within ttl + two looks: {dead_after:?}"
    );
    assert!(
        dead_fence.check().is_err(),
        "the dead holder's term has run out"
    );
    let (overlaps, samples) = monitor.finish();
    assert!(samples > 1000, "{samples}");
    assert_eq!(overlaps, 0, "two instances could mutate at once");
    eprintln!("takeover: released {released_after:?}, killed {dead_after:?}");
}

#[tokio::test]
async fn skewed_clocks_never_let_two_instances_mutate_at_once() {
    let vault = TestVault::start().await;
    let ttl = Duration::from_secs(6);
    // Six seconds apart at most: within what the rules tolerate (ttl + margin = 8 s).
    let skews = [-3i64, 0, 3];
    let monitor = Monitor::start();
    let start = |n: usize| {
        let vault = &vault;
        async move {
            Instance::start(
                store_at(vault, &vault.address).await,
                &format!("node-{n}"),
                ttl,
                Arc::new(Skewed(chrono::Duration::seconds(skews[n]))),
            )
        }
    };
    let mut instances = Vec::new();
    for n in 0..3 {
        let i = start(n).await;
        monitor.watch(&i.fence);
        instances.push(Some(i));
    }
    let mut takeovers = 0;
    let mut worst = Duration::ZERO;
    for round in 0..3 {
        let live: Vec<&Instance> = instances.iter().flatten().collect();
        let started = Instant::now();
        let holder = loop {
            if let Some(h) = live.iter().position(|i| i.holds()) {
                break h;
            }
            assert!(started.elapsed() < 3 * ttl, "round {round}: nobody holds");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let name = live[holder].name.clone();
        let slot = instances
            .iter()
            .position(|i| i.as_ref().is_some_and(|i| i.name == name))
            .unwrap();
        // kill it dead, then bring it back with the same name and skew
        instances[slot].take().unwrap().kill();
        let killed_at = Instant::now();
        let fresh = start(slot).await;
        monitor.watch(&fresh.fence);
        instances[slot] = Some(fresh);
        loop {
            let holders: Vec<&Instance> =
                instances.iter().flatten().filter(|i| i.holds()).collect();
            if let Some(h) = holders.first() {
                takeovers += 1;
                worst = worst.max(killed_at.elapsed());
                eprintln!(
                    "round {round}: {} took over from {name} after {:?}",
                    h.name,
                    killed_at.elapsed()
                );
                break;
            }
            assert!(killed_at.elapsed() < 3 * ttl, "round {round}: no takeover");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let (overlaps, _) = monitor.finish();
    assert_eq!(
        overlaps, 0,
        "skewed clocks let two instances mutate at once"
    );
    assert_eq!(takeovers, 3);
    assert!(
        worst <= ttl + 2 * (ttl / 3) + Duration::from_secs(1),
        "{worst:?}"
    );
}

#[tokio::test]
async fn a_holder_cut_off_from_vault_stops_within_the_ttl_and_a_standby_takes_over() {
    let vault = TestVault::start().await;
    let proxy = VaultProxy::start(&vault.address).await;
    let monitor = Monitor::start();
    let cut = Instance::start(
        store_at(&vault, &proxy.address).await,
        "node-a",
        TTL,
        Arc::new(SystemClock),
    );
    monitor.watch(&cut.fence);
    next_holder(std::slice::from_ref(&cut), None, Duration::from_secs(3)).await;
    let other = Instance::start(
        store_at(&vault, &vault.address).await,
        "node-b",
        TTL,
        Arc::new(SystemClock),
    );
    monitor.watch(&other.fence);
    tokio::time::sleep(TTL / 2).await;
    assert!(cut.holds() && !other.holds());

    proxy.cut(true);
    let at = Instant::now();
    while cut.holds() {
        assert!(
            at.elapsed() < TTL,
            "the cut-off holder kept mutating past the ttl"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped_after = at.elapsed();
    let instances = [other];
    let (_, taken_after) = next_holder(&instances, None, Duration::from_secs(10)).await;
    assert!(
        stopped_after <= TTL * 2 / 3 + Duration::from_millis(200),
        "{stopped_after:?}"
    );
    assert!(taken_after + stopped_after <= TTL + 2 * (TTL / 3) + Duration::from_millis(500));
    assert_eq!(cut.role(), LeaseRole::Standby);
    assert!(cut
        .status
        .borrow()
        .lost_because
        .as_deref()
        .is_some_and(|w| w.contains("cannot renew")));

    // Back in touch, it stays a standby: the lease is someone else's now.
    proxy.cut(false);
    tokio::time::sleep(TTL).await;
    assert!(!cut.holds() && instances[0].holds());
    let (overlaps, _) = monitor.finish();
    assert_eq!(overlaps, 0);
    eprintln!("cut off: stopped after {stopped_after:?}, standby took over {taken_after:?} later");
}

#[tokio::test]
async fn lease_traffic_is_one_write_per_third_of_the_ttl_per_holder_and_one_read_per_standby() {
    let vault = TestVault::start().await;
    let holder_proxy = VaultProxy::start(&vault.address).await;
    let standby_proxy = VaultProxy::start(&vault.address).await;
    let holder = Instance::start(
        store_at(&vault, &holder_proxy.address).await,
        "node-a",
        TTL,
        Arc::new(SystemClock),
    );
    next_holder(std::slice::from_ref(&holder), None, Duration::from_secs(3)).await;
    let standby = Instance::start(
        store_at(&vault, &standby_proxy.address).await,
        "node-b",
        TTL,
        Arc::new(SystemClock),
    );
    let (h0, s0) = (holder_proxy.log().len(), standby_proxy.log().len());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let lease_calls = |p: &VaultProxy, from: usize| {
        p.log()[from..]
            .iter()
            .filter(|l| l.contains("/_leader"))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let h = lease_calls(&holder_proxy, h0);
    let s = lease_calls(&standby_proxy, s0);
    // 6 s at one per second, give or take one tick at either end.
    assert!(
        h.iter().all(|m| m == "POST" || m == "PUT"),
        "holder only writes: {h:?}"
    );
    assert!((5..=7).contains(&h.len()), "holder writes: {h:?}");
    assert!(s.iter().all(|m| m == "GET"), "standby only reads: {s:?}");
    assert!((5..=7).contains(&s.len()), "standby reads: {s:?}");
    assert!(holder.holds() && !standby.holds());
}
