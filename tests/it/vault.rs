//! The Vault adapter against a real OpenBao: write + read-back, check-and-set,
//! history, permissions, AppRole, sealed and unreachable servers.

use chrono::{TimeZone, Utc};
use masv_key_rotator::vault::{LineageSecret, VaultAuth, VaultError, VaultStore};
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::vault::{dead_address, TestVault};

const TEAM: &str = "01FB4S68W7RAW4M89801H1C4CR";

fn secret(name: &str, key: &str, key_id: &str) -> LineageSecret {
    LineageSecret {
        api_key: SecretString::from(key.to_string()),
        key_id: key_id.into(),
        key_name: name.into(),
        team_id: TEAM.into(),
        expiry: Some(Utc.with_ymd_and_hms(2026, 12, 24, 16, 57, 32).unwrap()),
        created_at: None,
        rotated_at: Utc.with_ymd_and_hms(2026, 11, 23, 1, 2, 3).unwrap(),
        rotation_id: "01ROTATION0000000000000000".into(),
    }
}

#[tokio::test]
async fn write_read_back_fields_history_and_metadata() {
    let vault = TestVault::start().await;
    let store = vault.store().await;
    assert!(store.read(TEAM, "ci-build").await.unwrap().is_none());
    let v1 = store
        .write_verified(&secret("ci-build", "first-secret-value", "K1"), 0)
        .await
        .unwrap();
    assert_eq!(v1, 1);
    let read = store.read(TEAM, "ci-build").await.unwrap().unwrap();
    assert_eq!(read.version, 1);
    assert_eq!(read.secret.api_key.expose_secret(), "first-secret-value");
    assert_eq!(read.secret.key_id, "K1");
    assert_eq!(read.secret.key_name, "ci-build");
    assert_eq!(read.secret.team_id, TEAM);
    assert_eq!(
        read.secret.expiry,
        Some(Utc.with_ymd_and_hms(2026, 12, 24, 16, 57, 32).unwrap())
    );
    assert_eq!(read.secret.created_at, None);
    assert_eq!(read.secret.rotation_id, "01ROTATION0000000000000000");
    // the raw document: the SPEC's field names and RFC 3339 UTC
    let raw = vault
        .api(
            reqwest::Method::GET,
            &format!("{}/data/{}/{TEAM}/ci-build", vault.mount, vault.prefix),
            None,
        )
        .await;
    let data = &raw["data"]["data"];
    assert_eq!(data["expiry"], "2026-12-24T16:57:32.000Z");
    assert_eq!(data["created_at"], "0001-01-01T00:00:00Z");
    assert_eq!(data["rotated_at"], "2026-11-23T01:02:03.000Z");
    for f in [
        "api_key",
        "key_id",
        "key_name",
        "team_id",
        "expiry",
        "created_at",
        "rotated_at",
        "rotation_id",
    ] {
        assert!(data.get(f).is_some(), "missing field {f}");
    }
    let meta = store.custom_metadata(TEAM, "ci-build").await.unwrap();
    assert_eq!(
        meta.get("managed_by").map(String::as_str),
        Some("masv-key-rotator")
    );

    let v2 = store
        .write_verified(&secret("ci-build", "second-secret-value", "K2"), 1)
        .await
        .unwrap();
    assert_eq!(v2, 2);
    let versions = store.versions(TEAM, "ci-build").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let old = store.read_version(TEAM, "ci-build", 1).await.unwrap();
    assert_eq!(old.secret.key_id, "K1", "earlier versions stay");
}

#[tokio::test]
async fn check_and_set_conflicts_are_told_apart() {
    let vault = TestVault::start().await;
    let store = vault.store().await;
    store.write(&secret("ci", "a", "K1"), 0).await.unwrap();
    let exists = store.write(&secret("ci", "b", "K2"), 0).await.unwrap_err();
    assert!(
        matches!(exists, VaultError::CasConflict { expected: 0, .. }),
        "{exists}"
    );
    store.write(&secret("ci", "c", "K3"), 1).await.unwrap();
    let stale = store.write(&secret("ci", "d", "K4"), 1).await.unwrap_err();
    assert!(
        matches!(stale, VaultError::CasConflict { expected: 1, .. }),
        "{stale}"
    );
    assert_eq!(
        store.read(TEAM, "ci").await.unwrap().unwrap().secret.key_id,
        "K3"
    );
}

