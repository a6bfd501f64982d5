//! Simulator conformance: one test per rule of the vendor pages it models,
//! spoken to with plain HTTP (no MASV client in between).

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use masv_key_rotator::clock::{ManualClock, SharedClock};
use masv_key_rotator::masv::KeyState;
use masv_key_rotator::simulator::{Fault, FaultKind, Role, RunningSimulator, SeedKey, Simulator};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TEAM: &str = "01FB4S68W7RAW4M89801H1C4CR";
const OTHER_TEAM: &str = "01FB4S68W7RAW4M89801H1C4CS";

struct Rig {
    clock: ManualClock,
    sim: Simulator,
    running: RunningSimulator,
    http: reqwest::Client,
}

impl Rig {
    async fn new() -> Self {
        let clock = ManualClock::new(Utc::now());
        let shared: SharedClock = Arc::new(clock.clone());
        let sim = Simulator::with_owner(shared, TEAM, "owner@studio.example", "owner-pw");
        sim.add_team(OTHER_TEAM, "Other");
        let running = sim.spawn().await.unwrap();
        Rig {
            clock,
            sim,
            running,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url)
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(self.url("/auth"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    async fn token(&self, email: &str, password: &str) -> String {
        let r = self.login(email, password).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn owner(&self) -> String {
        self.token("owner@studio.example", "owner-pw").await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("X-User-Token", token)
            .header("Content-Type", "application/json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        req.send().await.unwrap()
    }

    async fn create(&self, token: &str, name: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                &format!("/teams/{TEAM}/api_keys"),
                token,
                Some(json!({"name": name, "description": "d", "state": "active"})),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    async fn use_key(&self, team: &str, secret: &str) -> StatusCode {
        self.http
            .get(self.url(&format!("/teams/{team}/packages")))
            .header("X-API-KEY", secret)
            .send()
            .await
            .unwrap()
            .status()
    }
}

#[tokio::test]
async fn auth_returns_token_teams_and_user_and_rejects_bad_passwords() {
    let rig = Rig::new().await;
    let r = rig.login("owner@studio.example", "owner-pw").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(body["token"].as_str().unwrap().len() > 20);
    assert_eq!(body["teams"][0]["id"], TEAM);
    assert_eq!(body["user"]["email"], "owner@studio.example");
    assert_eq!(
        rig.login("owner@studio.example", "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        rig.login("nobody@studio.example", "owner-pw")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_secret_is_only_in_the_create_response() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    let created = rig.create(&t, "ci-build").await;
    let secret = created["key"].as_str().unwrap().to_string();
    assert_eq!(created["state"], "active");
    assert_eq!(
        created["expiry"], "0001-01-01T00:00:00.000Z",
        "default expiry is the zero time"
    );
    assert_eq!(created["last_request_at"], "0001-01-01T00:00:00.000Z");
    let id = created["id"].as_str().unwrap();
    let listed = rig
        .call(Method::GET, &format!("/teams/{TEAM}/api_keys"), &t, None)
        .await
        .text()
        .await
        .unwrap();
    let updated = rig
        .call(
            Method::PUT,
            &format!("/api_keys/{id}"),
            &t,
            Some(json!({"description": "x", "state": "active"})),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains(id) && !listed.contains(&secret) && !listed.contains("\"key\""));
    assert!(!updated.contains(&secret) && !updated.contains("\"key\""));
}

#[tokio::test]
async fn create_requires_a_valid_state_and_json() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    let path = format!("/teams/{TEAM}/api_keys");
    assert_eq!(
        rig.call(Method::POST, &path, &t, Some(json!({"name": "x"})))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        rig.call(
            Method::POST,
            &path,
            &t,
            Some(json!({"name": "x", "state": "on"}))
        )
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
    let r = rig
        .http
        .post(rig.url(&path))
        .header("X-User-Token", &t)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(rig.sim.keys(TEAM).is_empty());
}

#[tokio::test]
async fn put_updates_fields_and_bumps_updated_at() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    let created = rig.create(&t, "ci-build").await;
    let id = created["id"].as_str().unwrap();
    rig.clock.advance(Duration::minutes(5));
    let r = rig
        .call(Method::PUT, &format!("/api_keys/{id}"), &t, Some(json!({"name": "ci-renamed", "expiry": "2030-01-01T00:00:00Z", "state": "inactive"})))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "ci-renamed");
    assert_eq!(body["state"], "inactive");
    assert_eq!(body["expiry"], "2030-01-01T00:00:00.000Z");
    assert_ne!(body["updated_at"], created["updated_at"]);
    assert_eq!(body["created_at"], created["created_at"]);
}

#[tokio::test]
async fn toggle_answers_204_and_changes_state() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    let id = rig.create(&t, "ci").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = rig
        .call(Method::PUT, &format!("/api_keys/{id}/inactive"), &t, None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());
    assert_eq!(rig.sim.key(&id).unwrap().state, KeyState::Inactive);
    assert_eq!(
        rig.call(Method::PUT, &format!("/api_keys/{id}/active"), &t, None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(rig.sim.key(&id).unwrap().state, KeyState::Active);
    assert_eq!(
        rig.call(Method::PUT, &format!("/api_keys/{id}/paused"), &t, None)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn suspended_keys_refuse_to_be_toggled() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    let seeded = rig.sim.seed_key(
        TEAM,
        SeedKey {
            state: KeyState::Suspended,
            ..SeedKey::active("ci")
        },
    );
    for action in ["active", "inactive"] {
        let r = rig
            .call(
                Method::PUT,
                &format!("/api_keys/{}/{action}", seeded.id),
                &t,
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
    }
    let r = rig
        .call(
            Method::PUT,
            &format!("/api_keys/{}", seeded.id),
            &t,
            Some(json!({"state": "active"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(rig.sim.key(&seeded.id).unwrap().state, KeyState::Suspended);
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    let id = rig.create(&t, "ci").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        rig.call(Method::DELETE, &format!("/api_keys/{id}"), &t, None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(rig.sim.key(&id).is_none());
    assert_eq!(
        rig.call(Method::DELETE, &format!("/api_keys/{id}"), &t, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn user_tokens_expire_on_the_simulator_clock() {
    let rig = Rig::new().await;
    rig.sim.set_jwt_ttl(Duration::minutes(30));
    let t = rig.owner().await;
    let path = format!("/teams/{TEAM}/api_keys");
    assert_eq!(
        rig.call(Method::GET, &path, &t, None).await.status(),
        StatusCode::OK
    );
    rig.clock.advance(Duration::minutes(31));
    assert_eq!(
        rig.call(Method::GET, &path, &t, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        rig.call(Method::GET, &path, "made-up", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = rig.http.get(rig.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "missing token");
}

#[tokio::test]
async fn admins_and_integration_managers_manage_only_their_own_keys() {
    let rig = Rig::new().await;
    rig.sim
        .add_user("admin@studio.example", "pw-a", Role::Admin, &[TEAM]);
    rig.sim.add_user(
        "im@studio.example",
        "pw-i",
        Role::IntegrationManager,
        &[TEAM],
    );
    rig.sim
        .add_user("member@studio.example", "pw-m", Role::Member, &[TEAM]);
    let owner = rig.owner().await;
    let owners_key = rig.create(&owner, "owner-key").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (email, pw) in [
        ("admin@studio.example", "pw-a"),
        ("im@studio.example", "pw-i"),
    ] {
        let t = rig.token(email, pw).await;
        let mine = rig.create(&t, "mine").await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let listed: Value = rig
            .call(Method::GET, &format!("/teams/{TEAM}/api_keys"), &t, None)
            .await
            .json()
            .await
            .unwrap();
        let ids: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![mine.as_str()], "{email} lists only its own keys");
        assert_eq!(
            rig.call(
                Method::PUT,
                &format!("/api_keys/{owners_key}/inactive"),
                &t,
                None
            )
            .await
            .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            rig.call(Method::DELETE, &format!("/api_keys/{owners_key}"), &t, None)
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            rig.call(Method::PUT, &format!("/api_keys/{mine}/inactive"), &t, None)
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
    }
    // the owner sees and manages everyone's keys
    let listed: Value = rig
        .call(
            Method::GET,
            &format!("/teams/{TEAM}/api_keys"),
            &owner,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let member = rig.token("member@studio.example", "pw-m").await;
    assert_eq!(
        rig.call(
            Method::GET,
            &format!("/teams/{TEAM}/api_keys"),
            &member,
            None
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        rig.call(
            Method::GET,
            &format!("/teams/{OTHER_TEAM}/api_keys"),
            &owner,
            None
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        rig.call(Method::DELETE, "/api_keys/01NOSUCHKEY", &owner, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn api_key_works_only_while_active_unexpired_and_in_its_team_and_bumps_last_use() {
    let rig = Rig::new().await;
    let now = rig.clock.clone();
    let ok = rig.sim.seed_key(
        TEAM,
        SeedKey {
            expiry: Some(Utc::now() + Duration::days(1)),
            ..SeedKey::active("ok")
        },
    );
    let before = rig.sim.key(&ok.id).unwrap();
    assert_eq!(before.last_request_at, None);
    rig.clock.advance(Duration::minutes(3));
    assert_eq!(rig.use_key(TEAM, &ok.secret).await, StatusCode::OK);
    let after = rig.sim.key(&ok.id).unwrap();
    assert_eq!(
        after.last_request_at,
        Some(masv_key_rotator::clock::Clock::now(&now))
    );
    assert_eq!(
        after.updated_at, before.updated_at,
        "use does not bump updated_at"
    );
    assert_eq!(
        rig.use_key(OTHER_TEAM, &ok.secret).await,
        StatusCode::UNAUTHORIZED
    );
    let inactive = rig.sim.seed_key(
        TEAM,
        SeedKey {
            state: KeyState::Inactive,
            ..SeedKey::active("off")
        },
    );
    assert_eq!(
        rig.use_key(TEAM, &inactive.secret).await,
        StatusCode::UNAUTHORIZED
    );
    let suspended = rig.sim.seed_key(
        TEAM,
        SeedKey {
            state: KeyState::Suspended,
            ..SeedKey::active("sus")
        },
    );
    assert_eq!(
        rig.use_key(TEAM, &suspended.secret).await,
        StatusCode::UNAUTHORIZED
    );
    rig.clock.advance(Duration::days(2));
    assert_eq!(
        rig.use_key(TEAM, &ok.secret).await,
        StatusCode::UNAUTHORIZED,
        "expired"
    );
    assert_eq!(
        rig.use_key(TEAM, "not-a-key").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(rig.sim.key(&inactive.id).unwrap().last_request_at, None);
}

#[tokio::test]
async fn status_and_rate_limit_faults() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    let path = format!("/teams/{TEAM}/api_keys");
    rig.sim
        .inject(Fault::new(FaultKind::Status(503)).on(Method::GET).times(2));
    rig.sim.inject(
        Fault::new(FaultKind::RateLimited {
            retry_after: Some(StdDuration::from_secs(7)),
        })
        .on(Method::GET),
    );
    assert_eq!(
        rig.call(Method::GET, &path, &t, None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        rig.call(Method::GET, &path, &t, None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let r = rig.call(Method::GET, &path, &t, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(
        rig.call(Method::GET, &path, &t, None).await.status(),
        StatusCode::OK,
        "faults are spent"
    );
    rig.sim
        .inject(Fault::new(FaultKind::RateLimited { retry_after: None }));
    let r = rig.call(Method::GET, &path, &t, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn latency_fault_delays_the_response() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    rig.sim
        .inject(Fault::new(FaultKind::Latency(StdDuration::from_millis(
            300,
        ))));
    let start = Instant::now();
    let r = rig
        .call(Method::GET, &format!("/teams/{TEAM}/api_keys"), &t, None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(start.elapsed() >= StdDuration::from_millis(300));
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error_and_nothing_happens() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    rig.sim
        .inject(Fault::new(FaultKind::DropConnection).on(Method::POST));
    let result = rig
        .http
        .post(rig.url(&format!("/teams/{TEAM}/api_keys")))
        .header("X-User-Token", &t)
        .json(&json!({"name": "x", "state": "active"}))
        .send()
        .await;
    let failed = match result {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the client must see a transport error");
    assert!(
        rig.sim.keys(TEAM).is_empty(),
        "a dropped request is not handled"
    );
    assert_eq!(rig.sim.requests().last().unwrap().status, 0);
}

#[tokio::test]
async fn lost_create_response_commits_the_key() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    rig.sim.inject(Fault::new(FaultKind::LoseCreateResponse));
    let result = rig
        .http
        .post(rig.url(&format!("/teams/{TEAM}/api_keys")))
        .header("X-User-Token", &t)
        .json(&json!({"name": "ci", "description": "marker", "state": "inactive"}))
        .send()
        .await;
    let failed = match result {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed);
    let keys = rig.sim.keys(TEAM);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].description, "marker");
}

#[tokio::test]
async fn malformed_body_fault_sends_invalid_json() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    rig.sim
        .inject(Fault::new(FaultKind::MalformedBody).path("/api_keys"));
    let r = rig
        .call(Method::GET, &format!("/teams/{TEAM}/api_keys"), &t, None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
}

#[tokio::test]
async fn request_log_mutations_and_issued_secrets() {
    let rig = Rig::new().await;
    let t = rig.owner().await;
    let created = rig.create(&t, "ci").await;
    let id = created["id"].as_str().unwrap();
    rig.call(Method::GET, &format!("/teams/{TEAM}/api_keys"), &t, None)
        .await;
    rig.call(Method::PUT, &format!("/api_keys/{id}/inactive"), &t, None)
        .await;
    rig.call(Method::DELETE, &format!("/api_keys/{id}"), &t, None)
        .await;
    let log: Vec<(String, u16)> = rig
        .sim
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        log,
        vec![
            ("POST".into(), 200),
            ("POST".into(), 201),
            ("GET".into(), 200),
            ("PUT".into(), 204),
            ("DELETE".into(), 204)
        ]
    );
    let mutations: Vec<String> = rig
        .sim
        .mutations()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        mutations,
        vec![
            format!("POST /v1/teams/{TEAM}/api_keys"),
            format!("PUT /v1/api_keys/{id}/inactive"),
            format!("DELETE /v1/api_keys/{id}"),
        ]
    );
    let issued = rig.sim.issued_secrets();
    assert!(issued.contains(&t));
    assert!(issued.contains(&created["key"].as_str().unwrap().to_string()));
}
