//! The engine's import rule (docs/design.md, "Where things live"): no non-test
//! file under `src/engine/` names an adapter (`crate::masv`, `crate::vault`,
//! `crate::store`) or the config (`crate::config`). The engine owns its ports
//! and its model; the adapters implement them.

use std::path::{Path, PathBuf};

const FORBIDDEN: [&str; 4] = ["masv", "vault", "store", "config"];

/// The places in `source` (a file's text, its test module cut off) that reach
/// a forbidden module: `crate::masv…`, or a `crate::{…, masv, …}` group.
fn violations(source: &str) -> Vec<String> {
    let code = match source.find("#[cfg(test)]") {
        Some(at) => &source[..at],
        None => source,
    };
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.split("//").next().unwrap_or_default();
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let named: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|p| p.trim().split("::").next().unwrap_or_default())
                    .collect(),
                None => vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()],
            };
            if named.iter().any(|m| FORBIDDEN.contains(m)) {
                found.push(format!("line {}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

fn engine_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            engine_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

#[test]
fn the_engine_imports_no_adapter_and_no_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = Vec::new();
    engine_files(&root, &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let broken: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            violations(&text)
                .into_iter()
                .map(move |v| format!("{}: {v}", f.display()))
        })
        .collect();
    assert!(
        broken.is_empty(),
        "the engine reaches an adapter or the config:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_import_check_sees_every_form_and_skips_tests_and_comments() {
    assert_eq!(violations("use crate::masv::ApiKey;").len(), 1);
    assert_eq!(
        violations("use crate::{clock::Clock, store::Store};").len(),
        1
    );
    assert_eq!(
        violations("    let t = crate::config::VAULT_TIMEOUT;").len(),
        1
    );
    assert_eq!(violations("fn f() -> crate::vault::VaultError {}").len(), 1);
    assert!(violations("use crate::clock::SharedClock;").is_empty());
    assert!(violations("use crate::masvish::X; use crate::stores::Y;").is_empty());
    assert!(violations("//! see `crate::masv` for the adapter").is_empty());
    assert!(
        violations("use super::x;\n#[cfg(test)]\nmod tests { use crate::masv::ApiKey; }")
            .is_empty()
    );
}
