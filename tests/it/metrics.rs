//! `/metrics` and `/healthz` over HTTP, fed with hand-built sweep reports and
//! with a real sweep.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use masv_key_rotator::clock::{Clock, ManualClock, SharedClock};
use masv_key_rotator::engine::executor::Rotated;
use masv_key_rotator::engine::planner::{
    Action, ActionKind, KeyOutlook, KeyRole, LineagePlan, NextStep, Note,
};
use masv_key_rotator::engine::report::ActionOutcome;
use masv_key_rotator::engine::{LineageId, Scope, SweepReport};
use masv_key_rotator::metrics::{Metrics, CONTENT_TYPE};
use tokio_util::sync::CancellationToken;

use crate::helpers::world::{World, TEAM};

const INTERVAL: StdDuration = StdDuration::from_secs(300);

struct Served {
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start(metrics: &Metrics) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let m = metrics.clone();
        let token = stop.clone();
        let task = tokio::spawn(async move { m.serve(listener, token).await });
        Served {
            base,
            http: reqwest::Client::new(),
            stop,
            task,
        }
    }

    async fn get(&self, path: &str) -> (u16, String, Option<String>) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        (status, r.text().await.unwrap(), ctype)
    }

    async fn scrape(&self) -> Scrape {
        let (status, body, ctype) = self.get("/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(ctype.as_deref(), Some(CONTENT_TYPE));
        Scrape::parse(&body)
    }

    async fn healthz(&self) -> (u16, String) {
        let (status, body, _) = self.get("/healthz").await;
        (status, body)
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(StdDuration::from_secs(5), self.task)
            .await
            .expect("server stops on cancel")
            .unwrap();
    }
}

