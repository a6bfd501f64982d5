//! Webhook delivery against a local webhook server: retries, timeouts, a full
//! queue, the 24-hour dedup of stale keys, the `[notify] events` filter and
//! the failure counter of `/metrics`. What each event holds is in `events.rs`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use masv_key_rotator::clock::SystemClock;
use masv_key_rotator::engine::planner::{ActionKind, LineagePlan, Note};
use masv_key_rotator::engine::report::ActionOutcome;
use masv_key_rotator::engine::{LineageId, Scope, SweepReport};
use masv_key_rotator::metrics::Metrics;
use masv_key_rotator::notify::{
    EventFilter, EventKind, Notifier, NotifyError, NotifySettings, NotifyStats,
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::helpers::world::TEAM;

/// What the webhook answers to each POST, in order; the last entry repeats.
#[derive(Clone, Copy)]
pub enum Reply {
    Status(u16),
    Hang,
}

/// One POST as the webhook received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The exact bytes of the body.
    pub body: Vec<u8>,
    /// The body parsed.
    pub json: Value,
    /// The `X-Rotator-Signature-256` header, if any.
    pub signature: Option<String>,
}

#[derive(Clone)]
struct HookState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: mpsc::UnboundedSender<Received>,
}

async fn hook(State(h): State<HookState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let json: Value = serde_json::from_slice(&body).expect("the webhook gets JSON");
    let signature = headers
        .get("x-rotator-signature-256")
        .map(|v| v.to_str().unwrap().to_string());
    let _ = h.seen.send(Received {
        body: body.to_vec(),
        json,
        signature,
    });
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
pub struct Hook {
    pub url: String,
    seen: mpsc::UnboundedReceiver<Received>,
}

impl Hook {
    pub async fn start(script: &[Reply]) -> Hook {
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
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(StdDuration::from_secs(10), self.seen.recv())
            .await
            .expect("a POST reached the webhook")
            .unwrap()
    }

    /// Every POST received so far, with its details.
    pub fn drain_received(&mut self) -> Vec<Received> {
        let mut all = vec![];
        while let Ok(r) = self.seen.try_recv() {
            all.push(r);
        }
        all
    }

    /// Every body received so far, parsed.
    pub fn drain(&mut self) -> Vec<Value> {
        self.drain_received().into_iter().map(|r| r.json).collect()
    }
}

pub fn fast(queue: usize) -> NotifySettings {
    NotifySettings {
        timeout: StdDuration::from_secs(5),
        attempts: 3,
        backoff: StdDuration::from_millis(20),
        queue,
        ..NotifySettings::default()
    }
}

pub async fn finish(n: Notifier) -> NotifyStats {
    n.shutdown(StdDuration::from_secs(20)).await
}

pub fn lineage(name: &str) -> LineageId {
    LineageId::new(TEAM, name)
}

pub fn failed(name: &str, action: ActionKind, key: Option<&str>, detail: &str) -> ActionOutcome {
    ActionOutcome {
        lineage: lineage(name),
        action,
        key_id: key.map(str::to_string),
        ok: false,
        detail: detail.into(),
        rotated: None,
        took: StdDuration::ZERO,
    }
}

pub fn plan(
    name: &str,
    actions: Vec<masv_key_rotator::engine::planner::Action>,
    notes: Vec<Note>,
) -> LineagePlan {
    LineagePlan {
        lineage: lineage(name),
        actions,
        notes,
        keys: vec![],
    }
}

pub fn report_at(
    at: DateTime<Utc>,
    plans: Vec<LineagePlan>,
    outcomes: Vec<ActionOutcome>,
) -> SweepReport {
    SweepReport {
        started_at: Some(at - Duration::seconds(2)),
        finished_at: Some(at),
        scope: Scope {
            lineages: plans.len(),
            ..Scope::default()
        },
        plans,
        outcomes,
        ..SweepReport::default()
    }
}

/// A report whose only outcome is a failed rotation of `ci-build`.
fn one_failure() -> SweepReport {
    report_at(
        Utc::now(),
        vec![],
        vec![failed("ci-build", ActionKind::Rotate, Some("OLD"), "boom")],
    )
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
async fn a_5xx_is_retried_and_the_third_attempt_delivers() {
    let mut hook = Hook::start(&[Reply::Status(503), Reply::Status(503), Reply::Status(200)]).await;
    let n = Notifier::with_settings(&hook.url, fast(8)).unwrap();
    n.notify(&one_failure());
    let stats = finish(n).await;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (1, 0, 3));
    let posts = hook.drain_received();
    assert_eq!(posts.len(), 3);
    assert!(
        posts.iter().all(|p| p.body == posts[0].body),
        "the same bytes each time"
    );
    assert_eq!(posts[0].json["event"], "rotation.failed");
    assert_eq!(posts[0].signature, None, "no secret, no signature");
}

#[tokio::test]
async fn a_webhook_answering_500_is_tried_three_times_then_counted_as_failed() {
    let mut hook = Hook::start(&[Reply::Status(500)]).await;
    let n = Notifier::with_settings(&hook.url, fast(8)).unwrap();
    let metrics = Metrics::new(StdDuration::from_secs(60), Arc::new(SystemClock));
    let before = metrics.render();
    assert!(
        before.contains("masv_key_rotator_webhook_deliveries_total{result=\"undelivered\"} 0"),
        "{before}"
    );
    metrics.count_webhook(n.stats_source());
    n.notify(&one_failure());
    let stats = finish(n).await;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (0, 1, 3));
    assert_eq!(kinds(&hook.drain()), ["rotation.failed"; 3]);
    let after = metrics.render();
    for line in [
        "# TYPE masv_key_rotator_webhook_deliveries_total counter",
        "masv_key_rotator_webhook_deliveries_total{result=\"undelivered\"} 1",
        "masv_key_rotator_webhook_deliveries_total{result=\"queue_full\"} 0",
        "masv_key_rotator_webhook_deliveries_total{result=\"delivered\"} 0",
    ] {
        assert!(after.lines().any(|l| l == line), "{line} in {after}");
    }
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
    let metrics = Metrics::new(StdDuration::from_secs(60), Arc::new(SystemClock));
    metrics.count_webhook(n.stats_source());
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
    let shown = metrics.render();
    assert!(
        shown
            .lines()
            .any(|l| l == "masv_key_rotator_webhook_deliveries_total{result=\"queue_full\"} 3"),
        "{shown}"
    );

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
async fn stale_keys_are_reported_once_a_day_failures_every_time_suspended_never() {
    let mut hook = Hook::start(&[Reply::Status(200)]).await;
    let n = Notifier::with_settings(&hook.url, fast(64)).unwrap();
    let t0 = Utc::now();
    let fail = || vec![failed("ci-build", ActionKind::Rotate, Some("A"), "boom")];

    let mut first = stale_report(t0, &["A"]);
    first.outcomes = fail();
    n.notify(&first); // rotation.failed, stale A
    let mut again = stale_report(t0 + Duration::minutes(5), &["A", "B"]);
    again.outcomes = fail();
    n.notify(&again); // rotation.failed, stale B (A already told)
    n.notify(&stale_report(
        t0 + Duration::hours(23) + Duration::minutes(59),
        &["A", "B"],
    ));
    n.notify(&stale_report(t0 + Duration::hours(24), &["A", "B"])); // A again

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
            ("rotation.failed", "A"),
            ("key.stale", "A"),
            ("rotation.failed", "A"),
            ("key.stale", "B"),
            ("key.stale", "A"),
        ])
    );
    assert_eq!(stats.deduplicated, 1 + 2 + 1);
}

#[tokio::test]
async fn the_events_filter_sends_only_the_listed_events() {
    let mut hook = Hook::start(&[Reply::Status(200)]).await;
    let settings = NotifySettings {
        events: EventFilter::only([EventKind::KeyStale]),
        ..fast(8)
    };
    let n = Notifier::with_settings(&hook.url, settings).unwrap();
    let mut report = stale_report(Utc::now(), &["A"]);
    report.outcomes = vec![failed("ci-build", ActionKind::Rotate, Some("A"), "boom")];
    n.notify(&report);
    let stats = finish(n).await;
    assert_eq!(kinds(&hook.drain()), ["key.stale"]);
    assert_eq!((stats.queued, stats.filtered), (1, 1), "{stats:?}");
}
