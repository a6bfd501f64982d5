//! Arbitrary text as a MASV timestamp.
//!
//! Properties:
//! - `Some(t)` round-trips through `format`, and is after year 1. `format` writes
//!   milliseconds (as MASV does), so the round trip is exact for whole-millisecond
//!   instants and truncates finer ones to the millisecond, after which it is exact;
//! - `None` only for instants in (UTC) year 1 or before, i.e. the zero time;
//! - an error names the value it could not parse;
//! - surrounding whitespace does not change the result.
#![no_main]

use chrono::{DateTime, Datelike, Timelike, Utc};
use libfuzzer_sys::fuzz_target;
use masv_key_rotator::masv::time;

fuzz_target!(|input: &str| {
    let parsed = time::parse(input);
    match &parsed {
        Ok(Some(t)) => {
            assert!(t.year() > 1, "{input:?} gave {t:?}, which should be None");
            let text = time::format(Some(*t));
            assert_ne!(text, time::ZERO_TIME, "{input:?} formats as the zero time");
            let millis = t
                .with_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
                .unwrap();
            match time::parse(&text) {
                Ok(Some(back)) => {
                    assert_eq!(
                        back, millis,
                        "{input:?} parses to {t:?}, formatted {text:?}, which parses back to {back:?}"
                    );
                    assert_eq!(time::format(Some(back)), text, "format is not a fixpoint");
                }
                other => panic!(
                    "{input:?} parses to {t:?}, formatted {text:?}, which parses back as {other:?}"
                ),
            }
        }
        Ok(None) => {
            let instant = DateTime::parse_from_rfc3339(input.trim())
                .expect("time::parse accepted what chrono rejects")
                .with_timezone(&Utc);
            assert!(instant.year() <= 1, "{input:?} is {instant:?}, not None");
        }
        Err(e) => {
            assert_eq!(e.value, input);
            assert!(
                e.to_string().contains(&format!("{input:?}")),
                "error {e} does not name {input:?}"
            );
        }
    }
    let padded = format!(" \t{input}\n ");
    match (parsed, time::parse(&padded)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "whitespace changed {input:?}"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("whitespace changed {input:?}: {a:?} vs {b:?}"),
    }
    assert_eq!(time::format(None), time::ZERO_TIME);
    assert_eq!(time::parse(time::ZERO_TIME), Ok(None));
});
