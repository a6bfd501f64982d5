//! How Vault's answers are fetched: vaultrs describes each request and its
//! answer (endpoints and their types), and this transport sends them with the
//! adapter's own HTTP client, reading every answer in chunks and refusing it
//! once it passes a size limit, so a broken or hostile server, or a proxy in
//! between, cannot make the daemon buffer an answer of any size.

use async_trait::async_trait;
use rustify::endpoint::Endpoint;
use rustify::errors::ClientError as HttpError;
use vaultrs::api::EndpointMiddleware;
use vaultrs::api::EndpointResult;
use vaultrs::error::ClientError;

use super::ops::op_of;
use crate::bounded_body::read_limited;
use crate::traffic::{no_answer, Traffic};

/// The most any Vault answer may weigh (a secret, its metadata, a login).
pub const VAULT_BODY_LIMIT: usize = 256 * 1024;

/// An answer refused for passing the size limit, as the error source rustify
/// carries in `ResponseError`.
#[derive(Debug, thiserror::Error)]
pub enum AnswerRefused {
    /// The answer to a vaultrs endpoint.
    #[error("answer to {method} {url} larger than {limit} bytes, refused")]
    Endpoint {
        method: String,
        url: String,
        limit: usize,
    },
    /// The answer to a raw call (an endpoint vaultrs does not wrap).
    #[error("answer larger than {limit} bytes, refused")]
    Raw { limit: usize },
}

/// An HTTP client for one Vault address that reads answers up to a limit.
pub struct Transport {
    base: String,
    http: reqwest::Client,
    limit: usize,
    traffic: Traffic,
}

impl Transport {
    pub fn new(base: &str, http: reqwest::Client, limit: usize, traffic: Traffic) -> Self {
        Transport {
            base: base.trim_end_matches('/').to_string(),
            http,
            limit,
            traffic,
        }
    }

    /// Sends `request` and counts it by what came back (a status, or none).
    pub async fn execute(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
        let op = op_of(request.method().as_str(), request.url().path());
        let sent = self.http.execute(request).await;
        let code = match &sent {
            Ok(response) => response.status().as_str().to_string(),
            Err(e) if e.is_timeout() => no_answer::TIMEOUT.into(),
            Err(e) if e.is_connect() => no_answer::NOT_SENT.into(),
            Err(_) => no_answer::LOST.into(),
        };
        self.traffic.vault(op, &code);
        sent
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sends `endpoint` with `client`'s token and namespace; returns its `data`.
    pub async fn exec<E: Endpoint>(
        &self,
        client: &EndpointMiddleware,
        endpoint: E,
    ) -> Result<Option<E::Response>, ClientError> {
        Ok(self.exec_wrapped(client, endpoint).await?.data)
    }

    /// Sends `endpoint`; returns the whole answer (`data`, `auth`, lease).
    pub async fn exec_wrapped<E: Endpoint>(
        &self,
        client: &EndpointMiddleware,
        endpoint: E,
    ) -> Result<EndpointResult<E::Response>, ClientError> {
        endpoint
            .with_middleware(client)
            .exec(self)
            .await
            .map_err(api_error)?
            .wrap::<EndpointResult<_>>()
            .map_err(ClientError::from)
    }

    /// Sends `endpoint`, whose answer has no body.
    pub async fn exec_empty<E: Endpoint>(
        &self,
        client: &EndpointMiddleware,
        endpoint: E,
    ) -> Result<(), ClientError> {
        endpoint
            .with_middleware(client)
            .exec(self)
            .await
            .map_err(api_error)
            .map(|_| ())
    }
}

/// An error answer as vaultrs reports it: Vault's `errors` list when there is one.
fn api_error(e: HttpError) -> ClientError {
    if let HttpError::ServerResponseError {
        code,
        content: Some(content),
    } = &e
    {
        if let Ok(parsed) = serde_json::from_str::<vaultrs::api::EndpointError>(content) {
            return ClientError::APIError {
                code: *code,
                errors: parsed.errors,
            };
        }
    }
    ClientError::from(e)
}

#[async_trait]
impl rustify::client::Client for Transport {
    fn base(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let request = reqwest::Request::try_from(req)
            .map_err(|e| HttpError::ReqwestBuildError { source: e })?;
        let url = request.url().path().to_string();
        let method = request.method().to_string();
        let response = self
            .execute(request)
            .await
            .map_err(|e| HttpError::RequestError {
                source: e.into(),
                url: url.clone(),
                method: method.clone(),
            })?;
        let mut answer = http::Response::builder().status(response.status().as_u16());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let body = read_limited(response, self.limit)
            .await
            .map_err(|e| HttpError::ResponseError { source: e.into() })?
            .ok_or_else(|| HttpError::ResponseError {
                source: AnswerRefused::Endpoint {
                    method,
                    url,
                    limit: self.limit,
                }
                .into(),
            })?;
        answer
            .body(body.to_vec())
            .map_err(|e| HttpError::ResponseError { source: e.into() })
    }
}
