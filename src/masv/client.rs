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
//!
//! MASV's answers are untrusted input:
//! * every body is read in chunks and refused once it passes a limit that fits
//!   the endpoint ([`LIST_BODY_LIMIT`] for a key list, [`BODY_LIMIT`] otherwise),
//!   so a huge or endless answer costs at most that much memory;
//! * each call, retries and waits included, ends within the retry policy's
//!   deadline;
//! * ids go into a URL only once they have the shape of a MASV id (a ULID), and
//!   every path segment is percent-encoded;
//! * error answers to the login and to the key check are never quoted (they
//!   could echo the password or the key); other quotes are cleaned of every
//!   secret the daemon holds ([`crate::redact`]) and of control characters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};
use tracing::debug;

use super::answers::{
    check_key_ids, checked_id, decode_key_list, decode_wiping, excerpt, exchange_failure, parse,
    shown,
};
pub use super::answers::{BODY_LIMIT, LIST_BODY_LIMIT};
use super::error::MasvError;
use super::ids::is_masv_id;
use super::retry::parse_retry_after;
pub use super::retry::RetryPolicy;
use super::types::{
    ApiKey, AuthResponse, CreatedApiKey, KeyAction, NewApiKey, UpdateApiKey, SECRET_MAX_BYTES,
};
use crate::bounded_body::read_limited;
use crate::config::MasvConfig;
use crate::redact;

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
    base: reqwest::Url,
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

/// A call that is safe to repeat, as `idempotent_call` sends it.
struct Request<'a> {
    /// What the call does, for errors and logs.
    call: &'a str,
    method: &'a Method,
    url: &'a reqwest::Url,
    auth: Auth<'a>,
    body: Option<&'a serde_json::Value>,
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
    /// Sent and answered, but the answer passed its size limit; not read further.
    TooLarge {
        status: StatusCode,
        limit: usize,
    },
}

/// How long an idle connection to MASV stays open (daemon::SETTLE_AFTER_SWEEP
/// waits for this).
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

