//! What comes back from MASV, and how it is taken: the body limits,
//! ids checked before they go anywhere near a URL, quotes of error answers
//! cleaned of secrets and control characters, secret-bearing answers wiped
//! once decoded. The client's calls use these; nothing here talks to the
//! network.

use serde::de::DeserializeOwned;

use super::error::MasvError;
use super::ids::is_masv_id;
use super::types::ApiKey;
use crate::{error_chain, redact};

/// The most a key list may weigh (some thousands of keys).
pub const LIST_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// The most any other answer may weigh, error answers included.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The longest quote of an error answer in an error message.
pub(super) const EXCERPT_CHARS: usize = 200;

/// A cleaned quote of an error answer: its `message` field, or the text.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.into_owned());
    redact::excerpt(&message, EXCERPT_CHARS)
}

/// A failed exchange's error and its causes, cleaned and cut for an error message.
pub(super) fn exchange_failure(e: &reqwest::Error) -> String {
    redact::excerpt(&error_chain::describe(e), 2 * EXCERPT_CHARS)
}

/// An id as an error message shows it: plain when it is a MASV id, else quoted
/// and escaped (it came from outside and may hold anything).
pub(super) fn shown(id: &str) -> String {
    if is_masv_id(id) {
        id.to_string()
    } else {
        redact::excerpt(&format!("{id:?}"), 40)
    }
}

/// `id` as a path segment, if it has the shape of a MASV id.
pub(super) fn checked_id<'a>(call: &str, what: &str, id: &'a str) -> Result<&'a str, MasvError> {
    if is_masv_id(id) {
        Ok(id)
    } else {
        Err(MasvError::Malformed {
            call: call.to_string(),
            reason: format!(
                "{what} {} is not a MASV id (26-character ULID); not sent",
                shown(id)
            ),
        })
    }
}

/// Refuses a response naming a key whose id is not a MASV id.
pub(super) fn check_key_ids<'k>(
    call: &str,
    keys: impl IntoIterator<Item = &'k ApiKey>,
) -> Result<(), MasvError> {
    for key in keys {
        checked_id(call, "the response's key id", &key.id)?;
    }
    Ok(())
}

/// A JSON answer decoded, or `Malformed` with a cleaned reason.
pub(super) fn parse<T: DeserializeOwned>(call: &str, body: &[u8]) -> Result<T, MasvError> {
    serde_json::from_slice(body).map_err(|e| MasvError::Malformed {
        call: call.to_string(),
        reason: redact::excerpt(&e.to_string(), EXCERPT_CHARS),
    })
}

/// A key list as `list_keys` takes it: every key decoded and its id a MASV id,
/// or the whole list refused.
pub fn decode_key_list(call: &str, body: &[u8]) -> Result<Vec<ApiKey>, MasvError> {
    let keys: Vec<ApiKey> = parse(call, body)?;
    check_key_ids(call, &keys)?;
    Ok(keys)
}

/// Decodes a response that carries a secret (a user token, a new key's value),
/// then overwrites the raw body so the secret lives on only in its `SecretString`.
/// A failure says where, never what: serde's message can quote a value.
pub(super) fn decode_wiping<T: serde::de::DeserializeOwned>(
    body: bytes::Bytes,
) -> Result<T, String> {
    // Without a copy when this is the only handle on the buffer.
    let mut raw = Vec::from(body);
    let decoded = serde_json::from_slice(&raw).map_err(|e| {
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    });
    zeroize::Zeroize::zeroize(&mut raw);
    decoded
}
