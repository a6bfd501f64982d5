//! The MASV client against the simulator: every call, re-login, retries,
//! Retry-After, no blind retry of create, outcome unknown, timestamps, concurrency.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, TimeZone, Utc};
use masv_key_rotator::clock::{ManualClock, SharedClock};
use masv_key_rotator::masv::{
    KeyAction, KeyState, MasvClient, MasvError, MasvSettings, NewApiKey, RetryPolicy, UpdateApiKey,
};
use masv_key_rotator::simulator::{Fault, FaultKind, RunningSimulator, SeedKey, Simulator};
use reqwest::Method;
use secrecy::SecretString;

const TEAM: &str = "01FB4S68W7RAW4M89801H1C4CR";

struct Rig {
    clock: ManualClock,
    sim: Simulator,
    running: RunningSimulator,
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: StdDuration::from_millis(10),
        max_delay: StdDuration::from_millis(50),
        max_retry_after: StdDuration::from_secs(5),
        deadline: StdDuration::from_secs(20),
    }
}

impl Rig {
    async fn new() -> Self {
        let clock = ManualClock::new(Utc::now());
        let shared: SharedClock = Arc::new(clock.clone());
        let sim = Simulator::with_owner(shared, TEAM, "owner@studio.example", "owner-pw");
        let running = sim.spawn().await.unwrap();
        Rig {
            clock,
            sim,
            running,
        }
    }

    fn client_with(
        &self,
        password: &str,
        max_concurrency: usize,
        timeout: StdDuration,
    ) -> MasvClient {
        MasvClient::new(MasvSettings {
            base_url: self.running.base_url.clone(),
            email: "owner@studio.example".into(),
            password: SecretString::from(password.to_string()),
            timeout,
            max_concurrency,
            retry: fast_retry(),
        })
        .unwrap()
    }

    fn client(&self) -> MasvClient {
        self.client_with("owner-pw", 8, StdDuration::from_secs(5))
    }

    fn count(&self, method: &str, path_part: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_part))
            .count()
    }
}

fn new_key(name: &str) -> NewApiKey {
    NewApiKey {
        name: name.into(),
        description: "marker".into(),
        expiry: Some(Utc::now() + Duration::days(30)),
        state: KeyAction::Inactive,
    }
}

#[tokio::test]
async fn every_call_round_trips() {
    let rig = Rig::new().await;
    let c = rig.client();
    let info = c.login().await.unwrap();
    assert_eq!(info.team_ids, vec![TEAM.to_string()]);
    let created = c.create_key(TEAM, &new_key("ci-build")).await.unwrap();
    assert_eq!(created.key.state, KeyState::Inactive);
    assert_eq!(
        rig.sim.key(&created.key.id).unwrap().secret,
        secrecy::ExposeSecret::expose_secret(&created.secret)
    );
    let listed = c.list_keys(TEAM).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.key.id);
    let updated = c
        .update_key(
            &created.key.id,
            &UpdateApiKey {
                name: None,
                description: Some("new".into()),
                expiry: None,
                state: KeyAction::Inactive,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.description, "new");
    c.set_key_state(&created.key.id, KeyAction::Active)
        .await
        .unwrap();
    assert_eq!(
        rig.sim.key(&created.key.id).unwrap().state,
        KeyState::Active
    );
    c.check_key(TEAM, &created.secret).await.unwrap();
    assert!(rig
        .sim
        .key(&created.key.id)
        .unwrap()
        .last_request_at
        .is_some());
    c.set_key_state(&created.key.id, KeyAction::Inactive)
        .await
        .unwrap();
    assert!(matches!(
        c.check_key(TEAM, &created.secret).await,
        Err(MasvError::KeyRejected { status: 401 })
    ));
    c.delete_key(&created.key.id).await.unwrap();
    assert!(rig.sim.key(&created.key.id).is_none());
    assert!(matches!(
        c.delete_key(&created.key.id).await,
        Err(MasvError::NotFound { .. })
    ));
}

#[tokio::test]
async fn expired_token_means_exactly_one_relogin() {
    let rig = Rig::new().await;
    rig.sim.set_jwt_ttl(Duration::minutes(10));
    let c = rig.client();
    c.list_keys(TEAM).await.unwrap();
    assert_eq!(rig.count("POST", "/auth"), 1, "login on demand");
    rig.clock.advance(Duration::minutes(11));
    c.list_keys(TEAM).await.unwrap();
    assert_eq!(
        rig.count("POST", "/auth"),
        2,
        "one fresh login after the 401"
    );
    assert_eq!(rig.count("GET", "/api_keys"), 3);
}

