//! Every shipped config parses; every invalid fixture fails with the field and
//! message its header promises (`# expect-field:` / `# expect-message:`).
//!
//! The files are parsed from their text: what is checked is their content, not
//! the mode a checkout gave them (`Config::load` refuses a group-writable file,
//! which a checkout under umask 002 makes; tests/it/config_refusals.rs covers that).

use std::path::{Path, PathBuf};

use masv_key_rotator::config::{Config, ConfigError};

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Parses and validates a repository config file as `Config::load` would.
fn parse_file(file: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    Config::parse(&text, file)
}

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

#[test]
fn every_example_config_parses() {
    let files = toml_files(&config_dir());
    assert!(files.len() >= 2, "expected example configs in config/");
    for file in files {
        parse_file(&file).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn example_documents_every_table() {
    let text = std::fs::read_to_string(config_dir().join("example.toml")).unwrap();
    for table in [
        "[masv]",
        "[vault]",
        "[database]",
        "[schedule]",
        "[policy]",
        "[[team]]",
        "[team.policy]",
        "[log]",
        "[metrics]",
        "[notify]",
        "[ha]",
        "[vault.approle]",
    ] {
        assert!(
            text.contains(table),
            "example.toml does not document {table}"
        );
    }
}

fn header(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .unwrap_or_else(|| panic!("fixture lacks '# {key}:'"))
        .to_string()
}

#[test]
fn every_invalid_fixture_fails_naming_file_field_and_problem() {
    let files = toml_files(&config_dir().join("invalid"));
    assert!(files.len() >= 10, "expected invalid fixtures");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let field = header(&text, "expect-field");
        let message = header(&text, "expect-message");
        let err = match parse_file(&file) {
            Ok(_) => panic!("{} parsed but should not", file.display()),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(
            err.field(),
            Some(field.as_str()),
            "{}: {shown}",
            file.display()
        );
        assert!(
            shown.starts_with(&file.display().to_string()),
            "message must start with the file: {shown}"
        );
        assert!(
            shown.contains(&message),
            "{}: {shown:?} lacks {message:?}",
            file.display()
        );
    }
}
