//! Connecting and staying logged in: the HTTP client (TLS always verified),
//! the token requests carry, and with AppRole a fresh login once two thirds of
//! the token's lease have passed, the secret id read anew each time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use vaultrs::api::auth::approle::requests::LoginWithApproleRequest;
use vaultrs::api::EndpointMiddleware;
use vaultrs::error::ClientError;
use zeroize::Zeroize;

use super::error::{from_client, local_error};
use super::transport::{Transport, VAULT_BODY_LIMIT};
use super::{Inner, VaultAuth, VaultError, VaultSettings, VaultStore};
use crate::config::SecretSource;
use crate::redact;
use crate::traffic::Traffic;

/// The token (and namespace) requests carry, as vaultrs' middleware adds them.
pub(super) type Caller = EndpointMiddleware;

/// The client requests are made with, and when it is due for a fresh login.
pub(super) struct Session {
    client: Arc<Caller>,
    /// When an AppRole token should be replaced (None: a static token).
    refresh_at: Option<Instant>,
}

impl Inner {
    fn build_client(&self, token: &str) -> Caller {
        EndpointMiddleware {
            token: token.to_string(),
            version: "v1".into(),
            wrap: None,
            namespace: self.namespace.clone(),
        }
    }

    /// A vaultrs error about `path` (a check-and-set at `cas`) as a [`VaultError`].
    pub(super) fn map_err(&self, e: ClientError, path: &str, cas: u64) -> VaultError {
        from_client(e, &self.address, path, cas)
    }

    /// Logs in with AppRole, reading the secret id now; returns the client and
    /// when to refresh it.
    async fn approle_login(
        &self,
        mount: &str,
        role_id: &str,
        secret_id: &SecretSource,
    ) -> Result<Session, VaultError> {
        let secret_id = secret_id.read().map_err(|e| VaultError::Auth {
            reason: format!("AppRole secret id: {e}"),
        })?;
        redact::remember("vault.approle_secret_id", &secret_id);
        let anonymous = self.build_client("");
        let endpoint = LoginWithApproleRequest::builder()
            .mount(mount)
            .role_id(role_id)
            .secret_id(secret_id.expose_secret())
            .build()
            .map_err(|e| local_error(&format!("auth/{mount}/login"), e))?;
        let auth = self
            .transport
            .exec_wrapped(&anonymous, endpoint)
            .await
            .and_then(|r| r.auth.ok_or(ClientError::ResponseEmptyError))
            .map_err(
                |e| match self.map_err(e, &format!("auth/{mount}/login"), 0) {
                    e @ (VaultError::Unreachable { .. } | VaultError::Sealed { .. }) => e,
                    other => VaultError::Auth {
                        reason: format!("AppRole login at auth/{mount}: {other}"),
                    },
                },
            )?;
        let mut token = auth.client_token;
        redact::remember("vault.token", &SecretString::from(token.clone()));
        let client = self.build_client(&token);
        token.zeroize();
        let lease = Duration::from_secs(auth.lease_duration.max(1));
        Ok(Session {
            client: Arc::new(client),
            refresh_at: (auth.lease_duration > 0).then(|| Instant::now() + lease * 2 / 3),
        })
    }
}

impl VaultStore {
    /// Builds the client; with AppRole, logs in.
    pub async fn connect(settings: VaultSettings) -> Result<Self, VaultError> {
        Self::connect_counted(settings, Traffic::default()).await
    }

    /// As [`VaultStore::connect`], counting every request into `traffic`.
    pub async fn connect_counted(
        settings: VaultSettings,
        traffic: Traffic,
    ) -> Result<Self, VaultError> {
        let address = settings.address.trim_end_matches('/').to_string();
        match reqwest::Url::parse(&address) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(local_error(
                    "(client settings)",
                    format!("address {address:?} is not an http(s) URL"),
                ))
            }
        }
        let transport = Transport::new(
            &address,
            http_client(settings.timeout, settings.ca_cert.as_deref())?,
            VAULT_BODY_LIMIT,
            traffic,
        );
        let inner = Inner {
            address,
            transport,
            mount: settings.mount,
            prefix: settings.path_prefix,
            namespace: settings.namespace,
            auth: settings.auth,
            session: Mutex::new(Session {
                client: Arc::new(EndpointMiddleware {
                    token: String::new(),
                    version: "v1".into(),
                    wrap: None,
                    namespace: None,
                }),
                refresh_at: None,
            }),
            refresh: tokio::sync::Mutex::new(()),
            calls: std::sync::atomic::AtomicU64::new(0),
        };
        let session = match &inner.auth {
            VaultAuth::Token(t) => {
                redact::remember("vault.token", t);
                Session {
                    client: Arc::new(inner.build_client(t.expose_secret())),
                    refresh_at: None,
                }
            }
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => inner.approle_login(mount, role_id, secret_id).await?,
        };
        *inner.session.lock().expect("vault session poisoned") = session;
        Ok(VaultStore {
            inner: Arc::new(inner),
        })
    }

    /// HTTP requests made to Vault so far (for benchmarks and metrics).
    pub fn requests(&self) -> u64 {
        self.inner.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current client, after replacing an AppRole token that is due; counts one request.
    pub(super) async fn client(&self) -> Result<Arc<Caller>, VaultError> {
        self.inner
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let due = {
            let s = self.inner.session.lock().expect("vault session poisoned");
            match s.refresh_at {
                Some(at) if Instant::now() >= at => None,
                _ => Some(s.client.clone()),
            }
        };
        if let Some(client) = due {
            return Ok(client);
        }
        let _one_at_a_time = self.inner.refresh.lock().await;
        if let VaultAuth::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.inner.auth
        {
            let fresh = self.inner.approle_login(mount, role_id, secret_id).await?;
            let client = fresh.client.clone();
            *self.inner.session.lock().expect("vault session poisoned") = fresh;
            return Ok(client);
        }
        Ok(self
            .inner
            .session
            .lock()
            .expect("vault session poisoned")
            .client
            .clone())
    }
}

/// The adapter's HTTP client: TLS always verified, the system roots plus `ca_cert`.
fn http_client(
    timeout: Duration,
    ca_cert: Option<&std::path::Path>,
) -> Result<reqwest::Client, VaultError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)));
    if let Some(path) = ca_cert {
        let invalid = |reason: String| VaultError::Other {
            path: "(client settings)".into(),
            status: None,
            reason: format!("ca_cert {}: {reason}", path.display()),
        };
        let pem = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| invalid(e.to_string()))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| VaultError::Other {
        path: "(client)".into(),
        status: None,
        reason: e.to_string(),
    })
}
