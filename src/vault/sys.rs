//! Calls to Vault's `sys/` endpoints, which vaultrs does not wrap or parses
//! too strictly: whether Vault is unsealed, and whether the credentials may
//! write under the prefix. Sent as raw JSON with the transport's client and
//! size limit.

use vaultrs::error::ClientError;

use super::session::Caller;
use super::transport::{AnswerRefused, Transport};
use super::{VaultError, VaultStore};
use crate::bounded_body::read_limited;

impl VaultStore {
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
    let request = request.build().map_err(failed)?;
    let response = transport.execute(request).await.map_err(failed)?;
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