#[tokio::test]
async fn concurrent_401s_share_one_relogin() {
    let rig = Rig::new().await;
    rig.sim.set_jwt_ttl(Duration::minutes(10));
    let c = rig.client();
    c.list_keys(TEAM).await.unwrap();
    rig.clock.advance(Duration::minutes(11));
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.list_keys(TEAM).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(rig.count("POST", "/auth"), 2, "no login stampede");
}

#[tokio::test]
async fn second_401_is_unauthorized() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim
        .inject(Fault::new(FaultKind::Status(401)).on(Method::GET).times(2));
    let err = c.list_keys(TEAM).await.unwrap_err();
    assert!(matches!(err, MasvError::Unauthorized { .. }), "{err}");
    assert_eq!(rig.count("POST", "/auth"), 2);
}

#[tokio::test]
async fn wrong_password_is_login_rejected_without_retry() {
    let rig = Rig::new().await;
    let c = rig.client_with("wrong", 8, StdDuration::from_secs(5));
    let err = c.list_keys(TEAM).await.unwrap_err();
    assert!(
        matches!(err, MasvError::LoginRejected { status: 401 }),
        "{err}"
    );
    assert_eq!(rig.count("POST", "/auth"), 1);
    assert!(!err.to_string().contains("wrong"));
}

#[tokio::test]
async fn idempotent_calls_retry_5xx_then_succeed() {
    let rig = Rig::new().await;
    let c = rig.client();
    let seeded = rig.sim.seed_key(TEAM, SeedKey::active("ci"));
    c.login().await.unwrap();
    rig.sim
        .inject(Fault::new(FaultKind::Status(503)).on(Method::GET).times(2));
    rig.sim
        .inject(Fault::new(FaultKind::Status(502)).on(Method::PUT));
    rig.sim
        .inject(Fault::new(FaultKind::Status(500)).on(Method::DELETE));
    assert_eq!(c.list_keys(TEAM).await.unwrap().len(), 1);
    assert_eq!(rig.count("GET", "/api_keys"), 3);
    c.set_key_state(&seeded.id, KeyAction::Inactive)
        .await
        .unwrap();
    assert_eq!(rig.count("PUT", "/inactive"), 2);
    c.delete_key(&seeded.id).await.unwrap();
    assert_eq!(rig.count("DELETE", "/api_keys"), 2);
    assert!(c.stats().retries >= 4);
}

/// Logging in and checking a key are safe to repeat: a 5xx, a 429 or a dropped
/// connection is retried; a refusal is not.
#[tokio::test]
async fn login_and_key_check_retry_transient_failures_only() {
    let rig = Rig::new().await;
    let c = rig.client();
    rig.sim.inject(
        Fault::new(FaultKind::Status(503))
            .on(Method::POST)
            .path("/auth"),
    );
    rig.sim.inject(
        Fault::new(FaultKind::RateLimited { retry_after: None })
            .on(Method::POST)
            .path("/auth"),
    );
    c.login().await.unwrap();
    assert_eq!(rig.count("POST", "/auth"), 3);
    assert_eq!(c.stats().logins, 3, "every attempt counts as a login");

    let created = c.create_key(TEAM, &new_key("ci")).await.unwrap();
    c.set_key_state(&created.key.id, KeyAction::Active)
        .await
        .unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::Status(500))
            .on(Method::GET)
            .path("/packages"),
    );
    rig.sim.inject(
        Fault::new(FaultKind::DropConnection)
            .on(Method::GET)
            .path("/packages"),
    );
    c.check_key(TEAM, &created.secret).await.unwrap();
    assert_eq!(rig.count("GET", "/packages"), 3);

    rig.sim.inject(
        Fault::new(FaultKind::Status(502))
            .on(Method::GET)
            .path("/packages")
            .times(10),
    );
    let err = c.check_key(TEAM, &created.secret).await.unwrap_err();
    assert!(
        matches!(err, MasvError::Server { status: 502, .. }),
        "{err}"
    );
    assert_eq!(rig.count("GET", "/packages"), 3 + 4, "max_attempts");

    rig.sim.clear_faults();
    c.set_key_state(&created.key.id, KeyAction::Inactive)
        .await
        .unwrap();
    let before = rig.count("GET", "/packages");
    assert!(matches!(
        c.check_key(TEAM, &created.secret).await,
        Err(MasvError::KeyRejected { status: 401 })
    ));
    assert_eq!(rig.count("GET", "/packages"), before + 1, "no retry");
}

