//! The simulator's HTTP routes and the fault-injection layer in front of them.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::faults::{self, FaultKind};
use super::state::{Refusal, SimKey};
use super::{RequestRecord, Simulator};
use crate::masv::time;
use crate::masv::KeyState;

pub(crate) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/v1/auth", post(auth))
        .route(
            "/v1/teams/{team_id}/api_keys",
            get(list_keys).post(create_key),
        )
        .route("/v1/api_keys/{key_id}", put(update_key).delete(delete_key))
        .route("/v1/api_keys/{key_id}/{action}", put(toggle_key))
        .route("/v1/teams/{team_id}/packages", get(packages))
        .layer(middleware::from_fn_with_state(sim.clone(), fault_layer))
        .with_state(sim)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized(m) => error(StatusCode::UNAUTHORIZED, m),
            Refusal::Forbidden(m) => error(StatusCode::FORBIDDEN, m),
            Refusal::NotFound(m) => error(StatusCode::NOT_FOUND, m),
            Refusal::BadRequest(m) => error(StatusCode::BAD_REQUEST, &m),
            Refusal::Conflict(m) => error(StatusCode::CONFLICT, m),
        }
    }
}

async fn fault_layer(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let fault = {
        let mut list = sim.inner.faults.lock().expect("poisoned");
        faults::take(&mut list, &method, &path)
    };
    let (response, dropped) = match fault {
        None => (next.run(req).await, false),
        Some(FaultKind::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (error(status, "fault injected"), false)
        }
        Some(FaultKind::RateLimited { retry_after }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limited");
            if let Some(after) = retry_after {
                if let Ok(v) = HeaderValue::from_str(&after.as_secs().to_string()) {
                    r.headers_mut().insert("retry-after", v);
                }
            }
            (r, false)
        }
        Some(FaultKind::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            (next.run(req).await, false)
        }
        Some(FaultKind::DropConnection) => (faults::dropped(), true),
        Some(FaultKind::LoseCreateResponse | FaultKind::LoseResponse) => {
            let _committed = next.run(req).await;
            (faults::dropped(), true)
        }
        Some(FaultKind::EchoRequest(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            (echo(status, req).await, false)
        }
        Some(FaultKind::Replace {
            status,
            body,
            chunked,
        }) => {
            let _handled = next.run(req).await;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            (raw_json(status, body, chunked), false)
        }
        Some(FaultKind::Rewrite { from, to }) => {
            let answer = next.run(req).await;
            let (parts, body) = answer.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).replace(&from, &to);
            (raw_json(parts.status, Bytes::from(text), false), false)
        }
        Some(FaultKind::MalformedBody) => {
            let _handled = next.run(req).await;
            let mut r = (StatusCode::OK, "{\"id\": \"01F3NH1N\", \"state\": ").into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            (r, false)
        }
    };
    let status = if dropped {
        0
    } else {
        response.status().as_u16()
    };
    sim.inner
        .requests
        .lock()
        .expect("poisoned")
        .push(RequestRecord {
            method: method.to_string(),
            path,
            status,
            at: sim.now(),
        });
    response
}

/// An error answer quoting the request whole: method, path, every header, body.
async fn echo(status: StatusCode, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    let headers: Vec<String> = parts
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let message = format!(
        "cannot process {} {} (headers: {}) body: {}",
        parts.method,
        parts.uri,
        headers.join(", "),
        String::from_utf8_lossy(&body)
    );
    error(status, &message)
}

/// A JSON answer with exactly `body`; `chunked` hides its length until read.
fn raw_json(status: StatusCode, body: Bytes, chunked: bool) -> Response {
    let mut r = if chunked {
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        (status, Body::from_stream(futures::stream::iter(chunks))).into_response()
    } else {
        (status, body).into_response()
    };
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn key_json(k: &SimKey, with_secret: bool) -> Value {
    let mut v = json!({
        "id": k.id,
        "name": k.name,
        "description": k.description,
        "state": k.state.as_str(),
        "created_at": time::format(Some(k.created_at)),
        "updated_at": time::format(Some(k.updated_at)),
        "expiry": time::format(k.expiry),
        "last_request_at": time::format(k.last_request_at),
    });
    if with_secret {
        v["key"] = Value::String(k.secret.clone());
    }
    v
}

fn user_token(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-user-token").and_then(|v| v.to_str().ok())
}

/// Parses a JSON body the way the API does: malformed or not JSON -> 400.
fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| Refusal::BadRequest(format!("invalid request body: {e}")))
}

#[derive(Deserialize)]
struct AuthBody {
    email: String,
    password: String,
}

async fn auth(State(sim): State<Simulator>, body: Bytes) -> Result<Response, Refusal> {
    let body: AuthBody = parse_body(&body)?;
    let now = sim.now();
    let mut world = sim.inner.world.lock().expect("poisoned");
    let (user, token) = world.login(&body.email, &body.password, now)?;
    let teams: Vec<Value> = user
        .teams
        .iter()
        .map(|t| {
            json!({
                "id": t,
                "name": world.teams.get(t).cloned().unwrap_or_default(),
                "subdomain": t.to_lowercase().chars().take(8).collect::<String>(),
            })
        })
        .collect();
    let primary = user.teams.first().cloned().unwrap_or_default();
    Ok(Json(json!({
        "teams": teams,
        "token": token,
        "user": {
            "email": user.email,
            "id": user.id,
            "level": "basic",
            "name": "Simulated user",
            "preferred_team_id": primary,
            "primary_team_id": primary,
            "time_zone": "UTC",
        },
    }))
    .into_response())
}

