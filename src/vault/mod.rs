//! The Vault adapter (vaultrs; works with OpenBao too).
//!
//! A lineage's secret lives in KV v2 at `<mount>/data/<path_prefix>/<team_id>/<name>`
//! (docs/design.md, section 5). Every write is a check-and-set against the version the daemon last
//! saw and is read back and compared field by field before anyone relies on it;
//! earlier versions stay in the KV history. The secret's custom metadata says
//! `managed_by = masv-key-rotator`.
//!
//! TLS verification is always on (the `VAULT_SKIP_VERIFY` environment variable is
//! ignored); `ca_cert` adds a trusted root. An AppRole token is replaced by a fresh
//! login once two thirds of its lease have passed; each login reads the secret id
//! anew, so a rotated secret id file is used without a restart.
//!
//! Requests are vaultrs endpoints sent through [`transport`], which bounds every
//! answer's size. Error text from Vault is cleaned of every secret the daemon
//! holds before it becomes an error.

mod error;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rustify::endpoint::Endpoint;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use vaultrs::api::auth::approle::requests::LoginWithApproleRequest;
use vaultrs::api::kv2::requests::{
    ReadSecretMetadataRequest, ReadSecretRequest, SetSecretMetadataRequest, SetSecretRequest,
    SetSecretRequestOptions,
};
use vaultrs::api::kv2::responses::ReadSecretMetadataResponse;
use vaultrs::api::EndpointMiddleware;
use vaultrs::error::ClientError;
use zeroize::Zeroize;

pub use error::VaultError;
pub use transport::VAULT_BODY_LIMIT;
use transport::{AnswerRefused, Transport};

use crate::bounded_body::read_limited;

use crate::config::{SecretSource, VaultConfig, VaultCredentials};
use crate::error_chain::describe;
use crate::redact;

/// How the daemon authenticates to Vault.
pub enum VaultAuth {
    Token(SecretString),
    AppRole {
        mount: String,
        role_id: String,
        /// Read again at every login.
        secret_id: SecretSource,
    },
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("Token(..)"),
            VaultAuth::AppRole { mount, role_id, .. } => write!(
                f,
                "AppRole {{ mount: {mount:?}, role_id: {role_id:?}, .. }}"
            ),
        }
    }
}

impl From<VaultCredentials> for VaultAuth {
    fn from(c: VaultCredentials) -> Self {
        match c {
            VaultCredentials::Token(t) => VaultAuth::Token(t),
            VaultCredentials::AppRole {
                mount,
                role_id,
                secret_id,
            } => VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            },
        }
    }
}

/// Everything the adapter needs.
#[derive(Debug)]
pub struct VaultSettings {
    pub address: String,
    pub mount: String,
    pub path_prefix: String,
    pub ca_cert: Option<PathBuf>,
    pub namespace: Option<String>,
    pub timeout: Duration,
    pub auth: VaultAuth,
}

impl VaultSettings {
    pub fn from_config(cfg: &VaultConfig, creds: VaultCredentials) -> Self {
        VaultSettings {
            address: cfg.address.clone(),
            mount: cfg.mount.clone(),
            path_prefix: cfg.path_prefix.clone(),
            ca_cert: cfg.ca_cert.clone(),
            namespace: cfg.namespace.clone(),
            timeout: Duration::from_secs(30),
            auth: creds.into(),
        }
    }
}

/// A lineage's secret as stored in Vault (docs/design.md, section 5).
#[derive(Clone)]
pub struct LineageSecret {
    pub api_key: SecretString,
    pub key_id: String,
    pub key_name: String,
    pub team_id: String,
    pub expiry: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub rotated_at: DateTime<Utc>,
    pub rotation_id: String,
}

impl fmt::Debug for LineageSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineageSecret")
            .field("api_key", &"[REDACTED]")
            .field("key_id", &self.key_id)
            .field("key_name", &self.key_name)
            .field("team_id", &self.team_id)
            .field("expiry", &self.expiry)
            .field("created_at", &self.created_at)
            .field("rotated_at", &self.rotated_at)
            .field("rotation_id", &self.rotation_id)
            .finish()
    }
}

/// A secret and the KV version it was read from.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    pub version: u64,
    pub secret: LineageSecret,
}

/// One entry of a secret's KV history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u64,
    pub created_time: DateTime<Utc>,
    pub destroyed: bool,
    pub deleted: bool,
}

/// The KV fields, as written. The plain-text copy of the key is wiped on drop.
#[derive(Serialize, Deserialize)]
struct Fields {
    api_key: String,
    key_id: String,
    key_name: String,
    team_id: String,
    expiry: String,
    created_at: String,
    rotated_at: String,
    rotation_id: String,
}