#[tokio::test]
async fn persistent_5xx_gives_up_as_server_error() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim
        .inject(Fault::new(FaultKind::Status(503)).on(Method::GET).times(10));
    let err = c.list_keys(TEAM).await.unwrap_err();
    assert!(
        matches!(err, MasvError::Server { status: 503, .. }),
        "{err}"
    );
    assert!(err.is_unreachable());
    assert_eq!(rig.count("GET", "/api_keys"), 4, "max_attempts");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::RateLimited {
            retry_after: Some(StdDuration::from_secs(1)),
        })
        .on(Method::GET),
    );
    let start = Instant::now();
    c.list_keys(TEAM).await.unwrap();
    assert!(
        start.elapsed() >= StdDuration::from_millis(950),
        "waited {:?}",
        start.elapsed()
    );
    let statuses: Vec<u16> = rig
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![429, 200]);
}

#[tokio::test]
async fn rate_limit_without_retry_after_backs_off() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::RateLimited { retry_after: None })
            .on(Method::GET)
            .times(2),
    );
    c.list_keys(TEAM).await.unwrap();
    assert_eq!(rig.count("GET", "/api_keys"), 3);
}

#[tokio::test]
async fn create_is_not_retried_on_5xx_and_reports_outcome_unknown() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::Status(503))
            .on(Method::POST)
            .path("/api_keys"),
    );
    let err = c.create_key(TEAM, &new_key("ci")).await.unwrap_err();
    assert!(matches!(err, MasvError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(rig.count("POST", "/api_keys"), 1, "exactly one create");
}

#[tokio::test]
async fn create_dropped_connection_is_outcome_unknown() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::DropConnection)
            .on(Method::POST)
            .path("/api_keys"),
    );
    let err = c.create_key(TEAM, &new_key("ci")).await.unwrap_err();
    assert!(matches!(err, MasvError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(rig.count("POST", "/api_keys"), 1);
    assert!(rig.sim.keys(TEAM).is_empty());
}

#[tokio::test]
async fn lost_create_response_is_outcome_unknown_and_the_key_exists() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim.inject(Fault::new(FaultKind::LoseCreateResponse));
    let err = c.create_key(TEAM, &new_key("ci")).await.unwrap_err();
    assert!(matches!(err, MasvError::OutcomeUnknown { .. }), "{err}");
    let keys = rig.sim.keys(TEAM);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].description, "marker");
    assert_eq!(rig.count("POST", "/api_keys"), 1);
}

#[tokio::test]
async fn create_timeout_is_outcome_unknown() {
    let rig = Rig::new().await;
    let c = rig.client_with("owner-pw", 8, StdDuration::from_millis(300));
    c.login().await.unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::Latency(StdDuration::from_millis(800)))
            .on(Method::POST)
            .path("/api_keys"),
    );
    let err = c.create_key(TEAM, &new_key("ci")).await.unwrap_err();
    assert!(matches!(err, MasvError::OutcomeUnknown { .. }), "{err}");
}

#[tokio::test]
async fn create_400_is_a_definite_error() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::Status(400))
            .on(Method::POST)
            .path("/api_keys"),
    );
    let err = c.create_key(TEAM, &new_key("ci")).await.unwrap_err();
    assert!(
        matches!(err, MasvError::Status { status: 400, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn create_429_is_retried_because_nothing_happened() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::RateLimited {
            retry_after: Some(StdDuration::from_secs(0)),
        })
        .on(Method::POST)
        .path("/api_keys"),
    );
    c.create_key(TEAM, &new_key("ci")).await.unwrap();
    assert_eq!(rig.sim.keys(TEAM).len(), 1);
}

#[tokio::test]
async fn delete_whose_answer_was_lost_then_404_is_success() {
    let rig = Rig::new().await;
    let c = rig.client();
    let seeded = rig.sim.seed_key(
        TEAM,
        SeedKey {
            state: KeyState::Inactive,
            ..SeedKey::active("ci")
        },
    );
    c.login().await.unwrap();
    // MASV deletes the key, but the answer never arrives; the retry then gets 404.
    rig.sim
        .inject(Fault::new(FaultKind::LoseResponse).on(Method::DELETE));
    c.delete_key(&seeded.id).await.unwrap();
    assert!(rig.sim.key(&seeded.id).is_none());
    let statuses: Vec<u16> = rig
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![0, 404]);
}

