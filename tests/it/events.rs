//! What the webhook is told: which events a sweep raises, each with exactly the
//! contract's fields, signed with an HMAC an independent implementation accepts,
//! never holding a secret; and that `once` exits within a bounded few seconds
//! of its sweep whatever the webhook does.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use masv_key_rotator::engine::executor::Rotated;
use masv_key_rotator::engine::model::{DueReason, RotationPhase};
use masv_key_rotator::engine::planner::{Action, ActionKind, DeactivateReason, Note};
use masv_key_rotator::engine::report::ActionOutcome;
use masv_key_rotator::engine::SweepMode;
use masv_key_rotator::notify::{events_for, EventKind, Notifier, NotifySettings, Signer};
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::bin;
use crate::helpers::world::{World, PASSWORD, TEAM};
use crate::helpers::write_private;
use crate::notify::{failed, fast, finish, plan, report_at, Hook, Received, Reply};

/// The payload's fields, in the order they are sent.
const FIELDS: [&str; 8] = [
    "event",
    "at",
    "team_id",
    "key_name",
    "key_id",
    "previous_key_id",
    "rotation_id",
    "detail",
];

const WEBHOOK_SECRET: &str = "whsec-0c5e1d2b9a7f4e3c";

/// HMAC-SHA256 as RFC 2104 defines it, over `sha2` alone: an implementation
/// independent of the daemon's (which uses the `hmac` crate).
fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