impl MasvClient {
    pub fn new(settings: MasvSettings) -> Result<Self, MasvError> {
        let raw = settings.base_url.trim_end_matches('/');
        let base = reqwest::Url::parse(raw).map_err(|e| MasvError::Config {
            reason: format!("base URL {raw:?}: {e}"),
        })?;
        if base.cannot_be_a_base() {
            return Err(MasvError::Config {
                reason: format!("base URL {raw:?} cannot hold a path"),
            });
        }
        redact::remember("masv.password", &settings.password);
        let attempt_timeout = settings.timeout.min(settings.retry.deadline);
        let http = reqwest::Client::builder()
            .timeout(attempt_timeout)
            .connect_timeout(attempt_timeout.min(Duration::from_secs(10)))
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

    /// The URL of `segments` below the base URL, each percent-encoded.
    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("checked in new(): the base URL can hold a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// One HTTP exchange, holding a concurrency permit only while on the wire.
    /// A success body may weigh up to `limit`; an error body up to [`BODY_LIMIT`].
    async fn exchange(
        &self,
        method: &Method,
        url: &reqwest::Url,
        auth: &Auth<'_>,
        body: Option<&serde_json::Value>,
        limit: usize,
    ) -> Exchange {
        let token = match auth {
            Auth::User => self.inner.session.lock().await.token.clone(),
            _ => None,
        };
        let mut req = self
            .inner
            .http
            .request(method.clone(), url.clone())
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
            Err(e) if e.is_connect() => return Exchange::NotSent(exchange_failure(&e)),
            Err(e) => return Exchange::Lost(exchange_failure(&e)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let limit = if status.is_success() {
            limit
        } else {
            limit.min(BODY_LIMIT)
        };
        match read_limited(response, limit).await {
            Ok(Some(body)) => Exchange::Response {
                status,
                retry_after,
                body,
            },
            Ok(None) => Exchange::TooLarge { status, limit },
            Err(e) if e.is_timeout() => Exchange::TimedOut,
            Err(e) => Exchange::Lost(exchange_failure(&e)),
        }
    }

    /// Logs in unless someone else already replaced token generation `seen`.
    async fn ensure_login(&self, seen: Option<u64>, deadline: Instant) -> Result<u64, MasvError> {
        let mut session = self.inner.session.lock().await;
        if session.token.is_some() && seen != Some(session.generation) {
            return Ok(session.generation);
        }
        let (token, _) = self.do_login(deadline).await?;
        session.token = Some(token);
        session.generation += 1;
        Ok(session.generation)
    }

    async fn current_generation(&self) -> Option<u64> {
        let s = self.inner.session.lock().await;
        s.token.as_ref().map(|_| s.generation)
    }

    /// `POST /auth`. Its error answers are never quoted: they could echo the password.
    async fn do_login(&self, deadline: Instant) -> Result<(SecretString, LoginInfo), MasvError> {
        let call = format!("log in as {}", self.inner.email);
        let body = json!({
            "email": self.inner.email,
            "password": self.inner.password.expose_secret(),
        });
        let (status, body) = self
            .idempotent_call(
                &Request {
                    call: &call,
                    method: &Method::POST,
                    url: &self.url(&["auth"]),
                    auth: Auth::None,
                    body: Some(&body),
                },
                Some(&self.inner.logins),
                deadline,
            )
            .await?;
        match status {
            s if s.is_success() => {
                let auth: AuthResponse = decode_wiping(body).map_err(|e| MasvError::Malformed {
                    call: call.clone(),
                    reason: e,
                })?;
                redact::remember("masv.user_token", &auth.token);
                let info = LoginInfo {
                    user_id: auth.user.id.clone(),
                    team_ids: auth.teams.iter().map(|t| t.id.clone()).collect(),
                };
                debug!(user_id = %redact::excerpt(&info.user_id, 64), "logged in to MASV");
                Ok((auth.token, info))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(MasvError::LoginRejected {
                status: status.as_u16(),
            }),
            _ => Err(MasvError::Status {
                call,
                status: status.as_u16(),
                message: "(answer not quoted: it could echo the password)".into(),
            }),
        }
    }

    /// A call that is safe to repeat (logging in, a read with an api key):
    /// sent again after a transport failure, a timeout, a 5xx or a 429, within
    /// the retry policy and before `deadline`. Returns the first other answer,
    /// success or not, for the caller to interpret. `attempts` counts every
    /// attempt, if given. Bodies of 5xx and 429 answers are never quoted.
    async fn idempotent_call(
        &self,
        request: &Request<'_>,
        attempts: Option<&AtomicU64>,
        deadline: Instant,
    ) -> Result<(StatusCode, Bytes), MasvError> {
        let Request {
            call,
            method,
            url,
            ref auth,
            body,
        } = *request;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(n) = attempts {
                n.fetch_add(1, Ordering::Relaxed);
            }
            let delay = match self.exchange(method, url, auth, body, BODY_LIMIT).await {
                Exchange::Response {
                    status,
                    retry_after,
                    ..
                } if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
                    self.retry_delay(attempt, retry_after, call, status, deadline)?
                }
                Exchange::Response { status, body, .. } => return Ok((status, body)),
                Exchange::TooLarge { limit, .. } => {
                    return Err(MasvError::TooLarge {
                        call: call.to_string(),
                        limit,
                    })
                }
                Exchange::NotSent(reason) | Exchange::Lost(reason) => self.backoff_or(
                    attempt,
                    deadline,
                    MasvError::Unreachable {
                        call: call.to_string(),
                        reason,
                    },
                )?,
                Exchange::TimedOut => self.backoff_or(
                    attempt,
                    deadline,
                    MasvError::Timeout {
                        call: call.to_string(),
                    },
                )?,
            };
            debug!(call = %call, attempt, delay_ms = delay.as_millis() as u64, "retrying");
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    /// The backoff before the next attempt, or `error` when the attempts are
    /// spent or the wait would end past the deadline.
    fn backoff_or(
        &self,
        attempt: u32,
        deadline: Instant,
        error: MasvError,
    ) -> Result<Duration, MasvError> {
        let delay = self.inner.retry.backoff(attempt);
        if attempt >= self.inner.retry.max_attempts || Instant::now() + delay >= deadline {
            Err(error)
        } else {
            Ok(delay)
        }
    }

    /// The delay before the next attempt after a 5xx or 429, or the final error.
    fn retry_delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        call: &str,
        status: StatusCode,
        deadline: Instant,
    ) -> Result<Duration, MasvError> {
        let policy = &self.inner.retry;
        let give_up = || {
            if status == StatusCode::TOO_MANY_REQUESTS {
                MasvError::RateLimited {
                    call: call.to_string(),
                    retry_after,
                }
            } else {
                MasvError::Server {
                    call: call.to_string(),
                    status: status.as_u16(),
                }
            }
        };
        if attempt >= policy.max_attempts {
            return Err(give_up());
        }
        let delay = match retry_after {
            Some(after) if after > policy.max_retry_after => return Err(give_up()),
            Some(after) => after,
            None => policy.backoff(attempt),
        };
        if Instant::now() + delay >= deadline {
            return Err(give_up());
        }
        Ok(delay)
    }

    /// A call with the user token: login on demand, one re-login on 401, retries
    /// for idempotent calls, all before `deadline`. Returns the success status
    /// and body, and whether an earlier attempt may have been carried out.
    async fn user_call(
        &self,
        call: String,
        method: Method,
        url: reqwest::Url,
        body: Option<serde_json::Value>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes, bool), MasvError> {
        let deadline = Instant::now() + self.inner.retry.deadline;
        let idempotent = method != Method::POST;
        let attempts = self.user_attempts(&call, &method, &url, body.as_ref(), limit, deadline);
        match tokio::time::timeout_at(deadline, attempts).await {
            Ok(result) => result,
            Err(_) if idempotent => Err(MasvError::Timeout { call }),
            Err(_) => Err(MasvError::OutcomeUnknown {
                call,
                reason: "no answer within the call's deadline".into(),
            }),
        }
    }

    async fn user_attempts(
        &self,
        call: &str,
        method: &Method,
        url: &reqwest::Url,
        body: Option<&serde_json::Value>,
        limit: usize,
        deadline: Instant,
    ) -> Result<(StatusCode, Bytes, bool), MasvError> {
        let call = call.to_string();
        let idempotent = method != Method::POST;
        let mut relogged = false;
        let mut attempt = 0;
        // Whether an earlier attempt may have been carried out (its answer was lost).
        let mut maybe_done = false;
        if self.current_generation().await.is_none() {
            self.ensure_login(None, deadline).await?;
        }
        loop {
            attempt += 1;
            let generation = self.current_generation().await;
            let outcome = self.exchange(method, url, &Auth::User, body, limit).await;
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
                    self.ensure_login(generation, deadline).await?;
                    attempt -= 1;
                    continue;
                }
                Exchange::Response {
                    status,
                    retry_after,
                    body,
                } => {
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        self.retry_delay(attempt, retry_after, &call, status, deadline)?
                    } else if status.is_server_error() {
                        if !idempotent {
                            return Err(MasvError::OutcomeUnknown {
                                call,
                                reason: format!("HTTP {}", status.as_u16()),
                            });
                        }
                        maybe_done = true;
                        self.retry_delay(attempt, retry_after, &call, status, deadline)?
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
                Exchange::TooLarge { status, limit } => {
                    if !idempotent && status.is_success() {
                        // Carried out, but the answer (the new key) cannot be taken.
                        return Err(MasvError::OutcomeUnknown {
                            call,
                            reason: format!("the answer was larger than {limit} bytes"),
                        });
                    }
                    return Err(MasvError::TooLarge { call, limit });
                }
                Exchange::NotSent(reason) => self.backoff_or(
                    attempt,
                    deadline,
                    MasvError::Unreachable {
                        call: call.clone(),
                        reason,
                    },
                )?,
                Exchange::TimedOut => {
                    if !idempotent {
                        return Err(MasvError::OutcomeUnknown {
                            call,
                            reason: "timed out".into(),
                        });
                    }
                    maybe_done = true;
                    self.backoff_or(attempt, deadline, MasvError::Timeout { call: call.clone() })?
                }
                Exchange::Lost(reason) => {
                    if !idempotent {
                        return Err(MasvError::OutcomeUnknown { call, reason });
                    }
                    maybe_done = true;
                    self.backoff_or(
                        attempt,
                        deadline,
                        MasvError::Unreachable {
                            call: call.clone(),
                            reason,
                        },
                    )?
                }
            };
            debug!(call = %call, attempt, delay_ms = delay.as_millis() as u64, "retrying");
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    /// Logs in now (a fresh token), returning who we are.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self) -> Result<LoginInfo, MasvError> {
        let deadline = Instant::now() + self.inner.retry.deadline;
        let call = format!("log in as {}", self.inner.email);
        let fresh = async {
            let mut session = self.inner.session.lock().await;
            let (token, info) = self.do_login(deadline).await?;
            session.token = Some(token);
            session.generation += 1;
            Ok(info)
        };
        tokio::time::timeout_at(deadline, fresh)
            .await
            .unwrap_or(Err(MasvError::Timeout { call }))
    }

    /// `GET /teams/{team_id}/api_keys`
    #[tracing::instrument(skip_all, fields(team_id = %team_id))]
    pub async fn list_keys(&self, team_id: &str) -> Result<Vec<ApiKey>, MasvError> {
        let call = format!("list api keys of team {}", shown(team_id));
        let team = checked_id(&call, "team id", team_id)?;
        let url = self.url(&["teams", team, "api_keys"]);
        let (_, body, _) = self
            .user_call(call.clone(), Method::GET, url, None, LIST_BODY_LIMIT)
            .await?;
        decode_key_list(&call, &body)
    }

    /// `POST /teams/{team_id}/api_keys`: never retried once it may have reached MASV.
    #[tracing::instrument(skip_all, fields(team_id = %team_id))]
    pub async fn create_key(
        &self,
        team_id: &str,
        new: &NewApiKey,
    ) -> Result<CreatedApiKey, MasvError> {
        let call = format!("create api key {:?} in team {}", new.name, shown(team_id));
        let team = checked_id(&call, "team id", team_id)?;
        let url = self.url(&["teams", team, "api_keys"]);
        let body = serde_json::to_value(new).map_err(|e| MasvError::Config {
            reason: e.to_string(),
        })?;
        let (_, bytes, _) = self
            .user_call(call.clone(), Method::POST, url, Some(body), BODY_LIMIT)
            .await?;
        // The key exists now; an answer we cannot take means we lost its secret,
        // and the engine finds the key by its marker and cleans it up.
        let lost = |reason: String| MasvError::OutcomeUnknown {
            call: call.clone(),
            reason: format!("the response could not be taken: {reason}"),
        };
        let created: CreatedApiKey = decode_wiping(bytes).map_err(lost)?;
        redact::remember_key(&created.secret);
        if !is_masv_id(&created.key.id) {
            return Err(lost("its key id is not a MASV id".into()));
        }
        let secret_len = created.secret.expose_secret().len();
        if secret_len == 0 || secret_len > SECRET_MAX_BYTES {
            return Err(lost(format!(
                "its key is {secret_len} bytes (1 to {SECRET_MAX_BYTES} expected)"
            )));
        }
        Ok(created)
    }

    /// `PUT /api_keys/{id}`
    #[tracing::instrument(skip_all, fields(key_id = %key_id))]
    pub async fn update_key(
        &self,
        key_id: &str,
        update: &UpdateApiKey,
    ) -> Result<ApiKey, MasvError> {
        let call = format!("update api key {}", shown(key_id));
        let id = checked_id(&call, "key id", key_id)?;
        let body = serde_json::to_value(update).map_err(|e| MasvError::Config {
            reason: e.to_string(),
        })?;
        let (_, bytes, _) = self
            .user_call(
                call.clone(),
                Method::PUT,
                self.url(&["api_keys", id]),
                Some(body),
                BODY_LIMIT,
            )
            .await?;
        let key: ApiKey = parse(&call, &bytes)?;
        check_key_ids(&call, [&key])?;
        Ok(key)
    }

    /// `PUT /api_keys/{id}/{active|inactive}`
    #[tracing::instrument(skip_all, fields(key_id = %key_id, action = action.as_str()))]
    pub async fn set_key_state(&self, key_id: &str, action: KeyAction) -> Result<(), MasvError> {
        let verb = match action {
            KeyAction::Active => "activate",
            KeyAction::Inactive => "deactivate",
        };
        let call = format!("{verb} api key {}", shown(key_id));
        let id = checked_id(&call, "key id", key_id)?;
        let url = self.url(&["api_keys", id, action.as_str()]);
        self.user_call(call, Method::PUT, url, None, BODY_LIMIT)
            .await?;
        Ok(())
    }

    /// `DELETE /api_keys/{id}`; a 404 after an attempt whose answer was lost is success.
    #[tracing::instrument(skip_all, fields(key_id = %key_id))]
    pub async fn delete_key(&self, key_id: &str) -> Result<(), MasvError> {
        let call = format!("delete api key {}", shown(key_id));
        let id = checked_id(&call, "key id", key_id)?;
        let url = self.url(&["api_keys", id]);
        self.user_call(call, Method::DELETE, url, None, BODY_LIMIT)
            .await?;
        Ok(())
    }

    /// `GET /teams/{team_id}/packages` with `X-API-KEY`: proves the key works.
    /// Its error answers are never quoted: they could echo the key.
    #[tracing::instrument(skip_all, fields(team_id = %team_id))]
    pub async fn check_key(&self, team_id: &str, api_key: &SecretString) -> Result<(), MasvError> {
        let call = format!("use the new api key on team {}", shown(team_id));
        let team = checked_id(&call, "team id", team_id)?;
        redact::remember_key(api_key);
        let url = self.url(&["teams", team, "packages"]);
        let deadline = Instant::now() + self.inner.retry.deadline;
        let request = Request {
            call: &call,
            method: &Method::GET,
            url: &url,
            auth: Auth::ApiKey(api_key),
            body: None,
        };
        let attempt = self.idempotent_call(&request, None, deadline);
        let (status, _body) = tokio::time::timeout_at(deadline, attempt)
            .await
            .unwrap_or_else(|_| Err(MasvError::Timeout { call: call.clone() }))?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(MasvError::KeyRejected {
                status: status.as_u16(),
            }),
            _ => Err(MasvError::Status {
                call,
                status: status.as_u16(),
                message: "(answer not quoted: it could echo the key)".into(),
            }),
        }
    }
}
