//! Checks on single values that several tables share (URLs, Vault path
//! segments, "exactly one of these fields"), each failing with the field named.

use std::path::Path;

use super::ConfigError;

/// Exactly one of `options` (name, is set) in `table` is set.
pub(super) fn exactly_one(
    file: &Path,
    table: &str,
    options: &[(&str, bool)],
) -> Result<(), ConfigError> {
    let set: Vec<&str> = options
        .iter()
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect();
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    match set.len() {
        1 => Ok(()),
        0 => Err(ConfigError::invalid(
            file,
            table,
            format!("set one of {}", names.join(", ")),
        )),
        _ => Err(ConfigError::invalid(
            file,
            format!("{table}.{}", set[1]),
            format!(
                "conflicts with {table}.{}: set only one of {}",
                set[0],
                names.join(", ")
            ),
        )),
    }
}

/// An http or https URL with a host.
pub(super) fn check_url(file: &Path, field: &str, value: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(url) => Err(ConfigError::invalid(
            file,
            field,
            format!(
                "{value:?} must be an http or https URL, not {}",
                url.scheme()
            ),
        )),
        Err(e) => Err(ConfigError::invalid(
            file,
            field,
            format!("{value:?} is not a URL: {e}"),
        )),
    }
}

/// A Vault path segment: non-empty, no leading/trailing slash, no `.`/`..` parts.
pub(super) fn check_path_segment(file: &Path, field: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && !value.starts_with('/')
        && !value.ends_with('/')
        && value
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            file,
            field,
            format!("{value:?} must be a relative path without empty, '.' or '..' parts"),
        ))
    }
}
