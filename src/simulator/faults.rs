//! Fault injection: make the next matching request fail in a chosen way.
//!
//! A dropped connection is produced by answering with a body stream that fails
//! before its first byte: hyper then aborts the connection without completing a
//! response, so the client sees a transport error (not an HTTP status), as it
//! would on a reset or a proxy timeout.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// What to do to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (and a JSON error body) without handling the request.
    Status(u16),
    /// `429 Too Many Requests`, with `Retry-After` in whole seconds when given.
    RateLimited { retry_after: Option<Duration> },
    /// Wait this long (real time), then handle the request normally.
    Latency(Duration),
    /// Close the connection without any response; the request is not handled.
    DropConnection,
    /// `POST …/api_keys` only: create the key, then close the connection without a response.
    LoseCreateResponse,
    /// Handle the request, then close the connection without a response.
    LoseResponse,
    /// Handle the request, then answer `200` with a body that is not valid JSON.
    MalformedBody,
    /// Answer with this status and an error message that quotes the whole
    /// request, headers (tokens, API keys) and body (the password) included,
    /// as careless frameworks do. The request is not handled.
    EchoRequest(u16),
    /// Handle the request, then answer with this status and body instead
    /// (`content-type: application/json`). `chunked`: no `Content-Length`,
    /// so the size shows only while reading.
    Replace {
        status: u16,
        body: Bytes,
        chunked: bool,
    },
    /// Handle the request, then answer with its own success body rewritten:
    /// every occurrence of `from` replaced by `to` (e.g. a key's id by a path).
    Rewrite { from: String, to: String },
}

/// A fault and which requests it hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub method: Option<Method>,
    pub path_contains: Option<String>,
    pub kind: FaultKind,
    /// How many matching requests it hits before it is spent.
    pub times: usize,
}

impl Fault {
    /// A fault hitting the next request of any kind, once.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            method: None,
            path_contains: None,
            kind,
            times: 1,
        }
    }

    pub fn on(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    pub fn path(mut self, contains: &str) -> Self {
        self.path_contains = Some(contains.to_string());
        self
    }

    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    pub(crate) fn matches(&self, method: &Method, path: &str) -> bool {
        if self.kind == FaultKind::LoseCreateResponse
            && !(method == Method::POST && path.ends_with("/api_keys"))
        {
            return false;
        }
        self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// Takes the first fault matching the request, spending one of its hits.
pub(crate) fn take(faults: &mut Vec<Fault>, method: &Method, path: &str) -> Option<FaultKind> {
    let i = faults
        .iter()
        .position(|f| f.times > 0 && f.matches(method, path))?;
    let kind = faults[i].kind.clone();
    faults[i].times -= 1;
    if faults[i].times == 0 {
        faults.remove(i);
    }
    Some(kind)
}

/// A response that makes hyper abort the connection before sending anything.
pub(crate) fn dropped() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault injected: connection dropped",
        ))
    });
    (StatusCode::OK, Body::from_stream(stream)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_spent_in_order() {
        let mut faults = vec![
            Fault::new(FaultKind::Status(503)).on(Method::GET).times(2),
            Fault::new(FaultKind::Status(500)),
        ];
        assert_eq!(
            take(&mut faults, &Method::PUT, "/v1/x"),
            Some(FaultKind::Status(500))
        );
        assert_eq!(
            take(&mut faults, &Method::GET, "/v1/x"),
            Some(FaultKind::Status(503))
        );
        assert_eq!(
            take(&mut faults, &Method::GET, "/v1/x"),
            Some(FaultKind::Status(503))
        );
        assert_eq!(take(&mut faults, &Method::GET, "/v1/x"), None);
    }

    #[test]
    fn lose_create_response_only_hits_creates() {
        let mut faults = vec![Fault::new(FaultKind::LoseCreateResponse)];
        assert_eq!(
            take(&mut faults, &Method::GET, "/v1/teams/T/api_keys"),
            None
        );
        assert_eq!(take(&mut faults, &Method::PUT, "/v1/api_keys/K"), None);
        assert_eq!(
            take(&mut faults, &Method::POST, "/v1/teams/T/api_keys"),
            Some(FaultKind::LoseCreateResponse)
        );
    }
}
