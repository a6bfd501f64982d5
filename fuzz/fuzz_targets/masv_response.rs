//! Arbitrary bytes as a MASV response body, decoded as every type the client
//! decodes from the network (and the request bodies the simulator decodes).
//!
//! Properties:
//! - whatever decodes re-serializes, and the re-serialized JSON decodes to the same
//!   value (timestamps truncated to the millisecond, which is all MASV's format
//!   keeps) and serializes to the same bytes (decode is stable);
//! - the flattened non-secret part of a create response equals what `ApiKey` decodes;
//! - the `Debug` output of a create or auth response does not depend on the secret
//!   (`key`, `token`) and never contains it;
//! - a failed decode's error message does not contain the secret either.
#![no_main]

use chrono::{DateTime, Timelike, Utc};
use libfuzzer_sys::fuzz_target;
use masv_key_rotator::masv::types::{Team, User};
use masv_key_rotator::masv::{ApiKey, AuthResponse, CreatedApiKey, NewApiKey, UpdateApiKey};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The value as MASV's wire format can carry it: timestamps to the millisecond.
trait Wire {
    fn wire(&self) -> Self;
}

fn ms(t: &Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.map(|t| {
        t.with_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap()
    })
}

impl Wire for ApiKey {
    fn wire(&self) -> Self {
        ApiKey {
            created_at: ms(&self.created_at),
            updated_at: ms(&self.updated_at),
            expiry: ms(&self.expiry),
            last_request_at: ms(&self.last_request_at),
            ..self.clone()
        }
    }
}

impl Wire for NewApiKey {
    fn wire(&self) -> Self {
        NewApiKey {
            expiry: ms(&self.expiry),
            ..self.clone()
        }
    }
}

impl Wire for UpdateApiKey {
    fn wire(&self) -> Self {
        UpdateApiKey {
            expiry: ms(&self.expiry),
            ..self.clone()
        }
    }
}

impl Wire for Team {
    fn wire(&self) -> Self {
        self.clone()
    }
}

impl Wire for User {
    fn wire(&self) -> Self {
        self.clone()
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn wire(&self) -> Self {
        self.iter().map(Wire::wire).collect()
    }
}

/// Decodes, and if that works checks serialize → decode → serialize is stable.
fn stable<T>(data: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug + Wire,
{
    let value: T = serde_json::from_slice(data).ok()?;
    check_stable(&value);
    Some(value)
}

fn check_stable<T>(value: &T)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug + Wire,
{
    let bytes = serde_json::to_vec(value).expect("a decoded value does not serialize");
    let back: T = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{value:?} serialized as {} does not decode: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(
        back,
        value.wire(),
        "decode is not stable; serialized: {}",
        String::from_utf8_lossy(&bytes)
    );
    let again = serde_json::to_vec(&back).unwrap();
    assert_eq!(bytes, again, "serialization is not stable");
}

/// Every string (keys and values) in a JSON tree.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        Value::Number(n) => out.push(n.to_string()),
        _ => {}
    }
}

/// The secret under `field` of a JSON object, if it is a long enough string that
/// occurs nowhere else in the document (raw or decoded): then finding it in a
/// message can only mean the secret leaked.
fn lone_secret(data: &[u8], field: &str) -> Option<String> {
    let Value::Object(mut map) = serde_json::from_slice::<Value>(data).ok()? else {
        return None;
    };
    let secret = match map.remove(field)? {
        Value::String(s) if s.chars().count() >= 8 => s,
        _ => return None,
    };
    let mut others = vec![field.to_string()];
    strings(&Value::Object(map), &mut others);
    if others.iter().any(|s| s.contains(&secret)) {
        return None;
    }
    let raw = String::from_utf8_lossy(data);
    if raw.matches(secret.as_str()).count() > 1 {
        return None;
    }
    Some(secret)
}

fuzz_target!(|data: &[u8]| {
    stable::<Vec<ApiKey>>(data);
    let single = stable::<ApiKey>(data);
    stable::<NewApiKey>(data);
    stable::<UpdateApiKey>(data);

    match serde_json::from_slice::<CreatedApiKey>(data) {
        Ok(created) => {
            check_stable(&created.key);
            if let Some(single) = &single {
                assert_eq!(
                    &created.key, single,
                    "flattened key part differs from ApiKey"
                );
            }
            let secret = created.secret.expose_secret().to_string();
            let debug = format!("{created:?}");
            let other = CreatedApiKey {
                key: created.key.clone(),
                secret: SecretString::from(format!("{secret}-other")),
            };
            assert_eq!(debug, format!("{other:?}"), "Debug depends on the secret");
            if secret.chars().count() >= 8 && !format!("{:?}", created.key).contains(&secret) {
                assert!(!debug.contains(&secret), "secret in Debug: {debug}");
            }
        }
        Err(e) => {
            if let Some(secret) = lone_secret(data, "key") {
                assert!(
                    !e.to_string().contains(&secret),
                    "create-response error shows the secret: {e}"
                );
            }
        }
    }

    match serde_json::from_slice::<AuthResponse>(data) {
        Ok(auth) => {
            check_stable(&auth.teams);
            check_stable(&auth.user);
            let token = auth.token.expose_secret().to_string();
            let debug = format!("{auth:?}");
            let other = AuthResponse {
                teams: auth.teams.clone(),
                token: SecretString::from(format!("{token}-other")),
                user: auth.user.clone(),
            };
            assert_eq!(debug, format!("{other:?}"), "Debug depends on the token");
            let public = format!("{:?}{:?}", auth.teams, auth.user);
            if token.chars().count() >= 8 && !public.contains(&token) {
                assert!(!debug.contains(&token), "token in Debug: {debug}");
            }
        }
        Err(e) => {
            if let Some(token) = lone_secret(data, "token") {
                assert!(
                    !e.to_string().contains(&token),
                    "auth-response error shows the token: {e}"
                );
            }
        }
    }
    stable::<Vec<Team>>(data);
    stable::<User>(data);
});
