//! Vault round trips per rotation against the real OpenBao, counted at a
//! proxy in front of it: a rotation, staged handoff included, is at most four
//! requests (docs/design.md, section 5), at adoption and after. Production's
//! Vault is a network hop away, so each request is a round trip of latency;
//! a change that adds one fails here, not only on the benchmark.

use std::time::Duration as StdDuration;

use chrono::Duration;
use masv_key_rotator::engine::SweepMode;
use masv_key_rotator::exit::Exit;
use masv_key_rotator::masv::KeyState;
use masv_key_rotator::store::AuditAction;
use masv_key_rotator::vault::{LineageSecret, VaultAuth, VaultStore};
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::vault_proxy::VaultProxy;
use crate::helpers::world::{World, TEAM};

/// The most Vault requests one rotation may make.
const PER_ROTATION: usize = 4;

/// The Vault adapter of `w`, through `proxy`.
async fn through(w: &World, proxy: &VaultProxy) -> VaultStore {
    let mut settings = w.vault.settings(VaultAuth::Token(SecretString::from(
        w.vault.root_token.clone(),
    )));
    settings.address = proxy.address.clone();
    settings.timeout = StdDuration::from_secs(5);
    VaultStore::connect(settings).await.unwrap()
}

/// The requests `proxy` saw from position `from` on, as "METHOD path code".
fn since(proxy: &VaultProxy, from: usize) -> Vec<String> {
    proxy.log().split_off(from)
}

/// Checks a sweep's Vault requests (`requests`, for `rotations` rotations)
/// and returns those about the lineages: every request names the team (its
/// lineages' own and pending paths), at most `lists` of them are the team's
/// `LIST`, and the others are at most [`PER_ROTATION`] per rotation.
fn per_rotation(what: &str, requests: &[String], rotations: usize, lists: usize) -> Vec<String> {
    assert!(
        requests.iter().all(|r| r.contains(TEAM)),
        "{what}: {requests:#?}"
    );
    let (listed, about): (Vec<&String>, Vec<&String>) =
        requests.iter().partition(|r| r.starts_with("LIST "));
    println!(
        "{what}: {} requests about the lineages, {} LIST, for {rotations} rotations",
        about.len(),
        listed.len()
    );
    assert!(listed.len() <= lists, "{what}: {listed:#?}");
    assert!(
        about.len() <= PER_ROTATION * rotations,
        "{what}: {} requests for {rotations} rotations: {about:#?}",
        about.len()
    );
    about.into_iter().cloned().collect()
}

fn rotations(r: &masv_key_rotator::engine::SweepReport) -> usize {
    r.outcomes.iter().filter(|o| o.rotated.is_some()).count()
}

#[tokio::test]
async fn a_rotation_makes_at_most_four_vault_requests() {
    let w = World::new().await;
    let names = ["ci-a", "ci-b", "ci-c", "render-x"];
    for name in names {
        w.seed(name, Duration::days(1), Some(Duration::days(60)));
    }
    let proxy = VaultProxy::start(&w.vault.address).await;
    let engine = w.engine_with_vault(through(&w, &proxy).await).await;

    // Adoption: nothing in Vault yet. One LIST tells the sweep so for all four.
    let r = engine.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(r.exit(), Exit::Success, "{:?} {:?}", r.outcomes, r.errors);
    assert_eq!(rotations(&r), names.len(), "{:?}", r.outcomes);
    // One LIST per team and sweep tells which lineages have no secret yet.
    let per_lineage = per_rotation("adoption", &since(&proxy, 0), names.len(), 1);
    // Nothing is read back: the check-and-set answers named the versions.
    assert!(
        !per_lineage.iter().any(|r| r.starts_with("GET ")),
        "{per_lineage:#?}"
    );
    // The mark was written at adoption, and every lineage holds its active key.
    let store = w.vault_store(&w.vault.root_token.clone()).await;
    for name in names {
        let meta = store.custom_metadata(TEAM, name).await.unwrap();
        assert_eq!(
            meta.get("managed_by").map(String::as_str),
            Some("masv-key-rotator"),
            "{name}"
        );
        let current = w.assert_current_works(name).await;
        assert_eq!(current.version, 1, "{name}");
        assert!(store.read_staged(TEAM, name).await.unwrap().is_none());
    }

    // The rotation after it: the views are cached, each lineage is read once
    // before acting, and the mark is not written again.
    w.clock.advance(Duration::days(24));
    let from = proxy.log().len();
    let r = engine.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(r.exit(), Exit::Success, "{:?} {:?}", r.outcomes, r.errors);
    assert_eq!(rotations(&r), names.len(), "{:?}", r.outcomes);
    // Every view was cached: no LIST.
    let per_lineage = per_rotation("rotation", &since(&proxy, from), names.len(), 0);
    assert!(
        !per_lineage
            .iter()
            .any(|r| r.starts_with("POST ") && r.contains("/metadata/")),
        "the mark is written at adoption only: {per_lineage:#?}"
    );
    for name in names {
        let current = w.assert_current_works(name).await;
        assert_eq!(current.version, 2, "{name}");
        assert_eq!(w.state(&current.secret.key_id), Some(KeyState::Active));
        let meta = store.custom_metadata(TEAM, name).await.unwrap();
        assert_eq!(
            meta.get("managed_by").map(String::as_str),
            Some("masv-key-rotator")
        );
    }
    w.assert_invariants().await;
}

#[tokio::test]
async fn a_pending_entry_left_behind_is_replaced_with_check_and_set() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(1), Some(Duration::days(60)));
    let store = w.vault_store(&w.vault.root_token.clone()).await;
    // A rotation that never finished left its staged copy (two versions of it).
    let leftover = LineageSecret {
        api_key: SecretString::from("leftover-secret-value".to_string()),
        key_id: "01LEFTOVER0000000000000000".into(),
        key_name: "ci-build".into(),
        team_id: TEAM.into(),
        expiry: None,
        created_at: None,
        rotated_at: w.now(),
        rotation_id: "01LEFTOVERROTATION00000000".into(),
    };
    assert_eq!(store.stage(&leftover).await.unwrap(), 1);
    assert_eq!(store.stage(&leftover).await.unwrap(), 2);

    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?} {:?}", r.outcomes, r.errors);
    let current = w.assert_current_works("ci-build").await;
    assert_ne!(current.secret.key_id, leftover.key_id);
    assert_ne!(
        current.secret.api_key.expose_secret(),
        leftover.api_key.expose_secret()
    );
    assert!(store.read_staged(TEAM, "ci-build").await.unwrap().is_none());
    let stage = w
        .audit()
        .await
        .into_iter()
        .find(|row| row.action == AuditAction::Stage)
        .expect("a stage row");
    assert!(
        stage.detail.contains("pending version 3"),
        "{}",
        stage.detail
    );
    w.assert_invariants().await;
}
