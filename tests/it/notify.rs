//! Webhook notifications against a local webhook server: events from reports,
//! retries, timeouts, a full queue, dedup, and no secret in any payload.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use masv_key_rotator::clock::Clock;
use masv_key_rotator::engine::model::DueReason;
use masv_key_rotator::engine::planner::{Action, ActionKind, LineagePlan, Note};
use masv_key_rotator::engine::sweep::ActionOutcome;
use masv_key_rotator::engine::{LineageId, SweepMode, SweepReport};
use masv_key_rotator::notify::{
    events_for, EventKind, Notifier, NotifyError, NotifySettings, NotifyStats,
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::helpers::world::{World, PASSWORD, TEAM};

/// What the webhook answers to each POST, in order; the last entry repeats.
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    Hang,
}

#[derive(Clone)]
struct HookState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: mpsc::UnboundedSender<Value>,
}

async fn hook(State(h): State<HookState>, body: String) -> StatusCode {
    let value: Value = serde_json::from_str(&body).expect("the webhook gets JSON");
    let _ = h.seen.send(value);
    let reply = {
        let mut script = h.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            *script.front().unwrap()
        }
    };
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap(),
        Reply::Hang => std::future::pending().await,
    }
}

/// A local webhook that records every POST (retries included).
struct Hook {
    url: String,
    seen: mpsc::UnboundedReceiver<Value>,
}

impl Hook {
    async fn start(script: &[Reply]) -> Hook {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = HookState {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            seen: tx,
        };
        let app = Router::new().route("/hook", post(hook)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hook { url, seen: rx }
    }

    /// The next POST, waiting up to 10 s.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(StdDuration::from_secs(10), self.seen.recv())
            .await
            .expect("a POST reached the webhook")
            .unwrap()
    }

    /// Every POST received so far.
    fn drain(&mut self) -> Vec<Value> {
        let mut all = vec![];
        while let Ok(v) = self.seen.try_recv() {
            all.push(v);
        }
        all
    }
}

fn fast(queue: usize) -> NotifySettings {
    NotifySettings {
        timeout: StdDuration::from_secs(5),
        attempts: 3,
        backoff: StdDuration::from_millis(20),
        queue,
    }
}

async fn finish(n: Notifier) -> NotifyStats {
    n.shutdown(StdDuration::from_secs(20)).await
}

fn lineage(name: &str) -> LineageId {
    LineageId::new(TEAM, name)
}

fn failed(name: &str, action: ActionKind, key: Option<&str>, detail: &str) -> ActionOutcome {
    ActionOutcome {
        lineage: lineage(name),
        action,
        key_id: key.map(str::to_string),
        ok: false,
        detail: detail.into(),
        rotated: None,
    }
}

fn plan(name: &str, actions: Vec<Action>, notes: Vec<Note>) -> LineagePlan {
    LineagePlan {
        lineage: lineage(name),
        actions,
        notes,
        keys: vec![],
    }
}

fn report_at(
    at: DateTime<Utc>,
    plans: Vec<LineagePlan>,
    outcomes: Vec<ActionOutcome>,
) -> SweepReport {
    SweepReport {
        started_at: Some(at - Duration::seconds(2)),
        finished_at: Some(at),
        lineages: plans.len(),
        plans,
        outcomes,
        ..SweepReport::default()
    }
}

