//! The calls on API keys: list, create, update, (de)activate, delete, and the
//! check that a key works. Ids are checked before they go into a URL; a
//! created key's answer is taken only whole (its id a MASV id, its secret of a
//! sane size), else its outcome is unknown and the engine finds it by marker.

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::calls::Request;
use super::exchange::Auth;
use super::MasvClient;
use crate::masv::answers::{
    check_key_ids, checked_id, decode_key_list, decode_wiping, parse, shown, BODY_LIMIT,
    LIST_BODY_LIMIT,
};
use crate::masv::error::MasvError;
use crate::masv::ids::is_masv_id;
use crate::masv::types::{
    ApiKey, CreatedApiKey, KeyAction, NewApiKey, UpdateApiKey, SECRET_MAX_BYTES,
};
use crate::redact;

impl MasvClient {
    /// `GET /teams/{team_id}/api_keys`
    #[tracing::instrument(skip_all, fields(team_id = %team_id))]
    pub async fn list_keys(&self, team_id: &str) -> Result<Vec<ApiKey>, MasvError> {
        let call = format!("list api keys of team {}", shown(team_id));
        let team = checked_id(&call, "team id", team_id)?;
        let url = self.url(&["teams", team, "api_keys"]);
        let (_, body, _) = self
            .user_call(
                call.clone(),
                "list_keys",
                Method::GET,
                url,
                None,
                LIST_BODY_LIMIT,
            )
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
            .user_call(
                call.clone(),
                "create_key",
                Method::POST,
                url,
                Some(body),
                BODY_LIMIT,
            )
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
                "update_key",
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
        self.user_call(call, "set_key_state", Method::PUT, url, None, BODY_LIMIT)
            .await?;
        Ok(())
    }

    /// `DELETE /api_keys/{id}`; a 404 after an attempt whose answer was lost is success.
    #[tracing::instrument(skip_all, fields(key_id = %key_id))]
    pub async fn delete_key(&self, key_id: &str) -> Result<(), MasvError> {
        let call = format!("delete api key {}", shown(key_id));
        let id = checked_id(&call, "key id", key_id)?;
        let url = self.url(&["api_keys", id]);
        self.user_call(call, "delete_key", Method::DELETE, url, None, BODY_LIMIT)
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
            endpoint: "check_key",
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
