//! The user token: logging in (`POST /auth`) on demand or on request, and one
//! shared re-login when the token is refused (a generation counter tells
//! whether someone else already replaced it). The password goes out only in
//! the login's body; the login's error answers are never quoted.

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::time::Instant;
use tracing::debug;

use super::calls::Request;
use super::exchange::Auth;
use super::MasvClient;
use crate::masv::answers::decode_wiping;
use crate::masv::error::MasvError;
use crate::masv::types::AuthResponse;
use crate::redact;

/// Who the client logged in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginInfo {
    pub user_id: String,
    pub team_ids: Vec<String>,
}

/// The user token, and how many times it has been replaced.
#[derive(Default)]
pub(super) struct Session {
    token: Option<SecretString>,
    generation: u64,
}

impl MasvClient {
    /// Logs in unless someone else already replaced token generation `seen`.
    pub(super) async fn ensure_login(
        &self,
        seen: Option<u64>,
        deadline: Instant,
    ) -> Result<u64, MasvError> {
        let mut session = self.inner.session.lock().await;
        if session.token.is_some() && seen != Some(session.generation) {
            return Ok(session.generation);
        }
        let (token, _) = self.do_login(deadline).await?;
        session.token = Some(token);
        session.generation += 1;
        Ok(session.generation)
    }

    /// The user token requests carry now, if logged in.
    pub(super) async fn user_token(&self) -> Option<SecretString> {
        self.inner.session.lock().await.token.clone()
    }

    /// The generation of the token requests carry now, if logged in.
    pub(super) async fn current_generation(&self) -> Option<u64> {
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
                    endpoint: "login",
                    method: &Method::POST,
                    url: &self.url(&["auth"]),
                    auth: Auth::None,
                    body: Some(&body),
                },
                Some(&self.inner.counters.logins),
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
}
