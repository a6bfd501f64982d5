//! Bad input: arbitrary config text and MASV responses never panic and always
//! come back as a clear error; clock skew and a 20,000-key team are handled.

use std::path::Path;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, TimeZone, Utc};
use masv_key_rotator::config::Config;
use masv_key_rotator::engine::SweepMode;
use masv_key_rotator::exit::Exit;
use masv_key_rotator::masv::{time, ApiKey};
use masv_key_rotator::simulator::SeedKey;
use proptest::prelude::*;

use crate::helpers::world::{World, TEAM};

const BASE: &str = "[masv]\nemail = \"ops@studio.example\"\npassword_env = \"P\"\n\n[vault]\naddress = \"http://127.0.0.1:8200\"\ntoken_env = \"T\"\n\n[[team]]\nid = \"01FB4S68W7RAW4M89801H1C4CR\"\nkeys = [\"ci-*\"]\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text: parsed or refused with the file and a field named, never a panic.
    #[test]
    fn arbitrary_config_text_never_panics(text in "\\PC{0,300}") {
        if let Err(e) = Config::parse(&text, Path::new("fuzz.toml")) {
            prop_assert!(e.to_string().starts_with("fuzz.toml: "), "{}", e);
        }
    }

    /// A valid config with one field replaced by arbitrary TOML: refused naming that table.
    #[test]
    fn a_bad_value_in_any_field_is_named(
        field in prop::sample::select(vec!["timeout", "max_concurrency", "base_url", "email"]),
        value in prop::sample::select(vec!["-1", "\"\"", "\"x\"", "[]", "{}", "1e309", "\"1 fortnight\"", "0", "true"]),
    ) {
        let text = BASE.replace("[masv]\n", &format!("[masv]\n{field} = {value}\n"));
        let text = if field == "email" { text.replacen("email = \"ops@studio.example\"\n", "", 1) } else { text };
        match Config::parse(&text, Path::new("c.toml")) {
            Ok(c) => prop_assert!(field != "base_url" || c.masv.base_url.is_empty(), "accepted {}={}", field, value),
            Err(e) => prop_assert!(e.field().is_some_and(|f| f.starts_with("masv")), "{}", e),
        }
    }

    /// Arbitrary JSON in a list response: parsed or an error, never a panic.
    #[test]
    fn arbitrary_masv_list_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = serde_json::from_slice::<Vec<ApiKey>>(&body);
    }

    /// Every timestamp shape MASV may send denotes the same instant.
    #[test]
    fn timestamp_shapes_agree(secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000, digits in 0usize..=9, offset_min in -720i32..=840) {
        let t = Utc.timestamp_opt(secs, 0).unwrap() + Duration::nanoseconds(nanos as i64);
        let truncated = {
            let keep = 10u32.pow(9 - digits as u32);
            Utc.timestamp_opt(secs, 0).unwrap() + Duration::nanoseconds(((nanos / keep) * keep) as i64)
        };
        let offset = chrono::FixedOffset::east_opt(offset_min * 60).unwrap();
        let local = t.with_timezone(&offset);
        let fraction = if digits == 0 { String::new() } else { format!(".{:09}", nanos)[..digits + 1].to_string() };
        let text = format!("{}{}{}", local.format("%Y-%m-%dT%H:%M:%S"), fraction, local.format("%:z"));
        prop_assert_eq!(time::parse(&text).unwrap(), Some(truncated), "{}", text);
    }
}

#[tokio::test]
async fn skewed_masv_timestamps_do_not_break_policy() {
    let w = World::new().await;
    let now = w.now();
    // created "in the future" (clock skew) and used "in the future"
    let future = w.sim.seed_key(
        TEAM,
        SeedKey {
            created_at: Some(now + Duration::hours(3)),
            last_request_at: Some(now + Duration::hours(2)),
            expiry: Some(now + Duration::days(60)),
            ..SeedKey::active("ci-future")
        },
    );
    // expired hours ago: still rotated, not skipped
    let past = w.sim.seed_key(
        TEAM,
        SeedKey {
            expiry: Some(now - Duration::hours(5)),
            ..SeedKey::active("ci-past")
        },
    );
    let r = w.sweep().await;
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    assert_ne!(w.current("ci-past").await.unwrap().secret.key_id, past.id);
    // the future-used old key counts as in use: kept past grace, retired at max_overlap
    w.clock.advance(Duration::hours(2) - Duration::minutes(1));
    w.sweep().await;
    assert_eq!(
        w.state(&future.id),
        Some(masv_key_rotator::masv::KeyState::Active)
    );
    w.clock.advance(Duration::days(7));
    w.sweep().await;
    assert_eq!(
        w.state(&future.id),
        Some(masv_key_rotator::masv::KeyState::Inactive)
    );
    w.assert_invariants().await;
}

#[tokio::test]
async fn a_team_with_20000_keys_is_listed_and_planned_quickly() {
    let w = World::new().await;
    for i in 0..20_000 {
        let name = if i % 2_000 == 0 {
            format!("ci-{i:05}")
        } else {
            format!("laptop-{i:05}")
        };
        w.sim.seed_key(TEAM, SeedKey::active(&name));
    }
    let engine = w.engine().await;
    let started = Instant::now();
    let plan = engine.sweep(&SweepMode::DryRun).await.unwrap();
    let planned_in = started.elapsed();
    assert_eq!(plan.scope.managed_keys, 10);
    assert_eq!(plan.scope.unmanaged_keys, 19_990);
    assert!(planned_in < StdDuration::from_secs(10), "{planned_in:?}");
    let r = engine.sweep(&SweepMode::Apply).await.unwrap();
    assert_eq!(r.exit(), Exit::Success, "{:?}", r.outcomes);
    assert_eq!(r.succeeded(), 10);
    w.assert_invariants().await;
}
