//! The MASV HTTP client.
//!
//! * Logs in on demand (`POST /auth`) and keeps the user token as a secret; on a
//!   401 it logs in again once and retries once. Concurrent callers that hit the
//!   same expired token share one re-login (a generation counter).
//! * At most `max_concurrency` requests are in flight (a semaphore; its permit is
//!   released while backing off).
//! * Idempotent calls (GET, PUT, DELETE) are retried on transport errors, time-outs,
//!   5xx and 429, with exponential backoff and full jitter, honouring `Retry-After`.
//! * `POST …/api_keys` is never retried once the request may have reached MASV:
//!   a time-out, reset or 5xx comes back as [`MasvError::OutcomeUnknown`] so the
//!   engine can look for the key by its marker. Only a connection that was never
//!   made, a 401 (re-login) and a 429 (nothing happened) are retried.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};
use tracing::debug;

use super::error::MasvError;
use super::retry::parse_retry_after;
pub use super::retry::RetryPolicy;
use super::types::{ApiKey, AuthResponse, CreatedApiKey, KeyAction, NewApiKey, UpdateApiKey};
use crate::config::MasvConfig;

/// Everything the client needs.
#[derive(Debug, Clone)]
pub struct MasvSettings {
    pub base_url: String,
    pub email: String,
    pub password: SecretString,
    pub timeout: Duration,
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
}

impl MasvSettings {
    pub fn from_config(cfg: &MasvConfig, password: SecretString) -> Self {
        MasvSettings {
            base_url: cfg.base_url.clone(),
            email: cfg.email.clone(),
            password,
            timeout: cfg.timeout,
            max_concurrency: cfg.max_concurrency,
            retry: RetryPolicy::default(),
        }
    }
}

/// Who the client logged in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginInfo {
    pub user_id: String,
    pub team_ids: Vec<String>,
}

/// Counters, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub requests: u64,
    pub retries: u64,
    pub logins: u64,
}

#[derive(Default)]
struct Session {
    token: Option<SecretString>,
    generation: u64,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    email: String,
    password: SecretString,
    retry: RetryPolicy,
    permits: Semaphore,
    session: Mutex<Session>,
    requests: AtomicU64,
    retries: AtomicU64,
    logins: AtomicU64,
}

/// The MASV client; clones share the session, the semaphore and the counters.
#[derive(Clone)]
pub struct MasvClient {
    inner: Arc<Inner>,
}

/// How a request authenticates.
enum Auth<'a> {
    User,
    ApiKey(&'a SecretString),
    None,
}

/// One HTTP exchange's result, before interpretation.
enum Exchange {
    Response {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: Bytes,
    },
    /// The connection was never made: nothing was sent.
    NotSent(String),
    TimedOut,
    /// Sent, but the answer was lost (reset, closed, truncated body).
    Lost(String),
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.into_owned());
    message.chars().take(200).collect()
}

fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// How long an idle connection to MASV stays open (daemon::SETTLE_AFTER_SWEEP
/// waits for this).
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

