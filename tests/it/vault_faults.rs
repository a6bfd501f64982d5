//! Vault faults at each step of a rotation (through a fault-injecting proxy):
//! the read before rotating, the staging write, the promotion to the
//! lineage's path, the pending entry's removal, and the custom metadata
//! written at adoption; 5xx, sealed, slow, a conflicting write by someone
//! else, and a write that lands after its sender gave up. Every case checks
//! that its fault was met: a step that no longer sends the faulted request
//! fails the case instead of passing it unexercised. Each survived, with the expected
//! exit code, and settled with every invariant intact: the lineage's path
//! never names a key that is not active.
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
    /// Faulted during the adoption (the lineage's first write) instead of
    /// during the rotation after it.
    adoption: bool,
}

fn cases() -> Vec<Case> {
    let c = |name, method, path, fault, exit, rotated| Case {
        name,
        method,
        path,
        fault,
        exit,
        rotated,
        adoption: false,
    };
    let at_adoption = |case: Case| Case {
        adoption: true,
        ..case
    };
    let internal = VaultFault::Status(500, "internal error");
    let sealed = VaultFault::Status(503, "Vault is sealed");
    let slow = VaultFault::Delay(StdDuration::from_millis(400));
    // Paths: "/data/" is any secret; PENDING the staged copy; LINEAGE the
    // lineage's own path (filled in per case: it holds the case's prefix).
    let late = VaultFault::LateWrite(StdDuration::from_secs(6));
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
            "stage/500",
            Method::POST,
            PENDING,
            internal.clone(),
            Exit::ActionFailed,
            false,
        ),
        c(
            "stage/sealed",
            Method::POST,
            PENDING,
            sealed.clone(),
            Exit::Unreachable,
            false,
        ),
        c(
            "stage/slow",
            Method::POST,
            PENDING,
            slow.clone(),
            Exit::Success,
            true,
        ),
        c(
            "stage/lands late",
            Method::POST,
            PENDING,
            late.clone(),
            Exit::Unreachable,
            false,
        ),
        c(
            "promote/500",
            Method::POST,
            LINEAGE,
            internal.clone(),
            Exit::ActionFailed,
            false,
        ),
        c(
            "promote/sealed",
            Method::POST,
            LINEAGE,
            sealed.clone(),
            Exit::Unreachable,
            false,
        ),
        c(
            "promote/slow",
            Method::POST,
            LINEAGE,
            slow.clone(),
            Exit::Success,
            true,
        ),
        c(
            "promote/someone else wrote first",
            Method::POST,
            LINEAGE,
            VaultFault::ForeignWriteFirst,
            Exit::ActionFailed,
            false,
        ),
        c(
            "promote/lands late",
            Method::POST,
            LINEAGE,
            late,
            Exit::Unreachable,
            false,
        ),
        // The custom metadata is written at adoption only, before the first
        // version: a failed mark stops the promotion, retried next sweep.
        at_adoption(c(
            "adoption metadata/500",
            Method::POST,
            "/metadata/",
            internal.clone(),
            Exit::ActionFailed,
            false,
        )),
        at_adoption(c(
            "adoption metadata/sealed",
            Method::POST,
            "/metadata/",
            sealed.clone(),
            Exit::Unreachable,
            false,
        )),
        at_adoption(c(
            "adoption promote/500",
            Method::POST,
            LINEAGE,
            internal.clone(),
            Exit::ActionFailed,
            false,
        )),
        c(
            "unstage/500",
            Method::DELETE,
            "/metadata/",
            internal,
            Exit::Success,
            true,
        ),
        c(
            "unstage/sealed",
            Method::DELETE,
            "/metadata/",
            sealed,
            Exit::Success,
            true,
        ),
    ]
}

/// The staged copy's path, whatever the prefix.
const PENDING: &str = "/_pending/";
/// Stands for the lineage's own path; see [`target`].
const LINEAGE: &str = "LINEAGE";

/// The path pattern a case's fault is injected at: the lineage's own path is
/// `<prefix>/<team>/`, which the pending path (`<prefix>/_pending/<team>/`) never contains.
fn target(case: &Case, prefix: &str) -> String {
    if case.path == LINEAGE {
        format!("/data/{prefix}/{}/", crate::helpers::world::TEAM)
    } else {
        case.path.to_string()
    }
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
        let before = if case.adoption {
            None
        } else {
            w.sweep().await; // adopted: the lineage's Vault view is now cached
            w.clock.advance(Duration::days(24)); // the adopted key falls due
            w.current("ci-build").await
        };
        let proxy = VaultProxy::start(&w.vault.address).await;
        let mut settings = w.vault.settings(VaultAuth::Token(SecretString::from(
            w.vault.root_token.clone(),
        )));
        settings.address = proxy.address.clone();
        settings.timeout = StdDuration::from_secs(2);
        let proxied = VaultStore::connect(settings).await.unwrap();
        let at = target(&case, &w.vault.prefix);
        proxy.inject(case.method.clone(), &at, case.fault.clone(), 1);
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
        assert_eq!(proxy.unmet(), 0, "{}: fault never met", case.name);
        let after = w.current("ci-build").await;
        let rotated = after.as_ref().is_some_and(|a| {
            before
                .as_ref()
                .is_none_or(|b| a.secret.key_id != b.secret.key_id)
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