impl Drop for Fields {
    fn drop(&mut self) {
        self.api_key.zeroize();
    }
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_ts(t: Option<DateTime<Utc>>) -> String {
    t.map(ts).unwrap_or_else(|| ZERO_TIME.to_string())
}

fn parse_ts(path: &str, field: &str, s: &str) -> Result<Option<DateTime<Utc>>, VaultError> {
    crate::masv::time::parse(s).map_err(|e| VaultError::Malformed {
        path: path.to_string(),
        reason: format!("{field}: {e}"),
    })
}

impl Fields {
    fn from_secret(s: &LineageSecret) -> Self {
        Fields {
            api_key: s.api_key.expose_secret().to_string(),
            key_id: s.key_id.clone(),
            key_name: s.key_name.clone(),
            team_id: s.team_id.clone(),
            expiry: opt_ts(s.expiry),
            created_at: opt_ts(s.created_at),
            rotated_at: ts(s.rotated_at),
            rotation_id: s.rotation_id.clone(),
        }
    }

    fn into_secret(self, path: &str) -> Result<LineageSecret, VaultError> {
        let rotated_at = parse_ts(path, "rotated_at", &self.rotated_at)?.ok_or_else(|| {
            VaultError::Malformed {
                path: path.to_string(),
                reason: "rotated_at is the zero time".into(),
            }
        })?;
        Ok(LineageSecret {
            api_key: SecretString::from(self.api_key.clone()),
            key_id: self.key_id.clone(),
            key_name: self.key_name.clone(),
            team_id: self.team_id.clone(),
            expiry: parse_ts(path, "expiry", &self.expiry)?,
            created_at: parse_ts(path, "created_at", &self.created_at)?,
            rotated_at,
            rotation_id: self.rotation_id.clone(),
        })
    }
}

/// The token (and namespace) requests carry, as vaultrs' middleware adds them.
type Caller = EndpointMiddleware;

struct Session {
    client: Arc<Caller>,
    /// When an AppRole token should be replaced (None: a static token).
    refresh_at: Option<Instant>,
}

struct Inner {
    address: String,
    transport: Transport,
    mount: String,
    prefix: String,
    namespace: Option<String>,
    auth: VaultAuth,
    session: Mutex<Session>,
    refresh: tokio::sync::Mutex<()>,
    calls: std::sync::atomic::AtomicU64,
}

/// The Vault adapter; clones share the client.
#[derive(Clone)]
pub struct VaultStore {
    inner: Arc<Inner>,
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

