//! Vault faults at each step of a rotation (through a fault-injecting proxy):
//! the read before rotating, the data write, the metadata write, the read-back;
//! 5xx, sealed, slow, and a conflicting write by someone else. Each survived,
//! with the expected exit code, and settled with every invariant intact.
//! Consumers read the lineage's Vault path (not through the proxy) and call
//! MASV with its key throughout each case: none may ever be refused.

use std::time::Duration as StdDuration;

use chrono::Duration;
use masv_key_rotator::engine::SweepMode;
use masv_key_rotator::exit::Exit;
use masv_key_rotator::masv::KeyState;
use masv_key_rotator::vault::{VaultAuth, VaultStore};
use reqwest::Method;
use secrecy::SecretString;

use crate::helpers::consumers::{Rig, Tally, QUICK_PACE};
use crate::helpers::vault::TestVault;
use crate::helpers::vault_proxy::{VaultFault, VaultProxy};
use crate::helpers::world::World;

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    fault: VaultFault,
    exit: Exit,
    /// Whether the faulted sweep still completes the rotation.
    rotated: bool,
}

fn cases() -> Vec<Case> {
    let c = |name, method, path, fault, exit, rotated| Case {
        name,
        method,
        path,
        fault,
        exit,
        rotated,
    };
    let internal = VaultFault::Status(500, "internal error");
    let sealed = VaultFault::Status(503, "Vault is sealed");
    let slow = VaultFault::Delay(StdDuration::from_millis(400));
    vec![
        c(
            "read/500",
            Method::GET,
            "/data/",
            internal.clone(),
            Exit::ActionFailed,
            false,
        ),
        c(
            "read/sealed",
            Method::GET,
            "/data/",
            sealed.clone(),
            Exit::Unreachable,
            false,
        ),
        c(
            "read/slow",
            Method::GET,
            "/data/",
            slow.clone(),
            Exit::Success,
            true,
        ),
        c(
            "write/500",
            Method::POST,
            "/data/",
            internal.clone(),
            Exit::ActionFailed,
            false,
        ),
        c(
            "write/sealed",
            Method::POST,
            "/data/",
            sealed.clone(),
            Exit::Unreachable,
            false,
        ),
        c(
            "write/slow",
            Method::POST,
            "/data/",
            slow.clone(),
            Exit::Success,
            true,
        ),
        c(
            "write/someone else wrote first",
            Method::POST,
            "/data/",
            VaultFault::ForeignWriteFirst,
            Exit::ActionFailed,
            false,
        ),
        c(
            "metadata/500",
            Method::POST,
            "/metadata/",
            internal.clone(),
            Exit::Success,
            true,
        ),
        c(
            "metadata/sealed",
            Method::POST,
            "/metadata/",
            sealed.clone(),
            Exit::Success,
            true,
        ),
        c(
            "read-back/500",
            Method::GET,
            "version=",
            internal,
            Exit::Success,
            true,
        ),
        c(
            "read-back/sealed",
            Method::GET,
            "version=",
            sealed,
            Exit::Success,
            true,
        ),
        c(
            "read-back/slow",
            Method::GET,
            "version=",
            slow,
            Exit::Success,
            true,
        ),
    ]
}

#[tokio::test]
async fn every_vault_fault_at_every_step_is_survived() {
    let mut vault = Some(TestVault::start().await);
    let mut n = 0;
    let mut consumed = Tally::default();
    for case in cases() {
        let w = World::with_vault(vault.take().unwrap().renamed(&format!("vf{n}"))).await;
        let old = w.seed("ci-build", Duration::days(1), Some(Duration::days(60)));
        let consumers = Rig::new(&w, QUICK_PACE)
            .await
            .reading_vault(&["ci-build".to_string()], 2);
        w.sweep().await; // adopted: the lineage's Vault view is now cached
        let before = w.current("ci-build").await.unwrap();
        w.clock.advance(Duration::days(24)); // the adopted key falls due
        let proxy = VaultProxy::start(&w.vault.address).await;
        let mut settings = w.vault.settings(VaultAuth::Token(SecretString::from(
            w.vault.root_token.clone(),
        )));
        settings.address = proxy.address.clone();
        settings.timeout = StdDuration::from_secs(2);
        let proxied = VaultStore::connect(settings).await.unwrap();
        proxy.inject(case.method.clone(), case.path, case.fault.clone(), 1);
        let r = w
            .engine_with_vault(proxied)
            .await
            .sweep(&SweepMode::Apply)
            .await
            .unwrap();
        assert_eq!(
            r.exit(),
            case.exit,
            "{}: {:?} {:?}\n{:#?}",
            case.name,
            r.outcomes,
            r.errors,
            proxy.log()
        );
        let after = w.current("ci-build").await;
        let rotated = after.as_ref().is_some_and(|a| {
            a.secret.key_id != before.secret.key_id
                && w.state(&a.secret.key_id) == Some(KeyState::Active)
        });
        assert_eq!(rotated, case.rotated, "{}", case.name);
        w.assert_safe_after_crash().await;
        // without the fault the next sweeps settle everything
        for _ in 0..3 {
            w.sweep().await;
        }
        let r = w.sweep().await;
        assert_eq!(
            r.exit(),
            Exit::Success,
            "{} (settled): {:?} {:?}",
            case.name,
            r.outcomes,
            r.errors
        );
        w.assert_invariants().await;
        let current = w.current("ci-build").await.unwrap();
        assert_eq!(
            w.state(&current.secret.key_id),
            Some(KeyState::Active),
            "{}",
            case.name
        );
        let _ = old;
        consumed.add(consumers.stop().await.in_case(case.name));
        n += 1;
        let World { vault: v, .. } = w;
        vault = Some(v);
    }
    println!("Vault fault matrix: {n} cases survived");
    println!("Vault fault matrix consumers: {consumed}");
    consumed.assert_no_refusals("Vault fault matrix");
}
