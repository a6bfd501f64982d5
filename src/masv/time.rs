//! MASV timestamps.
//!
//! MASV writes RFC 3339 timestamps with anywhere from 0 to 9 fractional digits and
//! either `Z` or a numeric offset. "No expiry" and "never used" are written as the
//! zero time `0001-01-01T00:00:00.000Z`; we model that as `None` so no policy code
//! can mistake it for a real instant two thousand years ago.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

/// The textual zero time MASV uses for "none".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00.000Z";

/// A timestamp that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {value:?}: {reason}")]
pub struct TimestampError {
    pub value: String,
    pub reason: String,
}

/// Parses a MASV timestamp; the zero time (year 1) becomes `None`.
pub fn parse(value: &str) -> Result<Option<DateTime<Utc>>, TimestampError> {
    let parsed = DateTime::parse_from_rfc3339(value.trim()).map_err(|e| TimestampError {
        value: value.to_string(),
        reason: e.to_string(),
    })?;
    let utc = parsed.with_timezone(&Utc);
    if utc.year() <= 1 {
        return Ok(None);
    }
    // A negative offset late on 9999-12-31 lands in year 10000 UTC, which RFC 3339
    // (and so `format`, Vault records and MASV requests) cannot write back.
    if utc.year() > 9999 {
        return Err(TimestampError {
            value: value.to_string(),
            reason: "after the year 9999 in UTC".to_string(),
        });
    }
    Ok(Some(utc))
}

/// Formats an optional instant the way MASV does, the zero time for `None`.
pub fn format(value: Option<DateTime<Utc>>) -> String {
    match value {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => ZERO_TIME.to_string(),
    }
}

/// Serde adapter for `Option<DateTime<Utc>>` fields in MASV JSON (zero time ⇔ `None`).
pub mod serde_opt {
    use std::fmt;

    use chrono::{DateTime, Utc};
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        // A missing or null field means the same as the zero time.
        deserializer.deserialize_option(OptionalTimestamp)
    }

    /// Parses the text where the decoder holds it: a key list carries four
    /// timestamps per key, and none needs a `String` of its own.
    struct OptionalTimestamp;

    impl<'de> Visitor<'de> for OptionalTimestamp {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            if s.is_empty() {
                return Ok(None);
            }
            super::parse(s).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32, nanos: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2021, 4, 19, h, m, s).unwrap()
            + chrono::Duration::nanoseconds(nanos as i64)
    }

    #[test]
    fn vendor_millis_with_z() {
        assert_eq!(
            parse("2021-04-19T16:57:32.683Z").unwrap(),
            Some(at(16, 57, 32, 683_000_000))
        );
    }

    #[test]
    fn no_fraction() {
        assert_eq!(
            parse("2021-04-19T16:57:32Z").unwrap(),
            Some(at(16, 57, 32, 0))
        );
    }

    #[test]
    fn six_and_nine_digits() {
        assert_eq!(
            parse("2021-04-19T16:57:32.123456Z").unwrap(),
            Some(at(16, 57, 32, 123_456_000))
        );
        assert_eq!(
            parse("2021-04-19T16:57:32.123456789Z").unwrap(),
            Some(at(16, 57, 32, 123_456_789))
        );
    }

    #[test]
    fn numeric_offsets_are_normalised_to_utc() {
        assert_eq!(
            parse("2021-04-19T16:57:32+00:00").unwrap(),
            Some(at(16, 57, 32, 0))
        );
        assert_eq!(
            parse("2021-04-19T11:57:32.5-05:00").unwrap(),
            Some(at(16, 57, 32, 500_000_000))
        );
    }

    #[test]
    fn zero_time_is_none_in_every_shape() {
        for z in [
            ZERO_TIME,
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00.000000000+00:00",
        ] {
            assert_eq!(parse(z).unwrap(), None, "{z}");
        }
    }

    #[test]
    fn garbage_is_an_error_naming_the_value() {
        let err = parse("yesterday").unwrap_err();
        assert!(err.to_string().contains("yesterday"));
        assert!(parse("2021-04-19 16:57:32").is_err());
    }

    #[test]
    fn past_year_9999_in_utc_is_an_error_not_an_unformattable_instant() {
        // Breaks the round-trip property of fuzz/fuzz_targets/masv_timestamp.rs: this
        // parsed to year 10000, which formats as "+10000-01-01T00:59:59.000Z" and
        // never parses back.
        let err = parse("9999-12-31T23:59:59-01:00").unwrap_err();
        assert!(
            err.to_string().contains("9999-12-31T23:59:59-01:00"),
            "{err}"
        );
        let last = parse("9999-12-31T23:59:59.999+00:00").unwrap().unwrap();
        assert_eq!(format(Some(last)), "9999-12-31T23:59:59.999Z");
        assert_eq!(parse(&format(Some(last))).unwrap(), Some(last));
        assert!(parse("9999-12-31T22:59:59-01:00").unwrap().is_some());
    }

    #[test]
    fn format_round_trips() {
        let t = at(16, 57, 32, 683_000_000);
        assert_eq!(format(Some(t)), "2021-04-19T16:57:32.683Z");
        assert_eq!(parse(&format(Some(t))).unwrap(), Some(t));
        assert_eq!(format(None), ZERO_TIME);
    }

    #[derive(Debug, serde::Deserialize)]
    struct Stamped {
        #[serde(with = "serde_opt", default)]
        at: Option<DateTime<Utc>>,
    }

    fn stamped(json: &str) -> Result<Option<DateTime<Utc>>, String> {
        serde_json::from_str::<Stamped>(json)
            .map(|s| s.at)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_serde_adapter_reads_every_shape_masv_may_send() {
        let t = Some(at(16, 57, 32, 683_000_000));
        assert_eq!(stamped(r#"{"at": "2021-04-19T16:57:32.683Z"}"#), Ok(t));
        // Escaped text is unescaped by the decoder before it is parsed.
        assert_eq!(stamped(r#"{"at": "2021-04-19T16:57:32.683\u005a"}"#), Ok(t));
        for none in [
            r#"{}"#,
            r#"{"at": null}"#,
            r#"{"at": ""}"#,
            r#"{"at": "0001-01-01T00:00:00.000Z"}"#,
        ] {
            assert_eq!(stamped(none), Ok(None), "{none}");
        }
        let garbage = stamped(r#"{"at": "yesterday"}"#).unwrap_err();
        assert!(garbage.contains("yesterday"), "{garbage}");
        for wrong in [
            r#"{"at": 1618851452}"#,
            r#"{"at": ["x"]}"#,
            r#"{"at": true}"#,
        ] {
            let e = stamped(wrong).unwrap_err();
            assert!(e.contains("timestamp"), "{wrong}: {e}");
        }
    }
}
