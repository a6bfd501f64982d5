//! One HTTP exchange with MASV: the request with its credentials (marked
//! sensitive), a concurrency permit held only while on the wire, and the answer
//! read up to its limit, each failure told apart (never sent, timed out, lost)
//! because the retry loops treat them differently.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};

use super::MasvClient;
use crate::bounded_body::read_limited;
use crate::masv::answers::{exchange_failure, BODY_LIMIT};
use crate::masv::retry::parse_retry_after;
use crate::traffic::no_answer;

/// How a request authenticates.
pub(super) enum Auth<'a> {
    User,
    ApiKey(&'a SecretString),
    None,
}

/// One HTTP exchange's result, before interpretation.
pub(super) enum Exchange {
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

impl MasvClient {
    /// One HTTP exchange, holding a concurrency permit only while on the wire.
    /// A success body may weigh up to `limit`; an error body up to [`BODY_LIMIT`].
    pub(super) async fn exchange(
        &self,
        endpoint: &'static str,
        method: &Method,
        url: &reqwest::Url,
        auth: &Auth<'_>,
        body: Option<&serde_json::Value>,
        limit: usize,
    ) -> Exchange {
        let token = match auth {
            Auth::User => self.user_token().await,
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
        self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        let exchange = self.send_and_read(req, limit).await;
        let code = match &exchange {
            Exchange::Response { status, .. } | Exchange::TooLarge { status, .. } => {
                status.as_str()
            }
            Exchange::NotSent(_) => no_answer::NOT_SENT,
            Exchange::TimedOut => no_answer::TIMEOUT,
            Exchange::Lost(_) => no_answer::LOST,
        };
        self.inner.traffic.masv(endpoint, code);
        exchange
    }

    /// Sends `req` and reads its answer up to the limit that fits its status.
    async fn send_and_read(&self, req: reqwest::RequestBuilder, limit: usize) -> Exchange {
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
}