async fn list_keys(
    State(sim): State<Simulator>,
    Path(team_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let now = sim.now();
    let ttl = sim.jwt_ttl();
    let world = sim.inner.world.lock().expect("poisoned");
    let user = world.user_by_token(user_token(&headers), now, ttl)?;
    world.check_team(user, &team_id)?;
    let keys: Vec<Value> = world
        .visible_keys(user, &team_id)
        .into_iter()
        .map(|k| key_json(k, false))
        .collect();
    Ok(Json(Value::Array(keys)).into_response())
}

#[derive(Deserialize)]
struct KeyBody {
    name: Option<String>,
    description: Option<String>,
    expiry: Option<String>,
    state: Option<String>,
}

fn parse_state(state: Option<&str>) -> Result<KeyState, Refusal> {
    match state {
        Some("active") => Ok(KeyState::Active),
        Some("inactive") => Ok(KeyState::Inactive),
        Some(other) => Err(Refusal::BadRequest(format!(
            "state must be active or inactive, not {other:?}"
        ))),
        None => Err(Refusal::BadRequest("state is required".into())),
    }
}

fn parse_expiry(expiry: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, Refusal> {
    match expiry {
        None => Ok(None),
        Some(s) => time::parse(s).map_err(|e| Refusal::BadRequest(e.to_string())),
    }
}

async fn create_key(
    State(sim): State<Simulator>,
    Path(team_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let now = sim.now();
    let ttl = sim.jwt_ttl();
    let mut world = sim.inner.world.lock().expect("poisoned");
    let user = world.user_by_token(user_token(&headers), now, ttl)?.clone();
    world.check_team(&user, &team_id)?;
    let body: KeyBody = parse_body(&body)?;
    let state = parse_state(body.state.as_deref())?;
    let expiry = parse_expiry(body.expiry.as_deref())?;
    let key = SimKey {
        id: ulid::Ulid::new().to_string(),
        team_id,
        owner_user_id: user.id.clone(),
        name: body.name.unwrap_or_default(),
        description: body.description.unwrap_or_default(),
        state,
        created_at: now,
        updated_at: now,
        expiry,
        last_request_at: None,
        secret: world.new_secret(),
    };
    let json = key_json(&key, true);
    world.insert_key(key);
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

async fn update_key(
    State(sim): State<Simulator>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let now = sim.now();
    let ttl = sim.jwt_ttl();
    let mut world = sim.inner.world.lock().expect("poisoned");
    let user = world.user_by_token(user_token(&headers), now, ttl)?.clone();
    world.check_key(&user, &key_id)?;
    let body: KeyBody = parse_body(&body)?;
    let state = parse_state(body.state.as_deref())?;
    let expiry = parse_expiry(body.expiry.as_deref())?;
    let key = world
        .keys
        .get_mut(&key_id)
        .ok_or(Refusal::NotFound("api key not found"))?;
    if key.state == KeyState::Suspended && state != KeyState::Suspended {
        return Err(Refusal::Conflict(
            "a suspended key cannot be activated or deactivated",
        ));
    }
    if let Some(name) = body.name {
        key.name = name;
    }
    if let Some(d) = body.description {
        key.description = d;
    }
    if body.expiry.is_some() {
        key.expiry = expiry;
    }
    key.state = state;
    key.updated_at = now;
    Ok(Json(key_json(key, false)).into_response())
}

async fn toggle_key(
    State(sim): State<Simulator>,
    Path((key_id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let now = sim.now();
    let ttl = sim.jwt_ttl();
    let mut world = sim.inner.world.lock().expect("poisoned");
    let user = world.user_by_token(user_token(&headers), now, ttl)?.clone();
    let state = parse_state(Some(action.as_str()))?;
    world.check_key(&user, &key_id)?;
    let key = world
        .keys
        .get_mut(&key_id)
        .ok_or(Refusal::NotFound("api key not found"))?;
    if key.state == KeyState::Suspended {
        return Err(Refusal::Conflict(
            "a suspended key cannot be activated or deactivated",
        ));
    }
    key.state = state;
    key.updated_at = now;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_key(
    State(sim): State<Simulator>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let now = sim.now();
    let ttl = sim.jwt_ttl();
    let mut world = sim.inner.world.lock().expect("poisoned");
    let user = world.user_by_token(user_token(&headers), now, ttl)?.clone();
    world.check_key(&user, &key_id)?;
    if let Some(removed) = world.remove_key(&key_id) {
        if removed.state == KeyState::Active {
            world.deleted_active.push(removed.id);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn packages(
    State(sim): State<Simulator>,
    Path(team_id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let _ = method;
    let now = sim.now();
    let ttl = sim.jwt_ttl();
    let mut world = sim.inner.world.lock().expect("poisoned");
    if let Some(secret) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        let key_id = world
            .by_secret
            .get(secret)
            .cloned()
            .ok_or(Refusal::Unauthorized("invalid API key"))?;
        let key = world
            .keys
            .get_mut(&key_id)
            .ok_or(Refusal::Unauthorized("invalid API key"))?;
        let usable = key.team_id == team_id
            && key.state == KeyState::Active
            && key.expiry.is_none_or(|e| e > now);
        if !usable {
            return Err(Refusal::Unauthorized("API key not valid for this team"));
        }
        key.last_request_at = Some(now);
        return Ok(Json(json!([])).into_response());
    }
    let user = world.user_by_token(user_token(&headers), now, ttl)?;
    if !user.teams.iter().any(|t| t == &team_id) {
        return Err(Refusal::Forbidden("not a member of this team"));
    }
    Ok(Json(json!([])).into_response())
}
