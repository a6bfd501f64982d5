//! `demo`: a full rotation cycle against the built-in MASV simulator and a real
//! Vault, in seconds.
//!
//! The simulator and the engine share a [`ManualClock`], so weeks of policy play
//! out in a few sweeps: adoption, grace and idle gating, max overlap, deletion,
//! and the next expiry-driven rotation. Vault comes from `VAULT_ADDR` and
//! `VAULT_TOKEN` (`scripts/demo` starts a throwaway OpenBao dev server).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use secrecy::SecretString;

use crate::app::{App, ProdEngine, RecordsSource, VaultSource};
use crate::clock::{Clock, ManualClock, SharedClock};
use crate::config::Policy;
use crate::engine::{ManagedTeam, SweepMode, SweepReport};
use crate::escape::escaped;
use crate::exit::{CommandError, CommandResult, Exit};
use crate::masv::{KeyState, MasvSettings, RetryPolicy};
use crate::simulator::{SeedKey, Simulator};
use crate::store::Store;
use crate::vault::{VaultAuth, VaultSettings, VaultStore};

use super::summary;

const TEAM: &str = "01DEMQ0000000000000000TEAM";
const EMAIL: &str = "owner@demo.example";

fn demo_policy() -> Policy {
    Policy {
        rotate_before_expiry: StdDuration::from_secs(7 * 86400),
        max_age: StdDuration::from_secs(90 * 86400),
        new_key_lifetime: StdDuration::from_secs(30 * 86400),
        grace_period: StdDuration::from_secs(3600),
        idle_before_deactivate: StdDuration::from_secs(15 * 60),
        max_overlap: StdDuration::from_secs(7 * 86400),
        delete_after: StdDuration::from_secs(7 * 86400),
        unused_after: StdDuration::from_secs(30 * 86400),
    }
}

fn banner(text: &str) {
    println!("\n=== {text}");
}

fn print_keys(sim: &Simulator) {
    println!(
        "  {:<28} {:<16} {:<10} {:<24} last used",
        "key id", "name", "state", "expiry"
    );
    let mut keys = sim.keys(TEAM);
    keys.sort_by(|a, b| a.name.cmp(&b.name).then(a.created_at.cmp(&b.created_at)));
    for k in keys {
        println!(
            "  {:<28} {:<16} {:<10} {:<24} {}",
            escaped(&k.id),
            escaped(&k.name),
            k.state.as_str(),
            k.expiry.map_or("never".to_string(), |e| e
                .format("%Y-%m-%d %H:%M")
                .to_string()),
            k.last_request_at.map_or("never".to_string(), |e| e
                .format("%Y-%m-%d %H:%M")
                .to_string()),
        );
    }
}

async fn sweep(engine: &ProdEngine) -> Result<SweepReport, CommandError> {
    let report = engine
        .sweep(&SweepMode::Apply)
        .await
        .map_err(CommandError::failed)?;
    print!("{}", summary::outcome(&report));
    Ok(report)
}

pub async fn run(debug: bool) -> CommandResult {
    crate::logging::init(crate::config::LogFormat::Text, "warn", debug);
    let (Ok(address), Ok(token)) = (std::env::var("VAULT_ADDR"), std::env::var("VAULT_TOKEN"))
    else {
        return Err(CommandError::usage("demo needs a Vault: set VAULT_ADDR and VAULT_TOKEN, or run scripts/demo, which starts a throwaway OpenBao"));
    };
    demo(address, SecretString::from(token)).await?;
    Ok(Exit::Success)
}