#[tokio::test]
async fn read_only_token_is_permission_denied() {
    let vault = TestVault::start().await;
    let root = vault.store().await;
    root.write(&secret("ci", "a", "K1"), 0).await.unwrap();
    root.check_write_capability().await.unwrap();
    let token = vault.read_only_token().await;
    let ro = vault.store_with_token(&token).await;
    assert_eq!(
        ro.read(TEAM, "ci").await.unwrap().unwrap().secret.key_id,
        "K1"
    );
    let err = ro.write(&secret("ci", "b", "K2"), 1).await.unwrap_err();
    assert!(matches!(err, VaultError::PermissionDenied { .. }), "{err}");
    let cap = ro.check_write_capability().await.unwrap_err();
    assert!(matches!(cap, VaultError::PermissionDenied { .. }), "{cap}");
    assert!(!cap.to_string().contains(&token));
    let writer = vault
        .store_with_token(&vault.token_with_policy(&vault.writer_policy()).await)
        .await;
    writer.check_write_capability().await.unwrap();
}

#[tokio::test]
async fn approle_login_writes_and_a_wrong_secret_id_is_rejected() {
    let vault = TestVault::start().await;
    let (mount, role_id, secret_id) = vault.approle(&vault.writer_policy()).await;
    let store = VaultStore::connect(vault.settings(VaultAuth::AppRole {
        mount: mount.clone(),
        role_id: role_id.clone(),
        secret_id: SecretString::from(secret_id.clone()).into(),
    }))
    .await
    .unwrap();
    store.check_write_capability().await.unwrap();
    store
        .write_verified(&secret("ci", "via-approle", "K1"), 0)
        .await
        .unwrap();
    let err = VaultStore::connect(vault.settings(VaultAuth::AppRole {
        mount,
        role_id,
        secret_id: SecretString::from("not-the-secret-id".to_string()).into(),
    }))
    .await
    .err()
    .expect("a wrong secret_id must fail");
    assert!(matches!(err, VaultError::Auth { .. }), "{err}");
    assert!(!err.to_string().contains(&secret_id));
}

#[tokio::test]
async fn sealed_vault_is_sealed_and_unreachable() {
    let vault = TestVault::start().await;
    if !vault.owns_container() {
        return; // never seal a Vault the tests do not own
    }
    let store = vault.store().await;
    store.health().await.unwrap();
    vault.seal().await;
    let health = store.health().await.unwrap_err();
    assert!(matches!(health, VaultError::Sealed { .. }), "{health}");
    let write = store.write(&secret("ci", "a", "K1"), 0).await.unwrap_err();
    assert!(matches!(write, VaultError::Sealed { .. }), "{write}");
    assert!(write.is_unreachable());
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let vault = TestVault::start().await;
    let mut settings = vault.settings(VaultAuth::Token(SecretString::from("root".to_string())));
    settings.address = dead_address();
    let store = VaultStore::connect(settings).await.unwrap();
    let err = store.read(TEAM, "ci").await.unwrap_err();
    assert!(matches!(err, VaultError::Unreachable { .. }), "{err}");
    assert!(err.is_unreachable());
    assert!(store.health().await.unwrap_err().is_unreachable());
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors() {
    let vault = TestVault::start().await;
    let store = vault.store().await;
    let s = secret("ci", "super-secret-key-value", "K1");
    assert!(!format!("{s:?}").contains("super-secret-key-value"));
    store.write(&s, 0).await.unwrap();
    let conflict = store.write(&s, 0).await.unwrap_err();
    assert!(!conflict.to_string().contains("super-secret-key-value"));
    assert!(!format!("{conflict:?}").contains("super-secret-key-value"));
    let read = store.read(TEAM, "ci").await.unwrap().unwrap();
    assert!(!format!("{read:?}").contains("super-secret-key-value"));
}

#[tokio::test]
async fn key_names_that_would_escape_the_prefix_are_refused() {
    let vault = TestVault::start().await;
    let store = vault.store().await;
    for name in ["ci-../../other", "..", "ci/inner", "ci\u{7}bell"] {
        let err = store.write(&secret(name, "k", "K1"), 0).await.unwrap_err();
        assert!(
            matches!(err, VaultError::Malformed { .. }),
            "{name:?}: {err}"
        );
        let err = store.read(TEAM, name).await.unwrap_err();
        assert!(
            matches!(err, VaultError::Malformed { .. }),
            "{name:?}: {err}"
        );
    }
}

#[tokio::test]
async fn a_deleted_latest_version_is_an_error_not_an_absent_secret() {
    let vault = TestVault::start().await;
    let store = vault.store().await;
    store.write(&secret("ci", "a", "K1"), 0).await.unwrap();
    vault
        .api(
            reqwest::Method::DELETE,
            &format!("{}/data/{}/{TEAM}/ci", vault.mount, vault.prefix),
            None,
        )
        .await;
    let err = store.read(TEAM, "ci").await.unwrap_err();
    assert!(
        matches!(err, VaultError::Malformed { .. }) && err.to_string().contains("deleted"),
        "{err}"
    );
}
