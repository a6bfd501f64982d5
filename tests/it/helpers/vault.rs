//! A real Vault for a test: the local OpenBao image started with testcontainers
//! (one container per test), or the Vault in `VAULT_ADDR`/`VAULT_TOKEN` with a
//! fresh path prefix per test.

use std::time::Duration;

use masv_key_rotator::vault::{VaultAuth, VaultSettings, VaultStore};
use secrecy::SecretString;
use serde_json::{json, Value};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage};

pub const IMAGE: &str = "masv-key-rotator/openbao";
pub const TAG: &str = "2.7.2";

pub struct TestVault {
    pub address: String,
    pub root_token: String,
    pub mount: String,
    pub prefix: String,
    http: reqwest::Client,
    _container: Option<ContainerAsync<GenericImage>>,
}

impl TestVault {
    pub async fn start() -> TestVault {
        let prefix = format!("masv-test-{}", ulid::Ulid::new().to_string().to_lowercase());
        if let (Ok(address), Ok(token)) =
            (std::env::var("VAULT_ADDR"), std::env::var("VAULT_TOKEN"))
        {
            return TestVault {
                address,
                root_token: token,
                mount: "secret".into(),
                prefix,
                http: reqwest::Client::new(),
                _container: None,
            };
        }
        let container = GenericImage::new(IMAGE, TAG)
            .with_exposed_port(8200.tcp())
            .with_wait_for(WaitFor::message_on_stdout(
                "Development mode should NOT be used",
            ))
            .start()
            .await
            .unwrap_or_else(|e| {
                panic!("cannot start {IMAGE}:{TAG} (run scripts/openbao-image first): {e}")
            });
        let port = container
            .get_host_port_ipv4(8200)
            .await
            .expect("mapped port");
        let vault = TestVault {
            address: format!("http://127.0.0.1:{port}"),
            root_token: "root".into(),
            mount: "secret".into(),
            prefix,
            http: reqwest::Client::new(),
            _container: Some(container),
        };
        vault.wait_ready().await;
        vault
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(r) = self
                .http
                .get(format!("{}/v1/sys/health", self.address))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("Vault at {} never became healthy", self.address);
    }

    pub fn settings(&self, auth: VaultAuth) -> VaultSettings {
        VaultSettings {
            address: self.address.clone(),
            mount: self.mount.clone(),
            path_prefix: self.prefix.clone(),
            ca_cert: None,
            namespace: None,
            timeout: Duration::from_secs(5),
            auth,
        }
    }

    pub async fn store_with_token(&self, token: &str) -> VaultStore {
        VaultStore::connect(self.settings(VaultAuth::Token(SecretString::from(token.to_string()))))
            .await
            .unwrap()
    }

    pub async fn store(&self) -> VaultStore {
        self.store_with_token(&self.root_token).await
    }

    /// A raw call with the root token.
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.address))
            .header("X-Vault-Token", &self.root_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Writes a policy and issues a token holding only it.
    pub async fn token_with_policy(&self, hcl: &str) -> String {
        let name = format!("p-{}", ulid::Ulid::new().to_string().to_lowercase());
        self.api(
            reqwest::Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({"policy": hcl})),
        )
        .await;
        let r = self
            .api(
                reqwest::Method::POST,
                "auth/token/create",
                Some(json!({"policies": [name], "ttl": "1h"})),
            )
            .await;
        r["auth"]["client_token"].as_str().unwrap().to_string()
    }

    /// A token that can read but not write the test's prefix.
    pub async fn read_only_token(&self) -> String {
        let hcl = format!(
            "path \"{m}/data/{p}/*\" {{ capabilities = [\"read\"] }}\npath \"{m}/metadata/{p}/*\" {{ capabilities = [\"read\"] }}",
            m = self.mount,
            p = self.prefix
        );
        self.token_with_policy(&hcl).await
    }

    /// A token that can write the test's prefix.
    pub fn writer_policy(&self) -> String {
        format!(
            "path \"{m}/data/{p}/*\" {{ capabilities = [\"create\", \"update\", \"read\"] }}\npath \"{m}/metadata/{p}/*\" {{ capabilities = [\"create\", \"update\", \"read\"] }}",
            m = self.mount,
            p = self.prefix
        )
    }

    /// Enables AppRole at a fresh mount with a role bound to `policy_hcl`; returns (mount, role_id, secret_id).
    pub async fn approle(&self, policy_hcl: &str) -> (String, String, String) {
        let mount = format!("approle-{}", ulid::Ulid::new().to_string().to_lowercase());
        let policy = format!("p-{}", ulid::Ulid::new().to_string().to_lowercase());
        self.api(
            reqwest::Method::PUT,
            &format!("sys/policies/acl/{policy}"),
            Some(json!({"policy": policy_hcl})),
        )
        .await;
        self.api(
            reqwest::Method::POST,
            &format!("sys/auth/{mount}"),
            Some(json!({"type": "approle"})),
        )
        .await;
        self.api(
            reqwest::Method::POST,
            &format!("auth/{mount}/role/rotator"),
            Some(json!({"token_policies": [policy], "token_ttl": "10m"})),
        )
        .await;
        let role = self
            .api(
                reqwest::Method::GET,
                &format!("auth/{mount}/role/rotator/role-id"),
                None,
            )
            .await;
        let secret = self
            .api(
                reqwest::Method::POST,
                &format!("auth/{mount}/role/rotator/secret-id"),
                None,
            )
            .await;
        (
            mount,
            role["data"]["role_id"].as_str().unwrap().to_string(),
            secret["data"]["secret_id"].as_str().unwrap().to_string(),
        )
    }

    /// Seals the Vault (only for a test-owned container).
    pub async fn seal(&self) {
        assert!(
            self._container.is_some(),
            "refusing to seal a Vault the test does not own"
        );
        self.api(reqwest::Method::PUT, "sys/seal", None).await;
    }

    /// The same Vault with a fresh path prefix (a clean slate without a new container).
    pub fn renamed(mut self, suffix: &str) -> TestVault {
        self.prefix = format!("{}-{suffix}", self.prefix).to_lowercase();
        self
    }

    pub fn owns_container(&self) -> bool {
        self._container.is_some()
    }
}

/// An address where nothing listens.
pub fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
