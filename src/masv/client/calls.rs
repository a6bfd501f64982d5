//! The retry loops. A call safe to repeat is sent again after a transport
//! failure, a timeout, a 5xx or a 429, with backoff or `Retry-After`, within
//! the policy's attempts and the call's deadline. A call with the user token
//! also logs in on demand and once more on a 401; a `POST` is never repeated
//! once it may have reached MASV (its outcome is then unknown).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use tracing::debug;

use super::exchange::{Auth, Exchange};
use super::MasvClient;
use crate::masv::answers::{excerpt, BODY_LIMIT};
use crate::masv::error::MasvError;

/// A call that is safe to repeat, as `idempotent_call` sends it.
pub(super) struct Request<'a> {
    /// What the call does, for errors and logs.
    pub(super) call: &'a str,
    /// Which endpoint it reaches, for `/metrics`.
    pub(super) endpoint: &'static str,
    pub(super) method: &'a Method,
    pub(super) url: &'a reqwest::Url,
    pub(super) auth: Auth<'a>,
    pub(super) body: Option<&'a serde_json::Value>,
}

impl MasvClient {
    /// A call that is safe to repeat (logging in, a read with an api key):
    /// sent again after a transport failure, a timeout, a 5xx or a 429, within
    /// the retry policy and before `deadline`. Returns the first other answer,
    /// success or not, for the caller to interpret. `attempts` counts every
    /// attempt, if given. Bodies of 5xx and 429 answers are never quoted.
    pub(super) async fn idempotent_call(
        &self,
        request: &Request<'_>,
        attempts: Option<&AtomicU64>,
        deadline: Instant,
    ) -> Result<(StatusCode, Bytes), MasvError> {
        let Request {
            call,
            endpoint,
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
            let delay = match self
                .exchange(endpoint, method, url, auth, body, BODY_LIMIT)
                .await
            {
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
            self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
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
    pub(super) async fn user_call(
        &self,
        call: String,
        endpoint: &'static str,
        method: Method,
        url: reqwest::Url,
        body: Option<serde_json::Value>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes, bool), MasvError> {
        let deadline = Instant::now() + self.inner.retry.deadline;
        let idempotent = method != Method::POST;
        let request = Request {
            call: &call,
            endpoint,
            method: &method,
            url: &url,
            auth: Auth::User,
            body: body.as_ref(),
        };
        let attempts = self.user_attempts(&request, limit, deadline);
        match tokio::time::timeout_at(deadline, attempts).await {
            Ok(result) => result,
            Err(_) if idempotent => Err(MasvError::Timeout { call }),
            Err(_) => Err(MasvError::OutcomeUnknown {
                call,
                reason: "no answer within the call's deadline".into(),
            }),
        }
    }

    /// The attempts of [`MasvClient::user_call`]; `request.auth` is the user token.
    async fn user_attempts(
        &self,
        request: &Request<'_>,
        limit: usize,
        deadline: Instant,
    ) -> Result<(StatusCode, Bytes, bool), MasvError> {
        let Request {
            call,
            endpoint,
            method,
            url,
            ref auth,
            body,
        } = *request;
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
            let outcome = self
                .exchange(endpoint, method, url, auth, body, limit)
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
            self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }
}