#[tokio::test]
async fn max_concurrency_bounds_requests_in_flight() {
    let rig = Rig::new().await;
    let c = rig.client_with("owner-pw", 2, StdDuration::from_secs(5));
    c.login().await.unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::Latency(StdDuration::from_millis(300)))
            .on(Method::GET)
            .times(6),
    );
    let start = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.list_keys(TEAM).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // 6 calls of 300 ms, 2 at a time: 3 rounds (900 ms); one at a time would take 1800 ms.
    let elapsed = start.elapsed();
    assert!(
        elapsed >= StdDuration::from_millis(890),
        "{elapsed:?}: more than 2 in flight"
    );
    assert!(
        elapsed < StdDuration::from_millis(1750),
        "{elapsed:?}: fewer than 2 in flight"
    );
}

#[tokio::test]
async fn malformed_body_names_the_call() {
    let rig = Rig::new().await;
    let c = rig.client();
    c.login().await.unwrap();
    rig.sim.inject(
        Fault::new(FaultKind::MalformedBody)
            .on(Method::GET)
            .path("/api_keys"),
    );
    let err = c.list_keys(TEAM).await.unwrap_err();
    assert!(matches!(err, MasvError::Malformed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("list api keys of team {TEAM}")),
        "{err}"
    );
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = MasvClient::new(MasvSettings {
        base_url: format!("http://{addr}/v1"),
        email: "a@b.example".into(),
        password: SecretString::from("pw".to_string()),
        timeout: StdDuration::from_secs(2),
        max_concurrency: 2,
        retry: fast_retry(),
    })
    .unwrap();
    let err = c.list_keys(TEAM).await.unwrap_err();
    assert!(matches!(err, MasvError::Unreachable { .. }), "{err}");
    assert!(err.is_unreachable());
}

/// A tiny responder that returns fixed JSON, for timestamp shapes the simulator
/// (which always writes milliseconds and Z) never produces.
async fn fixed_list(body: &'static str) -> (String, tokio_util::sync::CancellationToken) {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/v1/auth",
            post(|| async {
                axum::Json(serde_json::json!({"teams": [], "token": "t", "user": {"id": "u"}}))
            }),
        )
        .route(
            "/v1/teams/{team}/api_keys",
            get(move || async move { ([("content-type", "application/json")], body) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
    (format!("http://{addr}/v1"), token)
}

#[tokio::test]
async fn every_timestamp_shape_parses() {
    let (base, stop) = fixed_list(
        r#"[
        {"id":"01F3NH1NRBQWRN7HQDJ2SYGBDA","name":"a","description":"","state":"active","created_at":"2021-04-16T20:42:37.683Z","updated_at":"2021-04-16T20:42:37Z","expiry":"2021-04-20T20:42:37.123456Z","last_request_at":"2021-04-19T10:42:58.123456789Z"},
        {"id":"01F3NH1NRBQWRN7HQDJ2SYGBDB","name":"b","description":"","state":"suspended","created_at":"2021-04-16T20:42:37+00:00","updated_at":"2021-04-16T15:42:37-05:00","expiry":"0001-01-01T00:00:00.000Z","last_request_at":"0001-01-01T00:00:00Z","extra":true}
    ]"#,
    )
    .await;
    let c = MasvClient::new(MasvSettings {
        base_url: base,
        email: "a@b.example".into(),
        password: SecretString::from("pw".to_string()),
        timeout: StdDuration::from_secs(2),
        max_concurrency: 2,
        retry: fast_retry(),
    })
    .unwrap();
    let keys = c.list_keys(TEAM).await.unwrap();
    let at = |h, m, s, n: i64| {
        Some(Utc.with_ymd_and_hms(2021, 4, 16, h, m, s).unwrap() + Duration::nanoseconds(n))
    };
    assert_eq!(keys[0].created_at, at(20, 42, 37, 683_000_000));
    assert_eq!(keys[0].updated_at, at(20, 42, 37, 0));
    assert_eq!(
        keys[0].expiry,
        Some(
            Utc.with_ymd_and_hms(2021, 4, 20, 20, 42, 37).unwrap()
                + Duration::nanoseconds(123_456_000)
        )
    );
    assert_eq!(
        keys[0].last_request_at,
        Some(
            Utc.with_ymd_and_hms(2021, 4, 19, 10, 42, 58).unwrap()
                + Duration::nanoseconds(123_456_789)
        )
    );
    assert_eq!(keys[1].created_at, at(20, 42, 37, 0));
    assert_eq!(
        keys[1].updated_at,
        at(20, 42, 37, 0),
        "offset normalised to UTC"
    );
    assert_eq!(keys[1].expiry, None, "zero time is no expiry");
    assert_eq!(keys[1].last_request_at, None, "zero time is never used");
    assert_eq!(keys[1].state, KeyState::Suspended);
    stop.cancel();
}