fn stale_report(at: DateTime<Utc>, keys: &[&str]) -> SweepReport {
    let notes = keys
        .iter()
        .map(|k| Note::Stale {
            key_id: k.to_string(),
        })
        .chain([Note::Suspended {
            key_id: "SUSP".into(),
        }])
        .collect();
    report_at(at, vec![plan("ci-build", vec![], notes)], vec![])
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn events_for_maps_failures_and_notes() {
    let at = Utc::now();
    let expiring = Action::Rotate {
        reason: DueReason::Expiring,
        old_key_id: Some("OLD".into()),
        cas: 2,
    };
    let max_age = Action::Rotate {
        reason: DueReason::MaxAge,
        old_key_id: Some("AGED".into()),
        cas: 2,
    };
    let report = report_at(
        at,
        vec![
            plan("ci-build", vec![expiring], vec![]),
            plan("ci-aged", vec![max_age], vec![]),
            plan(
                "render-1",
                vec![],
                vec![
                    Note::Stale {
                        key_id: "S1".into(),
                    },
                    Note::Suspended {
                        key_id: "S2".into(),
                    },
                    Note::InUse {
                        key_id: "S3".into(),
                    },
                ],
            ),
        ],
        vec![
            failed(
                "ci-build",
                ActionKind::Rotate,
                Some("OLD"),
                "vault: permission denied",
            ),
            failed("ci-aged", ActionKind::Rotate, Some("AGED"), "masv: 500"),
            failed("ci-resume", ActionKind::Resume, None, "masv: 503"),
            failed("render-1", ActionKind::Deactivate, Some("R1"), "masv: 409"),
            ActionOutcome {
                ok: true,
                ..failed("render-1", ActionKind::Delete, Some("R2"), "")
            },
        ],
    );
    let events = events_for(&report);
    let got: Vec<(EventKind, &str, Option<&str>)> = events
        .iter()
        .map(|e| (e.kind, e.lineage.as_str(), e.key_id.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (EventKind::RotationFailed, "ci-build", Some("OLD")),
            (EventKind::ExpiringNotRotated, "ci-build", Some("OLD")),
            (EventKind::RotationFailed, "ci-aged", Some("AGED")),
            (EventKind::RotationFailed, "ci-resume", None),
            (EventKind::ActionFailed, "render-1", Some("R1")),
            (EventKind::StaleKey, "render-1", Some("S1")),
            (EventKind::SuspendedKey, "render-1", Some("S2")),
        ]
    );
    assert!(events.iter().all(|e| e.at == at && e.team_id == TEAM));
    assert_eq!(events[0].detail, "vault: permission denied");
    assert!(events[1].detail.ends_with("vault: permission denied"));
    assert_eq!(events[4].detail, "deactivate: masv: 409");

    let payload = events[0].payload();
    let fields: Vec<&String> = payload.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        ["at", "detail", "event", "key_id", "lineage", "source", "team_id"]
    );
    assert_eq!(payload["source"], "masv-key-rotator");
    assert_eq!(payload["event"], "rotation_failed");
    let sent_at = DateTime::parse_from_rfc3339(payload["at"].as_str().unwrap()).unwrap();
    assert_eq!(sent_at.timestamp(), at.timestamp());
    assert_eq!(events[3].payload()["key_id"], Value::Null);

    // A clean sweep calls for nothing.
    assert!(events_for(&report_at(
        at,
        vec![plan("ci-build", vec![], vec![])],
        vec![]
    ))
    .is_empty());
}

#[tokio::test]
async fn bad_urls_are_refused_without_echoing_them() {
    for url in [
        "",
        "hooks.example.com/T0KEN",
        "ftp://hooks.example.com/T0KEN",
    ] {
        let e = Notifier::new(url, StdDuration::from_secs(1)).unwrap_err();
        assert!(matches!(e, NotifyError::InvalidUrl { .. }), "{url}: {e}");
        assert!(!e.to_string().contains("T0KEN"), "{e}");
    }
    let n = Notifier::new(
        "https://hooks.example.com/services/T0KEN",
        StdDuration::from_secs(1),
    )
    .unwrap();
    assert!(!format!("{n:?}").contains("T0KEN"), "Debug hides the URL");
}

#[test]
fn outside_a_runtime_it_is_an_error_not_a_panic() {
    let e = Notifier::new("http://127.0.0.1:9/hook", StdDuration::from_secs(1)).unwrap_err();
    assert!(matches!(e, NotifyError::NoRuntime), "{e}");
}