/// A parsed exposition: `name{sorted labels}` -> value. Parsing asserts the format.
struct Scrape {
    samples: BTreeMap<String, f64>,
    body: String,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{k="v",...}` starting after the `{`; returns the labels and the rest after `}`.
fn parse_labels(mut s: &str, line: &str) -> (Vec<(String, String)>, String) {
    let mut labels = vec![];
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return (labels, rest.to_string());
        }
        let eq = s.find('=').unwrap_or_else(|| panic!("no '=' in {line:?}"));
        let key = &s[..eq];
        assert!(valid_name(key), "bad label name {key:?} in {line:?}");
        s = s[eq + 1..]
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("unquoted label value in {line:?}"));
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        labels.push((key.to_string(), value));
        s = &s[end + 1..];
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else {
            assert!(s.starts_with('}'), "expected ',' or '}}' in {line:?}");
        }
    }
}

impl Scrape {
    fn parse(body: &str) -> Scrape {
        assert!(body.ends_with('\n'), "exposition ends with a newline");
        let mut typed: HashSet<String> = HashSet::new();
        let mut helped: HashSet<String> = HashSet::new();
        let mut histograms: HashSet<String> = HashSet::new();
        let mut samples = BTreeMap::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(helped.insert(name.to_string()), "HELP twice for {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap();
                let kind = parts.next().unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "bad type in {line:?}"
                );
                assert!(parts.next().is_none(), "{line:?}");
                assert!(typed.insert(name.to_string()), "TYPE twice for {name}");
                if kind == "histogram" {
                    histograms.insert(name.to_string());
                }
                continue;
            }
            assert!(!line.starts_with('#'), "stray comment {line:?}");
            assert!(!line.is_empty(), "empty line in the exposition");
            let name_end = line
                .find(['{', ' '])
                .unwrap_or_else(|| panic!("no value in {line:?}"));
            let name = &line[..name_end];
            assert!(valid_name(name), "bad metric name in {line:?}");
            assert!(
                name.starts_with("masv_key_rotator_"),
                "unprefixed series {name}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|f| histograms.contains(*f))
                })
                .unwrap_or(name);
            assert!(typed.contains(family), "sample before its TYPE: {line:?}");
            let (mut labels, rest) = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end + 1..], line)
            } else {
                (vec![], line[name_end..].to_string())
            };
            let value = rest
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            labels.sort();
            let key = if labels.is_empty() {
                name.to_string()
            } else {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{name}{{{}}}", l.join(","))
            };
            assert!(samples.insert(key, value).is_none(), "duplicate {line:?}");
        }
        Scrape {
            samples,
            body: body.to_string(),
        }
    }

    /// `get("rotations_total{result=ok}")`, labels sorted by name.
    fn get(&self, series: &str) -> f64 {
        let key = format!("masv_key_rotator_{series}");
        *self
            .samples
            .get(&key)
            .unwrap_or_else(|| panic!("no {key} in\n{}", self.body))
    }

    fn has(&self, series: &str) -> bool {
        self.samples
            .contains_key(&format!("masv_key_rotator_{series}"))
    }
}

fn lineage(name: &str) -> LineageId {
    LineageId::new(TEAM, name)
}

fn outcome(name: &str, action: ActionKind, ok: bool) -> ActionOutcome {
    ActionOutcome {
        lineage: lineage(name),
        action,
        key_id: Some(format!("KEY-{name}")),
        ok,
        detail: if ok {
            String::new()
        } else {
            "permission denied".into()
        },
        rotated: None,
        took: StdDuration::from_millis(800),
    }
}

fn look(id: &str, role: KeyRole, next: NextStep, at: Option<DateTime<Utc>>) -> KeyOutlook {
    KeyOutlook {
        key_id: id.into(),
        role,
        next,
        next_at: at,
        why: None,
        expiry: None,
        last_request_at: None,
    }
}

/// `look` for a key MASV lists with an expiry and a last use.
fn listed(look: KeyOutlook, expiry: DateTime<Utc>, used: DateTime<Utc>) -> KeyOutlook {
    KeyOutlook {
        expiry: Some(expiry),
        last_request_at: Some(used),
        ..look
    }
}

/// One healthy lineage due in 13 days, one just rotated, one with a stale and a
/// suspended key.
fn ok_report(now: DateTime<Utc>) -> SweepReport {
    SweepReport {
        started_at: Some(now - Duration::milliseconds(1500)),
        finished_at: Some(now),
        scope: Scope {
            teams: 1,
            lineages: 3,
            managed_keys: 5,
            unmanaged_keys: 2,
            ..Scope::default()
        },
        plans: vec![
            LineagePlan {
                lineage: lineage("ci-build"),
                actions: vec![],
                notes: vec![],
                keys: vec![listed(
                    look(
                        "A",
                        KeyRole::Current,
                        NextStep::Rotate,
                        Some(now + Duration::days(13)),
                    ),
                    now + Duration::days(14),
                    now - Duration::hours(1),
                )],
            },
            LineagePlan {
                lineage: lineage("ci-deploy"),
                actions: vec![],
                notes: vec![],
                keys: vec![listed(
                    look(
                        "B",
                        KeyRole::Current,
                        NextStep::Rotate,
                        Some(now - Duration::days(1)),
                    ),
                    now + Duration::hours(6),
                    now - Duration::minutes(5),
                )],
            },
            LineagePlan {
                lineage: lineage("render-\"node\"\\1"),
                actions: vec![],
                notes: vec![
                    Note::Stale { key_id: "C".into() },
                    Note::Suspended { key_id: "D".into() },
                ],
                keys: vec![
                    look(
                        "C",
                        KeyRole::Current,
                        NextStep::Rotate,
                        Some(now + Duration::days(1)),
                    ),
                    look(
                        "D",
                        KeyRole::Retiring,
                        NextStep::Deactivate,
                        Some(now + Duration::hours(1)),
                    ),
                    look("E", KeyRole::Other, NextStep::None, None),
                ],
            },
        ],
        outcomes: vec![
            ActionOutcome {
                rotated: Some(Rotated {
                    rotation_id: "R1".into(),
                    new_key_id: "B2".into(),
                    previous_key_id: Some("B".into()),
                }),
                ..outcome("ci-deploy", ActionKind::Rotate, true)
            },
            outcome("ci-build", ActionKind::Deactivate, true),
        ],
        ..SweepReport::default()
    }
}

fn failed_report(now: DateTime<Utc>) -> SweepReport {
    SweepReport {
        started_at: Some(now - Duration::seconds(4)),
        finished_at: Some(now),
        scope: Scope {
            teams: 1,
            lineages: 1,
            managed_keys: 1,
            ..Scope::default()
        },
        plans: vec![LineagePlan {
            lineage: lineage("ci-build"),
            actions: vec![Action::Rotate {
                reason: masv_key_rotator::engine::model::DueReason::Expiring,
                old_key_id: Some("A".into()),
                cas: 3,
            }],
            notes: vec![],
            keys: vec![look(
                "A",
                KeyRole::Current,
                NextStep::Rotate,
                Some(now - Duration::hours(2)),
            )],
        }],
        outcomes: vec![outcome("ci-build", ActionKind::Rotate, false)],
        ..SweepReport::default()
    }
}

fn rig() -> (ManualClock, Metrics) {
    let clock = ManualClock::new(Utc::now());
    let shared: SharedClock = Arc::new(clock.clone());
    (clock.clone(), Metrics::new(INTERVAL, shared))
}

#[tokio::test]
async fn before_any_sweep_healthz_is_503_and_metrics_are_zero() {
    let (_clock, metrics) = rig();
    let s = Served::start(&metrics).await;
    assert_eq!(s.healthz().await, (503, "no sweep yet\n".into()));
    let m = s.scrape().await;
    assert_eq!(m.get("sweeps_total{result=ok}"), 0.0);
    assert_eq!(m.get("sweeps_total{result=failed}"), 0.0);
    assert_eq!(m.get("rotations_total{result=ok}"), 0.0);
    assert_eq!(m.get("rotations_total{result=failed}"), 0.0);
    assert_eq!(m.get("last_success_timestamp_seconds"), 0.0);
    assert_eq!(m.get("healthy"), 0.0);
    assert_eq!(m.get("keys{role=current}"), 0.0);
    s.stop().await;
}

#[tokio::test]
async fn an_ok_sweep_is_counted_and_healthy() {
    let (clock, metrics) = rig();
    let s = Served::start(&metrics).await;
    let now = clock.now();
    metrics.record_sweep(&ok_report(now));

    assert_eq!(s.healthz().await, (200, "ok\n".into()));
    let m = s.scrape().await;
    assert_eq!(m.get("sweeps_total{result=ok}"), 1.0);
    assert_eq!(m.get("sweeps_total{result=failed}"), 0.0);
    assert_eq!(m.get("sweep_duration_seconds"), 1.5);
    assert_eq!(
        m.get("last_success_timestamp_seconds"),
        now.timestamp() as f64
    );
    assert_eq!(m.get("rotations_total{result=ok}"), 1.0);
    assert_eq!(m.get("rotations_total{result=failed}"), 0.0);
    assert_eq!(m.get("actions_total{action=rotate,result=ok}"), 1.0);
    assert_eq!(m.get("actions_total{action=deactivate,result=ok}"), 1.0);
    // B was replaced by this sweep's rotation: it retires at once.
    assert_eq!(m.get("keys{role=current}"), 2.0);
    assert_eq!(m.get("keys{role=retiring}"), 2.0);
    assert_eq!(m.get("keys{role=other}"), 1.0);
    assert_eq!(m.get("keys{role=incoming}"), 0.0);
    assert_eq!(m.get("stale_keys"), 1.0);
    assert_eq!(m.get("suspended_keys"), 1.0);
    assert_eq!(m.get("lineages"), 3.0);
    assert_eq!(m.get("managed_keys"), 5.0);
    assert_eq!(m.get("unmanaged_keys"), 2.0);
    assert_eq!(m.get("healthy"), 1.0);
    // The rotation's duration, in the +Inf bucket and the one of 1 s.
    assert_eq!(m.get("rotation_duration_seconds_count"), 1.0);
    assert_eq!(m.get("rotation_duration_seconds_sum"), 0.8);
    assert_eq!(m.get("rotation_duration_seconds_bucket{le=0.5}"), 0.0);
    assert_eq!(m.get("rotation_duration_seconds_bucket{le=1}"), 1.0);

    // Per key: expiry and last use as listed, with the role the sweep left.
    let key = |id: &str, name: &str, role: &str| {
        format!("{{key_id={id},key_name={name},role={role},team_id={TEAM}}}")
    };
    assert_eq!(
        m.get(&format!(
            "key_expiry_timestamp_seconds{}",
            key("A", "ci-build", "current")
        )),
        (now + Duration::days(14)).timestamp() as f64
    );
    assert_eq!(
        m.get(&format!(
            "key_last_request_timestamp_seconds{}",
            key("A", "ci-build", "current")
        )),
        (now - Duration::hours(1)).timestamp() as f64
    );
    assert_eq!(
        m.get(&format!(
            "key_expiry_timestamp_seconds{}",
            key("B", "ci-deploy", "retiring")
        )),
        (now + Duration::hours(6)).timestamp() as f64
    );
    assert!(!m.has(&format!(
        "key_expiry_timestamp_seconds{}",
        key("B", "ci-deploy", "current")
    )));
    // Listed without an expiry (it never expires) or a last use: no series.
    assert!(!m.has(&format!(
        "key_expiry_timestamp_seconds{}",
        key("E", "render-\"node\"\\1", "other")
    )));
    assert!(!m.body.contains("key_id=\"E\""), "{}", m.body);

    let lineage =
        |name: &str| format!("next_rotation_timestamp_seconds{{key_name={name},team_id={TEAM}}}");
    assert_eq!(
        m.get(&lineage("ci-build")),
        (now + Duration::days(13)).timestamp() as f64
    );
    // Just rotated: the old key's due date would read as overdue, so no series.
    assert!(!m.has(&lineage("ci-deploy")));
    // A name with a quote and a backslash survives escaping (the parser unescapes).
    assert!(
        m.body.contains(r#"key_name="render-\"node\"\\1""#),
        "{}",
        m.body
    );
    assert_eq!(
        m.get(&lineage("render-\"node\"\\1")),
        (now + Duration::days(1)).timestamp() as f64
    );
    s.stop().await;
}

#[tokio::test]
async fn a_failed_sweep_is_counted_and_unhealthy_until_an_ok_one() {
    let (clock, metrics) = rig();
    let s = Served::start(&metrics).await;
    let first = clock.now();
    metrics.record_sweep(&ok_report(first));
    clock.advance(Duration::minutes(5));
    metrics.record_sweep(&failed_report(clock.now()));

    let (status, body) = s.healthz().await;
    assert_eq!(status, 503);
    assert!(body.contains("1 action(s) failed"), "{body}");
    let m = s.scrape().await;
    assert_eq!(m.get("sweeps_total{result=ok}"), 1.0);
    assert_eq!(m.get("sweeps_total{result=failed}"), 1.0);
    assert_eq!(m.get("sweep_duration_seconds"), 4.0);
    assert_eq!(m.get("rotations_total{result=ok}"), 1.0);
    assert_eq!(m.get("rotations_total{result=failed}"), 1.0);
    assert_eq!(m.get("actions_total{action=rotate,result=failed}"), 1.0);
    assert_eq!(m.get("actions_total{action=rotate,result=ok}"), 1.0);
    // The last success stays where it was.
    assert_eq!(
        m.get("last_success_timestamp_seconds"),
        first.timestamp() as f64
    );
    // Gauges describe the last sweep only.
    assert_eq!(m.get("lineages"), 1.0);
    assert_eq!(m.get("stale_keys"), 0.0);
    assert_eq!(m.get("keys{role=retiring}"), 0.0);
    let lineage =
        |name: &str| format!("next_rotation_timestamp_seconds{{key_name={name},team_id={TEAM}}}");
    assert_eq!(
        m.get(&lineage("ci-build")),
        (clock.now() - Duration::hours(2)).timestamp() as f64,
        "overdue: in the past"
    );
    assert!(!m.has(&lineage("ci-deploy")));
    assert_eq!(m.get("healthy"), 0.0);

    metrics.record_sweep(&ok_report(clock.now()));
    assert_eq!(s.healthz().await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn an_unreachable_or_erroring_sweep_is_unhealthy() {
    let (clock, metrics) = rig();
    let now = clock.now();
    let ok = ok_report(now);
    metrics.record_sweep(&SweepReport {
        scope: Scope {
            unreachable: true,
            ..ok.scope
        },
        errors: vec!["team X: connection refused".into()],
        ..ok
    });
    let why = metrics.health().unwrap_err();
    assert!(why.contains("could not reach"), "{why}");
    metrics.record_sweep(&SweepReport {
        errors: vec!["ci-build: cannot read Vault".into()],
        ..ok_report(now)
    });
    assert!(!metrics.healthy());
    metrics.record_sweep(&ok_report(now));
    assert!(metrics.healthy());
}

#[tokio::test]
async fn healthz_turns_503_once_two_intervals_pass_without_a_sweep() {
    let (clock, metrics) = rig();
    let s = Served::start(&metrics).await;
    metrics.record_sweep(&ok_report(clock.now()));
    clock.advance(Duration::seconds(600)); // exactly two intervals: still fine
    assert_eq!(s.healthz().await.0, 200);
    clock.advance(Duration::seconds(1));
    let (status, body) = s.healthz().await;
    assert_eq!(status, 503);
    assert!(body.contains("601s ago"), "{body}");
    assert_eq!(s.scrape().await.get("healthy"), 0.0);
    metrics.record_sweep(&ok_report(clock.now()));
    assert_eq!(s.healthz().await.0, 200);
    s.stop().await;
}

/// `/livez` is about the loop, not the keys: a failed sweep leaves it 200; it
/// fails only once the loop has not beaten for the live window, with the reason.
#[tokio::test]
async fn livez_stays_200_on_a_failed_sweep_and_fails_once_the_loop_is_quiet_past_the_window() {
    let clock = ManualClock::new(Utc::now());
    let shared: SharedClock = Arc::new(clock.clone());
    let metrics = Metrics::with_live_window(INTERVAL, StdDuration::from_secs(120), shared);
    let s = Served::start(&metrics).await;
    assert_eq!(s.get("/livez").await.0, 200, "alive before the first sweep");
    metrics.record_sweep(&failed_report(clock.now()));
    assert_eq!(s.healthz().await.0, 503);
    let (status, body, _) = s.get("/livez").await;
    assert_eq!((status, body.as_str()), (200, "alive\n"));
    clock.advance(Duration::seconds(120)); // exactly the window: still alive
    assert_eq!(s.get("/livez").await.0, 200);
    clock.advance(Duration::seconds(1));
    let (status, body, _) = s.get("/livez").await;
    assert_eq!(status, 503);
    assert!(
        body.contains("sweep loop stuck: no sign of life for 121s")
            && body.contains("watchdog interval (120s)"),
        "{body}"
    );
    metrics.beat();
    assert_eq!(s.get("/livez").await.0, 200, "a beat revives it");
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let (_clock, metrics) = rig();
    let s = Served::start(&metrics).await;
    assert_eq!(s.get("/").await.0, 404);
    assert_eq!(s.get("/metrics/x").await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn a_real_sweep_is_exported_without_any_secret() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    w.seed("render-node-1", Duration::days(1), Some(Duration::days(60)));
    let shared: SharedClock = Arc::new(w.clock.clone());
    let metrics = Metrics::new(INTERVAL, shared);
    let s = Served::start(&metrics).await;
    let report = w.sweep().await;
    metrics.record_sweep(&report);
    w.clock.advance(Duration::minutes(5));
    metrics.record_sweep(&w.sweep().await);

    assert_eq!(s.healthz().await.0, 200);
    let m = s.scrape().await;
    // Both lineages adopted in the first sweep (no secret in Vault yet).
    assert_eq!(m.get("rotations_total{result=ok}"), 2.0);
    assert_eq!(m.get("rotations_total{result=failed}"), 0.0);
    assert_eq!(m.get("sweeps_total{result=ok}"), 2.0);
    assert_eq!(m.get("lineages"), 2.0);
    // The second sweep sees the new keys as current, due well in the future.
    let due = m.get(&format!(
        "next_rotation_timestamp_seconds{{key_name=ci-build,team_id={TEAM}}}"
    ));
    let now = w.clock.now().timestamp() as f64;
    assert!(due > now + 86400.0, "{due}");
    for secret in w.sim.issued_secrets() {
        assert!(!m.body.contains(&secret), "a secret is in /metrics");
    }
    s.stop().await;
}

/// The names of the `masv_key_rotator_` series in `text`, without the
/// histogram suffixes.
fn series_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("masv_key_rotator_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
            .unwrap_or(name);
        if name != "masv_key_rotator_" {
            names.insert(name.to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The alert rules and README speak of the series the daemon really exports,
/// and README lists every one of them.
#[tokio::test]
async fn the_alert_rules_and_readme_name_exactly_the_exported_series() {
    use masv_key_rotator::lease::{LeaseRole, LeaseStatus};
    let (clock, metrics) = rig();
    metrics.record_sweep(&ok_report(clock.now()));
    let (_keep, lease) = tokio::sync::watch::channel(LeaseStatus {
        me: "a".into(),
        role: LeaseRole::Holder,
        holder: Some("a".into()),
        expires_at: Some(clock.now()),
        token: Some(1),
        term: 1,
        previous: None,
        transitions: 1,
        lost_because: None,
    });
    metrics.follow_lease(lease, StdDuration::from_secs(30));
    metrics.traffic().masv("login", "200");
    metrics.traffic().vault("write", "200");
    let rendered = metrics.render();
    // scripts/test lints this with `promtool check metrics`.
    let sample = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("exposition.prom");
    std::fs::write(&sample, &rendered).unwrap();
    let exported = series_names(&rendered);
    assert!(exported.len() > 25, "{exported:?}");

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let used = series_names(&rules);
    assert_eq!(used.len(), 9, "{used:?}");
    for name in &used {
        assert!(
            exported.contains(name),
            "alerts.yml uses {name}, which is not exported"
        );
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let listed = series_names(&readme);
    for name in &exported {
        assert!(listed.contains(name), "README does not list {name}");
    }
    for name in &listed {
        assert!(
            exported.contains(name),
            "README lists {name}, which is not exported"
        );
    }
}
