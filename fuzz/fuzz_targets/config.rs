//! Arbitrary bytes as a config file.
//!
//! Properties:
//! - an error always reads `fuzz.toml: <field>: <problem>` with a non-empty field,
//!   and the same text under another path gives the same error with that path;
//! - a config that parses re-validates, remembers its source, parses the same way
//!   twice, has a valid cron expression and at least one team, and its effective
//!   per-team policies and glob matchers can be built.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use masv_key_rotator::config::{parse_cron, Config, ConfigError};

const PATH: &str = "fuzz.toml";
const OTHER: &str = "/etc/other dir/c.toml";

fn check_error(e: &ConfigError, path: &str) -> String {
    let msg = e.to_string();
    let field = e
        .field()
        .unwrap_or_else(|| panic!("parse error without a field: {msg}"));
    assert!(!field.is_empty(), "empty field name: {msg}");
    let prefix = format!("{path}: {field}: ");
    assert!(
        msg.starts_with(&prefix),
        "error {msg:?} does not start with {prefix:?}"
    );
    msg[prefix.len()..].to_string()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new(PATH)) {
        Err(e) => {
            let problem = check_error(&e, PATH);
            assert!(!problem.trim().is_empty(), "empty problem: {e}");
            // The path only appears in the prefix: the rest does not depend on it.
            let other = Config::parse(text, Path::new(OTHER))
                .expect_err("parse result depends on the path");
            assert_eq!(e.field(), other.field());
            assert_eq!(problem, check_error(&other, OTHER));
        }
        Ok(config) => {
            assert_eq!(config.source, Path::new(PATH));
            if let Err(e) = config.validate() {
                panic!("a parsed config fails re-validation: {e}");
            }
            if let Err(e) = config.clone().validate() {
                panic!("a cloned config fails validation: {e}");
            }
            let again = Config::parse(text, Path::new(PATH)).expect("second parse failed");
            assert_eq!(format!("{config:?}"), format!("{again:?}"));
            assert!(parse_cron(&config.schedule.cron).is_ok());
            assert!(!config.teams.is_empty());
            for team in &config.teams {
                let _ = config.policy_for(team);
                let matcher = team.matcher();
                assert_eq!(
                    matcher.len(),
                    team.keys.len(),
                    "a validated glob was dropped from the matcher"
                );
            }
        }
    }
});