#[tokio::test]
async fn a_failed_rotation_in_a_real_sweep_reaches_the_webhook_without_secrets() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let mut hook = Hook::start(&[Reply::Status(204)]).await;
    let notifier = Notifier::with_settings(&hook.url, fast(64)).unwrap();

    // Adoption works with the root token: nothing to report.
    let adopted = w.sweep().await;
    assert_eq!(adopted.failed(), 0, "{:?}", adopted.outcomes);
    notifier.notify(&adopted);
    let current = w.current("ci-build").await.unwrap().secret.key_id;

    // 24 days on, the new key (30-day lifetime) is within rotate_before_expiry (7d);
    // a read-only Vault token makes the rotation fail.
    w.clock.advance(Duration::days(24));
    let token = w.vault.read_only_token().await;
    let engine = w.engine_with_vault(w.vault_store(&token).await).await;
    let report = engine.sweep(&SweepMode::Apply).await.unwrap();
    assert!(
        report
            .outcomes
            .iter()
            .any(|o| o.action == ActionKind::Rotate && !o.ok),
        "{:?}",
        report.outcomes
    );
    notifier.notify(&report);
    let stats = finish(notifier).await;
    assert_eq!(stats.pending(), 0);
    assert_eq!(stats.failed, 0);

    let events = hook.drain();
    let failure = events
        .iter()
        .find(|e| e["event"] == "rotation_failed")
        .unwrap_or_else(|| panic!("no rotation_failed in {events:?}"));
    assert_eq!(failure["source"], "masv-key-rotator");
    assert_eq!(failure["team_id"], TEAM);
    assert_eq!(failure["lineage"], "ci-build");
    assert_eq!(failure["key_id"], current.as_str());
    assert!(
        failure["detail"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{failure}"
    );
    let at = DateTime::parse_from_rfc3339(failure["at"].as_str().unwrap()).unwrap();
    assert_eq!(at.timestamp(), w.clock.now().timestamp());
    let expiring = events
        .iter()
        .find(|e| e["event"] == "expiring_not_rotated")
        .unwrap_or_else(|| panic!("no expiring_not_rotated in {events:?}"));
    assert_eq!(expiring["key_id"], current.as_str());
    assert_eq!(stats.delivered as usize, events.len());

    let mut forbidden = w.sim.issued_secrets();
    forbidden.push(PASSWORD.to_string());
    forbidden.push(token);
    for e in &events {
        let text = e.to_string();
        for secret in &forbidden {
            assert!(
                !text.contains(secret.as_str()),
                "a secret in {}",
                e["event"]
            );
        }
    }
}

#[tokio::test]
async fn a_5xx_is_retried_and_the_third_attempt_delivers() {
    let mut hook = Hook::start(&[Reply::Status(503), Reply::Status(503), Reply::Status(200)]).await;
    let n = Notifier::with_settings(&hook.url, fast(8)).unwrap();
    let report = report_at(
        Utc::now(),
        vec![],
        vec![failed("ci-build", ActionKind::Rotate, Some("OLD"), "boom")],
    );
    n.notify(&report);
    let stats = finish(n).await;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (1, 0, 3));
    let posts = hook.drain();
    assert_eq!(posts.len(), 3);
    assert!(
        posts.iter().all(|p| p == &posts[0]),
        "the same event each time"
    );
    assert_eq!(posts[0]["event"], "rotation_failed");
}

#[tokio::test]
async fn a_webhook_failing_for_good_is_tried_three_times_then_given_up() {
    let mut hook = Hook::start(&[Reply::Status(500)]).await;
    let n = Notifier::with_settings(&hook.url, fast(8)).unwrap();
    n.notify(&report_at(
        Utc::now(),
        vec![],
        vec![failed("ci-build", ActionKind::Delete, Some("K"), "boom")],
    ));
    let stats = finish(n).await;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (0, 1, 3));
    assert_eq!(kinds(&hook.drain()), ["action_failed"; 3]);
}

#[tokio::test]
async fn a_4xx_is_not_retried() {
    let mut hook = Hook::start(&[Reply::Status(400), Reply::Status(200)]).await;
    let n = Notifier::with_settings(&hook.url, fast(8)).unwrap();
    n.notify(&report_at(
        Utc::now(),
        vec![],
        vec![failed("ci-build", ActionKind::Rotate, None, "boom")],
    ));
    let stats = finish(n).await;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (0, 1, 1));
    assert_eq!(hook.drain().len(), 1);
}