    fn map_err(&self, e: ClientError, path: &str, cas: u64) -> VaultError {
        let path = path.to_string();
        match e {
            ClientError::APIError { code, errors } => {
                let joined = redact::excerpt(&errors.join("; "), 300);
                if code == 503 && joined.to_lowercase().contains("sealed") {
                    VaultError::Sealed {
                        address: self.address.clone(),
                    }
                } else if code == 403 {
                    VaultError::PermissionDenied { path }
                } else if code == 404 {
                    VaultError::NotFound { path }
                } else if code == 400 && joined.contains("check-and-set") {
                    VaultError::CasConflict {
                        path,
                        expected: cas,
                    }
                } else {
                    VaultError::Other {
                        path,
                        status: Some(code),
                        reason: joined,
                    }
                }
            }
            ClientError::RestClientError { source } => {
                let reason = redact::excerpt(&describe(&source), 300);
                match &source {
                    rustify::errors::ClientError::ServerResponseError { code, .. }
                        if *code == 503 =>
                    {
                        VaultError::Sealed {
                            address: self.address.clone(),
                        }
                    }
                    rustify::errors::ClientError::ServerResponseError { code, .. }
                        if *code == 403 =>
                    {
                        VaultError::PermissionDenied { path }
                    }
                    rustify::errors::ClientError::ServerResponseError { code, .. }
                        if *code == 404 =>
                    {
                        VaultError::NotFound { path }
                    }
                    rustify::errors::ClientError::ServerResponseError { code, .. } => {
                        VaultError::Other {
                            path,
                            status: Some(*code),
                            reason,
                        }
                    }
                    _ => VaultError::Unreachable {
                        address: self.address.clone(),
                        reason,
                    },
                }
            }
            ClientError::JsonParseError { source } => VaultError::Malformed {
                path,
                reason: redact::excerpt(&source.to_string(), 300),
            },
            ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
                VaultError::Malformed {
                    path,
                    reason: "empty response".into(),
                }
            }
            other => VaultError::Other {
                path,
                status: None,
                reason: redact::excerpt(&describe(&other), 300),
            },
        }
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
    async fn client(&self) -> Result<Arc<Caller>, VaultError> {
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

    /// The secret's path within the mount: `<path_prefix>/<team>/<name>`.
    pub fn secret_path(&self, team_id: &str, name: &str) -> String {
        format!("{}/{team_id}/{name}", self.inner.prefix)
    }

    /// MASV key names are free text: one with `/`, `.`/`..` or control characters
    /// would address a path outside the lineage's own (e.g. `ci-../../other`).
    /// Such a lineage is refused rather than escaped, so its path stays readable.
    fn checked_path(&self, team_id: &str, name: &str) -> Result<String, VaultError> {
        let bad = |s: &str| {
            s.is_empty()
                || s == "."
                || s == ".."
                || s.contains('/')
                || s.chars().any(char::is_control)
        };
        if bad(team_id) || bad(name) {
            return Err(VaultError::Malformed {
                path: format!("{}/data/{}/…", self.inner.mount, self.inner.prefix),
                reason: format!(
                    "key name {name:?} of team {team_id:?} cannot be a Vault path segment"
                ),
            });
        }
        Ok(self.secret_path(team_id, name))
    }

    fn full_path(&self, path: &str) -> String {
        format!("{}/data/{path}", self.inner.mount)
    }

    /// The latest version of a lineage's secret, if any.
    #[tracing::instrument(skip_all, fields(team_id = %team_id, key_name = %name))]
    pub async fn read(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<StoredSecret>, VaultError> {
        match self.read_at(team_id, name, None).await {
            Ok(s) => Ok(Some(s)),
            Err(VaultError::NotFound { path }) => {
                // Absent, or its latest version deleted? Only the metadata tells.
                let meta_path = self.checked_path(team_id, name)?;
                match self.read_metadata(&meta_path).await {
                    Ok(meta) if meta.current_version > 0 => {
                        let deleted = meta
                            .versions
                            .get(&meta.current_version.to_string())
                            .is_none_or(|v| !v.deletion_time.is_empty() || v.destroyed);
                        if deleted {
                            Err(latest_deleted(path, meta.current_version))
                        } else {
                            // Being written right now: KV v2 updates the metadata
                            // before the new version's data is readable. Read again.
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            self.read_at(team_id, name, None).await.map(Some)
                        }
                    }
                    Ok(_) | Err(VaultError::NotFound { .. }) => Ok(None),
                    Err(other) => Err(other),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// One version of a lineage's secret.
    #[tracing::instrument(skip_all, fields(team_id = %team_id, key_name = %name, version))]
    pub async fn read_version(
        &self,
        team_id: &str,
        name: &str,
        version: u64,
    ) -> Result<StoredSecret, VaultError> {
        self.read_at(team_id, name, Some(version)).await
    }

    async fn read_at(
        &self,
        team_id: &str,
        name: &str,
        version: Option<u64>,
    ) -> Result<StoredSecret, VaultError> {
        let path = self.checked_path(team_id, name)?;
        let full = self.full_path(&path);
        let client = self.client().await?;
        let endpoint = ReadSecretRequest::builder()
            .mount(&self.inner.mount)
            .path(&path)
            .version(version)
            .build()
            .map_err(|e| local_error(&full, e))?;
        let response = self.send(&client, endpoint, &full, 0).await?;
        if response.data.is_null() {
            return Err(latest_deleted(full, response.metadata.version));
        }
        let fields: Fields =
            serde_json::from_value(response.data).map_err(|e| VaultError::Malformed {
                path: full.clone(),
                reason: e.to_string(),
            })?;
        Ok(StoredSecret {
            version: response.metadata.version,
            secret: fields.into_secret(&full)?,
        })
    }

    /// Check-and-set write (`cas = 0`: the secret must not exist yet), then the
    /// custom metadata. Returns the new version.
    #[tracing::instrument(skip_all, fields(team_id = %secret.team_id, key_name = %secret.key_name, cas))]
    pub async fn write(&self, secret: &LineageSecret, cas: u64) -> Result<u64, VaultError> {
        let path = self.checked_path(&secret.team_id, &secret.key_name)?;
        let full = self.full_path(&path);
        let client = self.client().await?;
        let fields = Fields::from_secret(secret);
        let cas32 = u32::try_from(cas)
            .map_err(|_| local_error(&full, format!("version {cas} out of range")))?;
        let data = serde_json::to_value(&fields).map_err(|e| local_error(&full, e))?;
        drop(fields);
        let endpoint = SetSecretRequest::builder()
            .mount(&self.inner.mount)
            .path(&path)
            .data(data)
            .options(SetSecretRequestOptions { cas: cas32 })
            .build()
            .map_err(|e| local_error(&full, e))?;
        let written = self.send(&client, endpoint, &full, cas).await?;
        let mut custom = HashMap::new();
        custom.insert("managed_by".to_string(), "masv-key-rotator".to_string());
        self.inner
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let meta_full = format!("{}/metadata/{path}", self.inner.mount);
        let endpoint = SetSecretMetadataRequest::builder()
            .mount(&self.inner.mount)
            .path(&path)
            .custom_metadata(custom)
            .build()
            .map_err(|e| local_error(&meta_full, e))?;
        self.inner
            .transport
            .exec_empty(client.as_ref(), endpoint)
            .await
            .map_err(|e| self.inner.map_err(e, &meta_full, 0))?;
        Ok(written.version)
    }

    /// Writes, reads that version back and compares every field, key included.
    #[tracing::instrument(skip_all, fields(team_id = %secret.team_id, key_name = %secret.key_name, cas))]
    pub async fn write_verified(
        &self,
        secret: &LineageSecret,
        cas: u64,
    ) -> Result<u64, VaultError> {
        let version = self.write(secret, cas).await?;
        let back = self
            .read_version(&secret.team_id, &secret.key_name, version)
            .await?;
        let path = self.full_path(&self.secret_path(&secret.team_id, &secret.key_name));
        let b = &back.secret;
        let same_time = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| {
            a.map(|t| t.timestamp_millis()) == b.map(|t| t.timestamp_millis())
        };
        let mismatch = if b.api_key.expose_secret() != secret.api_key.expose_secret() {
            Some("api_key")
        } else if b.key_id != secret.key_id {
            Some("key_id")
        } else if b.key_name != secret.key_name {
            Some("key_name")
        } else if b.team_id != secret.team_id {
            Some("team_id")
        } else if b.rotation_id != secret.rotation_id {
            Some("rotation_id")
        } else if !same_time(b.expiry, secret.expiry) {
            Some("expiry")
        } else if !same_time(b.created_at, secret.created_at) {
            Some("created_at")
        } else if !same_time(Some(b.rotated_at), Some(secret.rotated_at)) {
            Some("rotated_at")
        } else {
            None
        };
        match mismatch {
            Some(field) => Err(VaultError::ReadBackMismatch { path, field }),
            None => Ok(version),
        }
    }

    /// The secret's KV history, oldest first.
    #[tracing::instrument(skip_all, fields(team_id = %team_id, key_name = %name))]
    pub async fn versions(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Vec<VersionInfo>, VaultError> {
        let path = self.secret_path(team_id, name);
        let full = format!("{}/metadata/{path}", self.inner.mount);
        let meta = self.read_metadata(&path).await?;
        let mut out = Vec::new();
        for (v, m) in meta.versions {
            let version = v.parse::<u64>().map_err(|e| VaultError::Malformed {
                path: full.clone(),
                reason: e.to_string(),
            })?;
            let created_time = DateTime::parse_from_rfc3339(&m.created_time)
                .map_err(|e| VaultError::Malformed {
                    path: full.clone(),
                    reason: e.to_string(),
                })?
                .with_timezone(&Utc);
            out.push(VersionInfo {
                version,
                created_time,
                destroyed: m.destroyed,
                deleted: !m.deletion_time.is_empty(),
            });
        }
        out.sort_by_key(|v| v.version);
        Ok(out)
    }

    /// The secret's custom metadata.
    pub async fn custom_metadata(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<HashMap<String, String>, VaultError> {
        let path = self.secret_path(team_id, name);
        let meta = self.read_metadata(&path).await?;
        Ok(meta.custom_metadata.unwrap_or_default())
    }

    /// Sends `endpoint` (about `full`, a check-and-set at `cas`); its data.
    async fn send<E: Endpoint>(
        &self,
        client: &Caller,
        endpoint: E,
        full: &str,
        cas: u64,
    ) -> Result<E::Response, VaultError> {
        self.inner
            .transport
            .exec(client, endpoint)
            .await
            .and_then(|r| r.ok_or(ClientError::ResponseDataEmptyError))
            .map_err(|e| self.inner.map_err(e, full, cas))
    }

    /// A secret's metadata (`path` within the mount).
    async fn read_metadata(&self, path: &str) -> Result<ReadSecretMetadataResponse, VaultError> {
        let full = format!("{}/metadata/{path}", self.inner.mount);
        let client = self.client().await?;
        let endpoint = ReadSecretMetadataRequest::builder()
            .mount(&self.inner.mount)
            .path(path)
            .build()
            .map_err(|e| local_error(&full, e))?;
        self.send(&client, endpoint, &full, 0).await
    }

    /// Whether the credentials may create and update secrets under the prefix.
    #[tracing::instrument(skip_all)]
    pub async fn check_write_capability(&self) -> Result<(), VaultError> {
        let probe = format!(
            "{}/data/{}/write-check",
            self.inner.mount, self.inner.prefix
        );
        let client = self.client().await?;
        let caps = capabilities_self(&self.inner.transport, client.as_ref(), &probe)
            .await
            .map_err(|e| self.inner.map_err(e, "sys/capabilities-self", 0))?;
        let has = |c: &str| caps.iter().any(|x| x == c || x == "root");
        if has("create") && has("update") {
            Ok(())
        } else {
            Err(VaultError::PermissionDenied {
                path: format!(
                    "{}/data/{}/* (has: {})",
                    self.inner.mount,
                    self.inner.prefix,
                    caps.join(", ")
                ),
            })
        }
    }

    /// Whether Vault answers and is unsealed.
    #[tracing::instrument(skip_all)]
    pub async fn health(&self) -> Result<(), VaultError> {
        let client = self.client().await?;
        // sys/seal-status answers sealed or not, unauthenticated, on Vault and OpenBao alike
        // (vaultrs' health parser expects Vault-only fields).
        let status = raw_json(
            &self.inner.transport,
            client.as_ref(),
            reqwest::Method::GET,
            "sys/seal-status",
            None,
        )
        .await
        .map_err(|e| self.inner.map_err(e, "sys/seal-status", 0))?;
        match status.get("sealed").and_then(|v| v.as_bool()) {
            Some(false) => Ok(()),
            Some(true) => Err(VaultError::Sealed {
                address: self.inner.address.clone(),
            }),
            None => Err(VaultError::Malformed {
                path: "sys/seal-status".into(),
                reason: "no 'sealed' field".into(),
            }),
        }
    }
}

/// A raw call for endpoints vaultrs does not wrap (or parses too strictly), sent
/// with the transport's HTTP client and size limit, and the client's token and
/// namespace.
async fn raw_json(
    transport: &Transport,
    client: &Caller,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ClientError> {
    let url = format!("{}/v1/{path}", transport.base());
    let mut request = transport.http().request(method.clone(), url.clone());
    if !client.token.is_empty() {
        request = request.header("X-Vault-Token", client.token.as_str());
    }
    if let Some(ns) = &client.namespace {
        request = request.header("X-Vault-Namespace", ns.as_str());
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let failed = |e: reqwest::Error| ClientError::RestClientError {
        source: rustify::errors::ClientError::RequestError {
            source: e.into(),
            url: path.to_string(),
            method: method.to_string(),
        },
    };
    let response = request.send().await.map_err(failed)?;
    let status = response.status();
    let body = read_limited(response, transport.limit())
        .await
        .map_err(failed)?
        .ok_or_else(|| ClientError::RestClientError {
            source: rustify::errors::ClientError::ResponseError {
                source: AnswerRefused::Raw {
                    limit: transport.limit(),
                }
                .into(),
            },
        })?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        let errors = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .and_then(|e| serde_json::from_value::<Vec<String>>(e).ok())
            .unwrap_or_default();
        return Err(ClientError::APIError {
            code: status.as_u16(),
            errors,
        });
    }
    serde_json::from_str(&text).map_err(|source| ClientError::JsonParseError { source })
}

/// `POST sys/capabilities-self`: what the client's token may do on `path`.
async fn capabilities_self(
    transport: &Transport,
    client: &Caller,
    path: &str,
) -> Result<Vec<String>, ClientError> {
    let response = raw_json(
        transport,
        client,
        reqwest::Method::POST,
        "sys/capabilities-self",
        Some(serde_json::json!({ "paths": [path] })),
    )
    .await?;
    let caps = response
        .get("capabilities")
        .cloned()
        .ok_or(ClientError::ResponseDataEmptyError)?;
    serde_json::from_value(caps).map_err(|source| ClientError::JsonParseError { source })
}

/// An error found before anything was sent (a request that cannot be built).
fn local_error(path: &str, reason: impl fmt::Display) -> VaultError {
    VaultError::Other {
        path: path.to_string(),
        status: None,
        reason: reason.to_string(),
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

/// The latest version of a secret was deleted on purpose: never adopted over
/// (check-and-set would fail every sweep and churn keys); an operator decides.
fn latest_deleted(path: String, version: u64) -> VaultError {
    VaultError::Malformed {
        path,
        reason: format!(
            "version {version} was deleted: undelete it, or delete the secret's metadata to start over"
        ),
    }
}