impl MasvClient {
    pub fn new(settings: MasvSettings) -> Result<Self, MasvError> {
        let base = settings.base_url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| MasvError::Config {
            reason: format!("base URL {base:?}: {e}"),
        })?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(settings.max_concurrency)
            // Between hourly sweeps an idle connection only holds buffers.
            .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
            .user_agent(concat!("masv-key-rotator/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry X-User-Token / X-API-KEY to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| MasvError::Config {
                reason: e.to_string(),
            })?;
        Ok(MasvClient {
            inner: Arc::new(Inner {
                http,
                base,
                email: settings.email,
                password: settings.password,
                retry: settings.retry,
                permits: Semaphore::new(settings.max_concurrency.max(1)),
                session: Mutex::new(Session::default()),
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                logins: AtomicU64::new(0),
            }),
        })
    }

    pub fn stats(&self) -> ClientStats {
        ClientStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
            logins: self.inner.logins.load(Ordering::Relaxed),
        }
    }

    /// One HTTP exchange, holding a concurrency permit only while on the wire.
    async fn exchange(
        &self,
        method: &Method,
        path: &str,
        auth: &Auth<'_>,
        body: Option<&serde_json::Value>,
    ) -> Exchange {
        let token = match auth {
            Auth::User => self.inner.session.lock().await.token.clone(),
            _ => None,
        };
        let mut req = self
            .inner
            .http
            .request(method.clone(), format!("{}{path}", self.inner.base))
            .header("Content-Type", "application/json");
        let sensitive = |value: &str| {
            let mut v = reqwest::header::HeaderValue::from_str(value).ok()?;
            v.set_sensitive(true);
            Some(v)
        };
        match auth {
            Auth::User => {
                if let Some(v) = token.as_ref().and_then(|t| sensitive(t.expose_secret())) {
                    req = req.header("X-User-Token", v);
                }
            }
            Auth::ApiKey(key) => {
                if let Some(v) = sensitive(key.expose_secret()) {
                    req = req.header("X-API-KEY", v);
                }
            }
            Auth::None => {}
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Exchange::TimedOut,
            Err(e) if e.is_connect() => return Exchange::NotSent(describe(&e)),
            Err(e) => return Exchange::Lost(describe(&e)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        match response.bytes().await {
            Ok(body) => Exchange::Response {
                status,
                retry_after,
                body,
            },
            Err(e) if e.is_timeout() => Exchange::TimedOut,
            Err(e) => Exchange::Lost(describe(&e)),
        }
    }

    /// Logs in unless someone else already replaced token generation `seen`.
    async fn ensure_login(&self, seen: Option<u64>) -> Result<u64, MasvError> {
        let mut session = self.inner.session.lock().await;
        if session.token.is_some() && seen != Some(session.generation) {
            return Ok(session.generation);
        }
        let (token, _) = self.do_login().await?;
        session.token = Some(token);
        session.generation += 1;
        Ok(session.generation)
    }

    async fn current_generation(&self) -> Option<u64> {
        let s = self.inner.session.lock().await;
        s.token.as_ref().map(|_| s.generation)
    }

    async fn do_login(&self) -> Result<(SecretString, LoginInfo), MasvError> {
        let call = format!("log in as {}", self.inner.email);
        let body = json!({
            "email": self.inner.email,
            "password": self.inner.password.expose_secret(),
        });
        let (status, body) = self
            .idempotent_call(
                &call,
                &Method::POST,
                "/auth",
                &Auth::None,
                Some(&body),
                Some(&self.inner.logins),
            )
            .await?;
        match status {
            s if s.is_success() => {
                let auth: AuthResponse = decode_wiping(body).map_err(|e| MasvError::Malformed {
                    call: call.clone(),
                    reason: e.to_string(),
                })?;
                let info = LoginInfo {
                    user_id: auth.user.id.clone(),
                    team_ids: auth.teams.iter().map(|t| t.id.clone()).collect(),
                };
                debug!(user_id = %info.user_id, "logged in to MASV");
                Ok((auth.token, info))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(MasvError::LoginRejected {
                status: status.as_u16(),
            }),
            _ => Err(MasvError::Status {
                call,
                status: status.as_u16(),
                message: excerpt(&body),
            }),
        }
    }

    /// A call that is safe to repeat (logging in, a read with an api key):
    /// sent again after a transport failure, a timeout, a 5xx or a 429, within
    /// the retry policy. Returns the first other answer, success or not, for
    /// the caller to interpret. `attempts` counts every attempt, if given.
    async fn idempotent_call(
        &self,
        call: &str,
        method: &Method,
        path: &str,
        auth: &Auth<'_>,
        body: Option<&serde_json::Value>,
        attempts: Option<&AtomicU64>,
    ) -> Result<(StatusCode, Bytes), MasvError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(n) = attempts {
                n.fetch_add(1, Ordering::Relaxed);
            }
            let delay = match self.exchange(method, path, auth, body).await {
                Exchange::Response {
                    status,
                    retry_after,
                    body,
                } => {
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                        self.retry_delay(attempt, retry_after, call, status, Some(&body))?
                    } else {
                        return Ok((status, body));
                    }
                }
                Exchange::NotSent(reason) | Exchange::Lost(reason) => {
                    if attempt >= self.inner.retry.max_attempts {
                        return Err(MasvError::Unreachable {
                            call: call.to_string(),
                            reason,
                        });
                    }
                    self.inner.retry.backoff(attempt)
                }
                Exchange::TimedOut => {
                    if attempt >= self.inner.retry.max_attempts {
                        return Err(MasvError::Timeout {
                            call: call.to_string(),
                        });
                    }
                    self.inner.retry.backoff(attempt)
                }
            };
            debug!(call = %call, attempt, delay_ms = delay.as_millis() as u64, "retrying");
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    /// The delay before the next attempt after a 5xx or 429, or the final error.
    fn retry_delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        call: &str,
        status: StatusCode,
        body: Option<&[u8]>,
    ) -> Result<Duration, MasvError> {
        let policy = &self.inner.retry;
        let give_up = || {
            if status == StatusCode::TOO_MANY_REQUESTS {
                MasvError::RateLimited {
                    call: call.to_string(),
                    retry_after,
                }
            } else if status.is_server_error() {
                MasvError::Server {
                    call: call.to_string(),
                    status: status.as_u16(),
                }
            } else {
                MasvError::Status {
                    call: call.to_string(),
                    status: status.as_u16(),
                    message: body.map(excerpt).unwrap_or_default(),
                }
            }
        };
        if attempt >= policy.max_attempts {
            return Err(give_up());
        }
        match retry_after {
            Some(after) if after > policy.max_retry_after => Err(give_up()),
            Some(after) => Ok(after),
            None => Ok(policy.backoff(attempt)),
        }
    }

    /// A call with the user token: login on demand, one re-login on 401, retries
    /// for idempotent calls. Returns the success status and body.
    async fn user_call(
        &self,
        call: String,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes, bool), MasvError> {
        let idempotent = method != Method::POST;
        let mut relogged = false;
        let mut attempt = 0;
        // Whether an earlier attempt may have been carried out (its answer was lost).
        let mut maybe_done = false;
        if self.current_generation().await.is_none() {
            self.ensure_login(None).await?;
        }
        loop {
            attempt += 1;
            let generation = self.current_generation().await;
            let outcome = self
                .exchange(&method, path, &Auth::User, body.as_ref())
                .await;
            let delay = match outcome {
                Exchange::Response { status, body, .. } if status.is_success() => {
                    return Ok((status, body, maybe_done));
                }
                Exchange::Response { status, .. } if status == StatusCode::UNAUTHORIZED => {
                    if relogged {
                        return Err(MasvError::Unauthorized { call });
                    }
                    relogged = true;
                    debug!(call = %call, "user token refused; logging in again");
                    self.ensure_login(generation).await?;
                    attempt -= 1;
                    continue;
                }
                Exchange::Response {
                    status,
                    retry_after,
                    body,
                } => {
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        self.retry_delay(attempt, retry_after, &call, status, Some(&body))?
                    } else if status.is_server_error() {
                        if !idempotent {
                            return Err(MasvError::OutcomeUnknown {
                                call,
                                reason: format!("HTTP {}", status.as_u16()),
                            });
                        }
                        maybe_done = true;
                        self.retry_delay(attempt, retry_after, &call, status, Some(&body))?
                    } else if status == StatusCode::NOT_FOUND
                        && maybe_done
                        && method == Method::DELETE
                    {
                        // An earlier attempt whose answer was lost did delete it.
                        return Ok((status, body, maybe_done));
                    } else {
                        return Err(match status {
                            StatusCode::FORBIDDEN => MasvError::Forbidden { call },
                            StatusCode::NOT_FOUND => MasvError::NotFound { call },
                            StatusCode::CONFLICT => MasvError::Conflict {
                                call,
                                message: excerpt(&body),
                            },
                            _ => MasvError::Status {
                                call,
                                status: status.as_u16(),
                                message: excerpt(&body),
                            },
                        });
                    }
                }
                Exchange::NotSent(reason) => {
                    if attempt >= self.inner.retry.max_attempts {
                        return Err(MasvError::Unreachable { call, reason });
                    }
                    self.inner.retry.backoff(attempt)
                }
                Exchange::TimedOut => {
                    if !idempotent {
                        return Err(MasvError::OutcomeUnknown {
                            call,
                            reason: "timed out".into(),
                        });
                    }
                    if attempt >= self.inner.retry.max_attempts {
                        return Err(MasvError::Timeout { call });
                    }
                    maybe_done = true;
                    self.inner.retry.backoff(attempt)
                }
                Exchange::Lost(reason) => {
                    if !idempotent {
                        return Err(MasvError::OutcomeUnknown { call, reason });
                    }
                    if attempt >= self.inner.retry.max_attempts {
                        return Err(MasvError::Unreachable { call, reason });
                    }
                    maybe_done = true;
                    self.inner.retry.backoff(attempt)
                }
            };
            debug!(call = %call, attempt, delay_ms = delay.as_millis() as u64, "retrying");
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    fn parse<T: DeserializeOwned>(call: &str, body: &[u8]) -> Result<T, MasvError> {
        serde_json::from_slice(body).map_err(|e| MasvError::Malformed {
            call: call.to_string(),
            reason: e.to_string(),
        })
    }

    /// Logs in now (a fresh token), returning who we are.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self) -> Result<LoginInfo, MasvError> {
        let mut session = self.inner.session.lock().await;
        let (token, info) = self.do_login().await?;
        session.token = Some(token);
        session.generation += 1;
        Ok(info)
    }

    /// `GET /teams/{team_id}/api_keys`
    #[tracing::instrument(skip_all, fields(team_id = %team_id))]
    pub async fn list_keys(&self, team_id: &str) -> Result<Vec<ApiKey>, MasvError> {
        let call = format!("list api keys of team {team_id}");
        let (_, body, _) = self
            .user_call(
                call.clone(),
                Method::GET,
                &format!("/teams/{team_id}/api_keys"),
                None,
            )
            .await?;
        Self::parse(&call, &body)
    }

    /// `POST /teams/{team_id}/api_keys`: never retried once it may have reached MASV.
    #[tracing::instrument(skip_all, fields(team_id = %team_id))]
    pub async fn create_key(
        &self,
        team_id: &str,
        new: &NewApiKey,
    ) -> Result<CreatedApiKey, MasvError> {
        let call = format!("create api key {:?} in team {team_id}", new.name);
        let body = serde_json::to_value(new).map_err(|e| MasvError::Config {
            reason: e.to_string(),
        })?;
        let (_, bytes, _) = self
            .user_call(
                call.clone(),
                Method::POST,
                &format!("/teams/{team_id}/api_keys"),
                Some(body),
            )
            .await?;
        // The key exists now; a body we cannot read means we lost its secret.
        decode_wiping(bytes).map_err(|e| MasvError::OutcomeUnknown {
            call,
            reason: format!("the response could not be read: {e}"),
        })
    }

    /// `PUT /api_keys/{id}`
    #[tracing::instrument(skip_all, fields(key_id = %key_id))]
    pub async fn update_key(
        &self,
        key_id: &str,
        update: &UpdateApiKey,
    ) -> Result<ApiKey, MasvError> {
        let call = format!("update api key {key_id}");
        let body = serde_json::to_value(update).map_err(|e| MasvError::Config {
            reason: e.to_string(),
        })?;
        let (_, bytes, _) = self
            .user_call(
                call.clone(),
                Method::PUT,
                &format!("/api_keys/{key_id}"),
                Some(body),
            )
            .await?;
        Self::parse(&call, &bytes)
    }

    /// `PUT /api_keys/{id}/{active|inactive}`
    #[tracing::instrument(skip_all, fields(key_id = %key_id, action = action.as_str()))]
    pub async fn set_key_state(&self, key_id: &str, action: KeyAction) -> Result<(), MasvError> {
        let verb = match action {
            KeyAction::Active => "activate",
            KeyAction::Inactive => "deactivate",
        };
        let call = format!("{verb} api key {key_id}");
        self.user_call(
            call,
            Method::PUT,
            &format!("/api_keys/{key_id}/{}", action.as_str()),
            None,
        )
        .await?;
        Ok(())
    }

    /// `DELETE /api_keys/{id}`; a 404 after an attempt whose answer was lost is success.
    #[tracing::instrument(skip_all, fields(key_id = %key_id))]
    pub async fn delete_key(&self, key_id: &str) -> Result<(), MasvError> {
        let call = format!("delete api key {key_id}");
        self.user_call(call, Method::DELETE, &format!("/api_keys/{key_id}"), None)
            .await?;
        Ok(())
    }

    /// `GET /teams/{team_id}/packages` with `X-API-KEY`: proves the key works.
    #[tracing::instrument(skip_all, fields(team_id = %team_id))]
    pub async fn check_key(&self, team_id: &str, api_key: &SecretString) -> Result<(), MasvError> {
        let call = format!("use the new api key on team {team_id}");
        let path = format!("/teams/{team_id}/packages");
        let (status, body) = self
            .idempotent_call(
                &call,
                &Method::GET,
                &path,
                &Auth::ApiKey(api_key),
                None,
                None,
            )
            .await?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(MasvError::KeyRejected {
                status: status.as_u16(),
            }),
            _ => Err(MasvError::Status {
                call,
                status: status.as_u16(),
                message: excerpt(&body),
            }),
        }
    }
}

/// Decodes a response that carries a secret (a user token, a new key's value),
/// then overwrites the raw body so the secret lives on only in its `SecretString`.
fn decode_wiping<T: serde::de::DeserializeOwned>(body: bytes::Bytes) -> serde_json::Result<T> {
    // Without a copy when this is the only handle on the buffer.
    let mut raw = Vec::from(body);
    let decoded = serde_json::from_slice(&raw);
    zeroize::Zeroize::zeroize(&mut raw);
    decoded
}