#[test]
fn the_independent_hmac_knows_the_rfc_4231_answers() {
    assert_eq!(
        hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // A key longer than the block is hashed first (test case 6).
    assert_eq!(
        hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        ),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

/// The POST's signature header is the HMAC of its exact body under `secret`.
fn assert_signed(post: &Received, secret: &str) {
    let expected = format!("sha256={}", hmac_sha256(secret.as_bytes(), &post.body));
    assert_eq!(
        post.signature.as_deref(),
        Some(expected.as_str()),
        "{}",
        post.json
    );
}

/// The payload holds exactly the contract's fields, in order, with `at` an
/// RFC 3339 UTC time; returns it without `at` for comparison.
fn without_at(post: &Received) -> Value {
    let text = String::from_utf8(post.body.clone()).unwrap();
    let mut at = 0;
    for field in FIELDS {
        let found = text[at..]
            .find(&format!("\"{field}\":"))
            .unwrap_or_else(|| panic!("{field} missing or out of order in {text}"));
        at += found;
    }
    let mut value = post.json.clone();
    let object = value.as_object_mut().unwrap();
    assert_eq!(object.len(), FIELDS.len(), "{text}");
    let sent_at = object.remove("at").unwrap();
    let sent_at = sent_at.as_str().unwrap();
    assert!(sent_at.ends_with('Z'), "{sent_at}");
    DateTime::parse_from_rfc3339(sent_at).unwrap();
    value
}

fn rotated(name: &str, action: ActionKind, new: &str, previous: Option<&str>) -> ActionOutcome {
    ActionOutcome {
        ok: true,
        detail: String::new(),
        rotated: Some(Rotated {
            rotation_id: format!("R-{new}"),
            new_key_id: new.into(),
            previous_key_id: previous.map(str::to_string),
        }),
        ..failed(name, action, None, "")
    }
}

fn done(name: &str, action: ActionKind, key: &str) -> ActionOutcome {
    ActionOutcome {
        ok: true,
        detail: String::new(),
        ..failed(name, action, Some(key), "")
    }
}

#[test]
fn each_outcome_and_note_raises_its_event() {
    let at = Utc::now();
    let rotate = |reason, old: Option<&str>| Action::Rotate {
        reason,
        old_key_id: old.map(str::to_string),
        cas: 1,
    };
    let plans = vec![
        plan("ci-new", vec![rotate(DueReason::Adoption, None)], vec![]),
        plan(
            "ci-aged",
            vec![rotate(DueReason::MaxAge, Some("A1"))],
            vec![],
        ),
        plan(
            "ci-exp",
            vec![rotate(DueReason::Expiring, Some("E1"))],
            vec![],
        ),
        plan(
            "ci-late",
            vec![rotate(DueReason::Expiring, Some("L1"))],
            vec![],
        ),
        plan(
            "ci-res",
            vec![Action::Resume {
                rotation_id: "R-RES".into(),
                phase: RotationPhase::Stored,
            }],
            vec![],
        ),
        plan(
            "render-1",
            vec![
                Action::Deactivate {
                    key_id: "D1".into(),
                    reason: DeactivateReason::MaxOverlap,
                },
                Action::CleanupOrphan {
                    key_id: "O1".into(),
                    rotation_id: "R-ORPHAN".into(),
                },
            ],
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
    ];
    let outcomes = vec![
        rotated("ci-new", ActionKind::Rotate, "N1", None),
        ActionOutcome {
            key_id: Some("A1".into()),
            ..rotated("ci-aged", ActionKind::Rotate, "A2", Some("A1"))
        },
        rotated("ci-old", ActionKind::Resume, "P2", Some("P1")),
        // A resume that rolled back: nothing completed, nothing failed.
        done("ci-back", ActionKind::Resume, "B1"),
        failed("ci-exp", ActionKind::Rotate, Some("E1"), "vault: denied"),
        failed("ci-res", ActionKind::Resume, None, "masv: 503"),
        done("render-1", ActionKind::Deactivate, "D1"),
        done("render-1", ActionKind::Delete, "X1"),
        done("render-1", ActionKind::CleanupOrphan, "O1"),
        // No event in the contract: logs and metrics only.
        failed("render-1", ActionKind::Deactivate, Some("D2"), "masv: 409"),
        failed("render-1", ActionKind::Delete, Some("D3"), "masv: 409"),
        done("render-1", ActionKind::Track, "T1"),
    ];
    let report = report_at(at, plans, outcomes);
    let events: Vec<Value> = events_for(&report)
        .iter()
        .map(|e| {
            assert_eq!(e.at, at);
            serde_json::from_slice::<Value>(&e.body()).unwrap()
        })
        .map(|mut v: Value| {
            v.as_object_mut().unwrap().remove("at");
            v
        })
        .collect();
    let event = |kind: &str, name: &str, ids: [Option<&str>; 3], detail: &str| {
        json!({
            "event": kind, "team_id": TEAM, "key_name": name,
            "key_id": ids[0], "previous_key_id": ids[1], "rotation_id": ids[2],
            "detail": detail,
        })
    };
    let expiring_detail =
        "the current key is within rotate_before_expiry and could not be rotated: vault: denied";
    assert_eq!(
        events,
        vec![
            event(
                "rotation.completed",
                "ci-new",
                [Some("N1"), None, Some("R-N1")],
                "due: adopting the lineage, which had no secret in Vault"
            ),
            event(
                "rotation.completed",
                "ci-aged",
                [Some("A2"), Some("A1"), Some("R-A2")],
                "due: the current key is older than max_age"
            ),
            event(
                "rotation.completed",
                "ci-old",
                [Some("P2"), Some("P1"), Some("R-P2")],
                "an interrupted rotation was finished"
            ),
            event(
                "rotation.failed",
                "ci-exp",
                [Some("E1"), None, None],
                "vault: denied"
            ),
            event(
                "key.expiring",
                "ci-exp",
                [Some("E1"), None, None],
                expiring_detail
            ),
            event(
                "rotation.failed",
                "ci-res",
                [None, None, Some("R-RES")],
                "masv: 503"
            ),
            event(
                "key.deactivated",
                "render-1",
                [Some("D1"), None, None],
                "replaced, max_overlap has passed, though it may still have been in use"
            ),
            event(
                "key.deleted",
                "render-1",
                [Some("X1"), None, None],
                "delete_after has passed since the daemon deactivated it"
            ),
            event(
                "key.deleted",
                "render-1",
                [Some("O1"), None, Some("R-ORPHAN")],
                "an orphan: created by a rotation whose secret never reached Vault"
            ),
            event(
                "key.stale",
                "render-1",
                [Some("S1"), None, None],
                "active but unused for unused_after"
            ),
        ]
    );
    // ci-late's expiring key was not acted on in this report: no event for it.
    assert!(!events.iter().any(|e| e["key_name"] == "ci-late"));
    // A clean sweep calls for nothing.
    assert!(events_for(&report_at(
        at,
        vec![plan("ci-build", vec![], vec![])],
        vec![]
    ))
    .is_empty());
}

/// The POSTs of one sweep, with their signatures checked; `at` must be the
/// sweep's time.
async fn posts_of(
    hook: &mut Hook,
    n: &Notifier,
    report: &masv_key_rotator::engine::SweepReport,
) -> Vec<Value> {
    let before = n.stats();
    n.notify(report);
    let queued = (n.stats().queued - before.queued) as usize;
    let mut posts = vec![];
    for _ in 0..queued {
        posts.push(hook.next().await);
    }
    let at = report.finished_at.unwrap();
    posts
        .iter()
        .map(|p| {
            assert_signed(p, WEBHOOK_SECRET);
            let sent = DateTime::parse_from_rfc3339(p.json["at"].as_str().unwrap()).unwrap();
            assert_eq!(sent.timestamp(), at.timestamp());
            without_at(p)
        })
        .collect()
}

#[tokio::test]
async fn every_event_of_real_sweeps_arrives_signed_with_the_exact_fields() {
    let w = World::new().await;
    let seeded = w.seed("ci-build", Duration::days(40), Some(Duration::days(2)));
    let mut hook = Hook::start(&[Reply::Status(204)]).await;
    let settings = NotifySettings {
        signer: Some(Signer::new(SecretString::from(WEBHOOK_SECRET.to_string()))),
        ..fast(64)
    };
    let n = Notifier::with_settings(&hook.url, settings).unwrap();
    let event = |kind: EventKind, ids: [Option<&str>; 3], detail: &str| {
        json!({
            "event": kind.as_str(), "team_id": TEAM, "key_name": "ci-build",
            "key_id": ids[0], "previous_key_id": ids[1], "rotation_id": ids[2],
            "detail": detail,
        })
    };

    // Adoption of a 40-day-old, never-used key: the rotation, and the old key is stale.
    let report = w.sweep().await;
    let first = w.current("ci-build").await.unwrap().secret;
    assert_eq!(
        posts_of(&mut hook, &n, &report).await,
        [
            event(
                EventKind::RotationCompleted,
                [Some(&first.key_id), None, Some(&first.rotation_id)],
                "due: adopting the lineage, which had no secret in Vault"
            ),
            event(
                EventKind::KeyStale,
                [Some(&seeded.id), None, None],
                "active but unused for unused_after"
            ),
        ]
    );

    // Past grace_period, the idle old key is deactivated (still stale: told once a day).
    w.clock.advance(Duration::hours(2));
    let report = w.sweep().await;
    assert_eq!(
        posts_of(&mut hook, &n, &report).await,
        [event(
            EventKind::KeyDeactivated,
            [Some(&seeded.id), None, None],
            "replaced, grace_period passed and idle for idle_before_deactivate"
        )]
    );

    // delete_after later, it is deleted.
    w.clock.advance(Duration::days(7) + Duration::hours(1));
    let report = w.sweep().await;
    assert_eq!(
        posts_of(&mut hook, &n, &report).await,
        [event(
            EventKind::KeyDeleted,
            [Some(&seeded.id), None, None],
            "delete_after has passed since the daemon deactivated it"
        )]
    );

    // 24 days after adoption the new key (30-day lifetime) is within
    // rotate_before_expiry; a read-only Vault token makes its rotation fail.
    w.clock
        .advance(Duration::days(24) - Duration::days(7) - Duration::hours(3));
    let token = w.vault.read_only_token().await;
    let engine = w.engine_with_vault(w.vault_store(&token).await).await;
    let report = engine.sweep(&SweepMode::Apply).await.unwrap();
    let posts = posts_of(&mut hook, &n, &report).await;
    assert_eq!(posts.len(), 2, "{posts:?}");
    let detail = posts[0]["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("permission denied"), "{detail}");
    assert_eq!(
        posts,
        [
            event(
                EventKind::RotationFailed,
                [Some(&first.key_id), None, None],
                &detail
            ),
            event(
                EventKind::KeyExpiring,
                [Some(&first.key_id), None, None],
                &format!("the current key is within rotate_before_expiry and could not be rotated: {detail}")
            ),
        ]
    );

    // With the root token the expiring key is rotated: rotation.completed
    // names both keys, and no key.expiring (module doc of notify::from_report).
    let report = w.sweep().await;
    let second = w.current("ci-build").await.unwrap().secret;
    assert_ne!(second.key_id, first.key_id);
    let posts = posts_of(&mut hook, &n, &report).await;
    let completed: Vec<&Value> = posts
        .iter()
        .filter(|p| p["event"] == "rotation.completed")
        .collect();
    assert_eq!(completed.len(), 1, "{posts:?}");
    assert_eq!(
        completed[0],
        &event(
            EventKind::RotationCompleted,
            [
                Some(&second.key_id),
                Some(&first.key_id),
                Some(&second.rotation_id)
            ],
            completed[0]["detail"].as_str().unwrap()
        )
    );
    assert!(
        posts.iter().all(|p| p["event"] != "key.expiring"),
        "{posts:?}"
    );

    let stats = finish(n).await;
    assert_eq!((stats.pending(), stats.failed), (0, 0), "{stats:?}");

    let mut secrets = w.sim.issued_secrets();
    secrets.extend([PASSWORD.to_string(), token, WEBHOOK_SECRET.to_string()]);
    for post in hook.drain_received() {
        let text = String::from_utf8_lossy(&post.body);
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret in {text}");
        }
    }
}

/// A config for `w` with a `[notify]` table (`extra` appended to it).
fn with_webhook(w: &World, url: &str, extra: &str) -> std::path::PathBuf {
    w.write_config(&format!("\n[notify]\nwebhook_url = \"{url}\"\n{extra}"))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn once_signs_with_the_secret_file_and_sends_only_the_listed_events() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(40), Some(Duration::days(2)));
    let mut hook = Hook::start(&[Reply::Status(200)]).await;
    let secret_file = w.db_path.with_file_name("webhook-secret");
    write_private(&secret_file, &format!("{WEBHOOK_SECRET}\n"));
    let config = with_webhook(
        &w,
        &hook.url,
        &format!(
            "webhook_secret_file = \"{}\"\nevents = [\"rotation.completed\"]\n",
            secret_file.display()
        ),
    );
    let out = bin::once(&config).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The adoption's rotation.completed; its key.stale is filtered out.
    let posts = hook.drain_received();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].json["event"], "rotation.completed");
    assert_signed(&posts[0], WEBHOOK_SECRET);
    assert!(!stderr(&out).contains(WEBHOOK_SECRET));
}

#[tokio::test]
async fn once_gives_a_hanging_webhook_a_bounded_few_seconds() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let mut hook = Hook::start(&[Reply::Hang]).await;
    let config = with_webhook(&w, &hook.url, "");
    let started = Instant::now();
    let out = bin::once(&config).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    hook.next().await; // the event did go out, and the webhook never answered
    let grace = masv_key_rotator::notify::DRAIN_GRACE;
    assert!(took >= grace, "gave the webhook its grace: {took:?}");
    assert!(
        took < grace + StdDuration::from_secs(8),
        "exit bounded by the grace plus the sweep: {took:?}"
    );
    assert!(
        stderr(&out).contains("webhook events abandoned at exit"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn once_with_the_webhook_down_still_succeeds() {
    let w = World::new().await;
    w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = with_webhook(&w, &format!("http://{down}/hook"), "");
    let started = Instant::now();
    let out = bin::once(&config).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(w.current("ci-build").await.is_some(), "the sweep rotated");
    let e = stderr(&out);
    assert!(e.contains("webhook event not delivered"), "{e}");
    assert!(
        took < masv_key_rotator::notify::DRAIN_GRACE + StdDuration::from_secs(8),
        "{took:?}"
    );
}
