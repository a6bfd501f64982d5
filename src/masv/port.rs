//! The MASV client as the engine's key API: its answers converted into the
//! engine's model, its errors into the kinds the engine acts on.

use secrecy::SecretString;

use super::{MasvClient, MasvError, NewApiKey};
use crate::engine::key::{CreatedKey, Key, KeyAction, NewKey};
use crate::engine::ports::{KeyApi, KeyApiError, KeyErrorKind};

impl From<MasvError> for KeyApiError {
    fn from(e: MasvError) -> Self {
        let kind = match &e {
            _ if e.is_unreachable() => KeyErrorKind::Unreachable,
            MasvError::OutcomeUnknown { .. } => KeyErrorKind::OutcomeUnknown,
            MasvError::NotFound { .. } => KeyErrorKind::NotFound,
            MasvError::Conflict { .. } => KeyErrorKind::Conflict,
            _ => KeyErrorKind::Other,
        };
        KeyApiError::new(kind, e.to_string())
    }
}

impl KeyApi for MasvClient {
    async fn list_keys(&self, team_id: &str) -> Result<Vec<Key>, KeyApiError> {
        let keys = MasvClient::list_keys(self, team_id).await?;
        Ok(keys.into_iter().map(Key::from).collect())
    }

    async fn create_key(&self, team_id: &str, new: &NewKey) -> Result<CreatedKey, KeyApiError> {
        let created = MasvClient::create_key(self, team_id, &NewApiKey::from(new)).await?;
        Ok(created.into())
    }

    async fn set_key_state(&self, key_id: &str, action: KeyAction) -> Result<(), KeyApiError> {
        Ok(MasvClient::set_key_state(self, key_id, action).await?)
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), KeyApiError> {
        Ok(MasvClient::delete_key(self, key_id).await?)
    }

    async fn check_key(&self, team_id: &str, secret: &SecretString) -> Result<(), KeyApiError> {
        Ok(MasvClient::check_key(self, team_id, secret).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_text_and_the_kinds_the_engine_acts_on() {
        let call = || "POST /teams/T/api_keys".to_string();
        let cases = [
            (
                MasvError::OutcomeUnknown {
                    call: call(),
                    reason: "connection reset".into(),
                },
                KeyErrorKind::OutcomeUnknown,
            ),
            (MasvError::NotFound { call: call() }, KeyErrorKind::NotFound),
            (
                MasvError::Conflict {
                    call: call(),
                    message: "suspended".into(),
                },
                KeyErrorKind::Conflict,
            ),
            (
                MasvError::Timeout { call: call() },
                KeyErrorKind::Unreachable,
            ),
            (
                MasvError::Server {
                    call: call(),
                    status: 503,
                },
                KeyErrorKind::Unreachable,
            ),
            (
                MasvError::Unreachable {
                    call: call(),
                    reason: "refused".into(),
                },
                KeyErrorKind::Unreachable,
            ),
            (MasvError::KeyRejected { status: 401 }, KeyErrorKind::Other),
            (MasvError::Forbidden { call: call() }, KeyErrorKind::Other),
        ];
        for (masv, kind) in cases {
            let text = masv.to_string();
            let unreachable = masv.is_unreachable();
            let port = KeyApiError::from(masv);
            assert_eq!(port.kind(), kind, "{text}");
            assert_eq!(port.to_string(), text);
            assert_eq!(port.is_unreachable(), unreachable, "{text}");
        }
    }
}