#[tokio::test]
async fn an_unreachable_webhook_is_retried_then_given_up() {
    // A port that was just free: connection refused.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let n = Notifier::with_settings(&format!("http://{addr}/hook"), fast(8)).unwrap();
    n.notify(&report_at(
        Utc::now(),
        vec![],
        vec![failed("ci-build", ActionKind::Rotate, None, "boom")],
    ));
    let stats = finish(n).await;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (0, 1, 3));
}

#[tokio::test]
async fn a_hanging_webhook_times_out_per_attempt() {
    let mut hook = Hook::start(&[Reply::Hang]).await;
    let settings = NotifySettings {
        timeout: StdDuration::from_millis(200),
        ..fast(8)
    };
    let n = Notifier::with_settings(&hook.url, settings).unwrap();
    n.notify(&report_at(
        Utc::now(),
        vec![],
        vec![failed("ci-build", ActionKind::Rotate, None, "boom")],
    ));
    let stats = finish(n).await;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (0, 1, 3));
    assert_eq!(hook.drain().len(), 3);
}

#[tokio::test]
async fn a_hanging_webhook_never_delays_notify_and_a_full_queue_drops() {
    let mut hook = Hook::start(&[Reply::Hang]).await;
    let settings = NotifySettings {
        timeout: StdDuration::from_secs(60),
        ..fast(2)
    };
    let n = Notifier::with_settings(&hook.url, settings).unwrap();
    let one = |i: usize| failed(&format!("ci-{i}"), ActionKind::Rotate, None, "boom");
    n.notify(&report_at(Utc::now(), vec![], vec![one(0)]));
    hook.next().await; // the worker is now stuck on the hanging webhook

    let many = report_at(Utc::now(), vec![], (1..=5).map(one).collect());
    let started = Instant::now();
    n.notify(&many);
    let took = started.elapsed();
    assert!(took < StdDuration::from_millis(50), "notify took {took:?}");
    let stats = n.stats();
    assert_eq!((stats.queued, stats.dropped), (3, 3), "{stats:?}");

    // Shutdown does not wait for the hanging webhook past its grace.
    let started = Instant::now();
    let stats = n.shutdown(StdDuration::from_millis(100)).await;
    assert!(started.elapsed() < StdDuration::from_secs(2));
    assert_eq!(stats.pending(), 3, "{stats:?}");
}

#[tokio::test]
async fn dropping_the_notifier_does_not_block() {
    let _hook = Hook::start(&[Reply::Hang]).await;
    let n = Notifier::with_settings(&_hook.url, fast(8)).unwrap();
    n.notify(&report_at(
        Utc::now(),
        vec![],
        vec![failed("ci-build", ActionKind::Rotate, None, "boom")],
    ));
    let started = Instant::now();
    drop(n);
    assert!(started.elapsed() < StdDuration::from_millis(50));
}

#[tokio::test]
async fn stale_and_suspended_keys_are_reported_once_a_day_failures_every_time() {
    let mut hook = Hook::start(&[Reply::Status(200)]).await;
    let n = Notifier::with_settings(&hook.url, fast(64)).unwrap();
    let t0 = Utc::now();
    let fail = || vec![failed("ci-build", ActionKind::Rotate, Some("A"), "boom")];

    let mut first = stale_report(t0, &["A"]);
    first.outcomes = fail();
    n.notify(&first); // rotation_failed, stale A, suspended SUSP
    let mut again = stale_report(t0 + Duration::minutes(5), &["A", "B"]);
    again.outcomes = fail();
    n.notify(&again); // rotation_failed, stale B (A and SUSP already told)
    n.notify(&stale_report(
        t0 + Duration::hours(23) + Duration::minutes(59),
        &["A", "B"],
    ));
    n.notify(&stale_report(t0 + Duration::hours(24), &["A", "B"])); // A and SUSP again

    let stats = finish(n).await;
    let events = hook.drain();
    let told: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["key_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        told,
        pairs(&[
            ("rotation_failed", "A"),
            ("stale_key", "A"),
            ("suspended_key", "SUSP"),
            ("rotation_failed", "A"),
            ("stale_key", "B"),
            ("stale_key", "A"),
            ("suspended_key", "SUSP"),
        ])
    );
    assert_eq!(stats.deduplicated, 2 + 3 + 1);
}