/// The demo itself; every failure is exit 1.
async fn demo(vault_address: String, vault_token: SecretString) -> Result<(), CommandError> {
    let clock = ManualClock::new(Utc::now());
    let shared: SharedClock = Arc::new(clock.clone());
    let sim = Simulator::new(shared.clone());
    sim.add_team(TEAM, "Demo Studio");
    sim.add_user(
        EMAIL,
        "demo-password",
        crate::simulator::Role::Owner,
        &[TEAM],
    );
    let now = clock.now();
    let seed = |name: &str,
                state: KeyState,
                age_days: i64,
                expires_in_days: Option<i64>,
                used_ago: Option<Duration>| {
        let mut s = SeedKey::active(name);
        s.state = state;
        s.created_at = Some(now - Duration::days(age_days));
        s.expiry = expires_in_days.map(|d| now + Duration::days(d));
        s.last_request_at = used_ago.map(|ago| now - ago);
        s.description = "created by hand in the MASV web app".into();
        sim.seed_key(TEAM, s)
    };
    let in_use = seed(
        "ci-build",
        KeyState::Active,
        25,
        Some(2),
        Some(Duration::minutes(1)),
    );
    seed(
        "render-node-1",
        KeyState::Active,
        10,
        None,
        Some(Duration::hours(5)),
    );
    seed(
        "render-node-2",
        KeyState::Suspended,
        40,
        Some(20),
        Some(Duration::days(3)),
    );
    seed(
        "ci-legacy",
        KeyState::Active,
        60,
        Some(300),
        Some(Duration::days(45)),
    );
    seed(
        "personal-laptop",
        KeyState::Active,
        5,
        None,
        Some(Duration::minutes(2)),
    );
    let running = sim
        .spawn()
        .await
        .map_err(|e| CommandError::failed(format_args!("cannot start the simulator: {e}")))?;

    let dir = tempfile::tempdir()
        .map_err(|e| CommandError::failed(format_args!("cannot make a temp dir: {e}")))?;
    let store = Store::open(&dir.path().join("state.db"))
        .await
        .map_err(CommandError::failed)?;
    let prefix = format!("masv-demo-{}", ulid::Ulid::new().to_string().to_lowercase());
    let vault = VaultStore::connect(VaultSettings {
        address: vault_address.clone(),
        mount: "secret".into(),
        path_prefix: prefix.clone(),
        ca_cert: None,
        namespace: None,
        timeout: StdDuration::from_secs(10),
        auth: VaultAuth::Token(vault_token),
    })
    .await
    .map_err(|e| CommandError::failed(format_args!("Vault at {vault_address}: {e}")))?;
    let team = ManagedTeam {
        id: TEAM.into(),
        matcher: {
            let mut b = globset::GlobSetBuilder::new();
            for p in ["ci-*", "render-node-*"] {
                b.add(globset::Glob::new(p).expect("static glob"));
            }
            b.build().expect("static globs")
        },
        policy: demo_policy(),
    };
    let masv = MasvSettings {
        base_url: running.base_url.clone(),
        email: EMAIL.into(),
        password: SecretString::from("demo-password".to_string()),
        timeout: StdDuration::from_secs(10),
        max_concurrency: 8,
        retry: RetryPolicy::default(),
    };
    let engine = App::new(
        masv,
        VaultSource::Connected(vault.clone()),
        RecordsSource::Opened(store.clone()),
        vec![team],
    )
    .clock(shared)
    .build()
    .await
    .map_err(|e| CommandError::failed(e.message()))?;

    println!("masv-key-rotator demo: a MASV simulator at {}, Vault at {vault_address} (secrets under secret/{prefix}/)", running.base_url);
    println!("Managed names: ci-*, render-node-*. Policy: rotate 7d before expiry or at 90d; new keys live 30d;");
    println!("old keys stay active ≥1h after the switch and until idle 15m (at most 7d); deleted 7d after deactivation.");
    banner("Day 0 — the keys as MASV has them");
    print_keys(&sim);
    println!(
        "  (personal-laptop matches no pattern: never touched; render-node-2 is suspended by MASV)"
    );

    banner("Day 0 — first sweep: no lineage has a secret in Vault yet, so each is adopted (rotated at once)");
    sweep(&engine).await?;
    print_keys(&sim);

    banner("Day 0 + 2h — grace period over: idle old keys are deactivated; ci-build's old key is still in use");
    clock.advance(Duration::hours(2));
    sim.touch_key(&in_use.id);
    sweep(&engine).await?;

    banner("Day 8 — ci-build's old key reached max_overlap (7d): deactivated even though busy; others past delete_after");
    clock.advance(Duration::days(8));
    sim.touch_key(&in_use.id);
    sweep(&engine).await?;

    banner("Day 16 — the last replaced key is deleted");
    clock.advance(Duration::days(8));
    sweep(&engine).await?;
    print_keys(&sim);

    banner("Day 24 — the keys the daemon made expire within 7 days: rotated again");
    clock.advance(Duration::days(8));
    sweep(&engine).await?;

    banner("What Vault holds now");
    for name in ["ci-build", "render-node-1", "render-node-2", "ci-legacy"] {
        match crate::engine::ports::SecretStore::read(&vault, TEAM, name).await {
            Ok(Some(s)) => println!(
                "  secret/{prefix}/{TEAM}/{name}: version {}, key {} (rotation {})",
                s.version, s.secret.key_id, s.secret.rotation_id
            ),
            Ok(None) => println!("  secret/{prefix}/{TEAM}/{name}: none"),
            Err(e) => println!("  secret/{prefix}/{TEAM}/{name}: {}", escaped(e)),
        }
    }
    banner("The audit log (every MASV and Vault mutation, hash-chained)");
    let rows = store
        .audit(&Default::default())
        .await
        .map_err(CommandError::failed)?;
    for r in &rows {
        println!(
            "  {} {:<14} {:<7} {:<16} {:<28} {}",
            r.at.format("%m-%d %H:%M"),
            r.action.as_str(),
            r.outcome.as_str(),
            escaped(r.key_name.as_deref().unwrap_or("-")),
            escaped(r.key_id.as_deref().unwrap_or("-")),
            escaped(&r.detail)
        );
    }
    match store.verify_chain().await.map_err(CommandError::failed)? {
        crate::store::ChainReport::Intact { rows } => {
            println!("  hash chain intact over {rows} rows")
        }
        crate::store::ChainReport::Broken {
            first_bad_id,
            reason,
        } => println!(
            "  hash chain BROKEN at row {first_bad_id}: {}",
            escaped(reason)
        ),
    }
    let mutations = sim.mutations();
    println!(
        "\nDone: {} MASV mutations, {} audit rows.",
        mutations.len(),
        rows.len()
    );
    Ok(())
}
