//! What goes wrong with a config file, and how a TOML or serde error becomes
//! one: every message names the file, the field (a dotted path such as
//! `policy.max_age`) and the problem, so an operator can fix it without
//! reading code.

use std::path::{Path, PathBuf};

/// What went wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the config file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Anyone who can write the config can send the secrets elsewhere (a
    /// `base_url` of their own) or stop the rotation: refused, not warned about.
    #[error("{file}: the config file is writable by group or others (mode {mode:04o}): whoever can write it can send the MASV password and the Vault token elsewhere; run: chmod go-w {file}")]
    WritableByOthers { file: PathBuf, mode: u32 },
    #[error("{file}: {field}: {problem}")]
    Invalid {
        file: PathBuf,
        /// Dotted path of the field, e.g. `policy.max_age` or `team[1].keys[0]`.
        field: String,
        problem: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        file: &Path,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            file: file.to_path_buf(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The field the error is about, if it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Read { .. } | ConfigError::WritableByOthers { .. } => None,
        }
    }

    /// A TOML syntax error or a serde type error in `text`, with the field it
    /// is about and, where TOML knows it, the line and column.
    pub(crate) fn from_toml(
        text: &str,
        path: &Path,
        e: serde_path_to_error::Error<toml::de::Error>,
    ) -> Self {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let location = inner
            .span()
            .map(|span| {
                let (line, col) = line_col(text, span.start);
                format!(" (line {line}, column {col})")
            })
            .unwrap_or_default();
        let mut field = if field == "." || field.is_empty() {
            String::new()
        } else {
            field
        };
        // serde reports a missing field at its parent table: name the field itself.
        if let Some(missing) = inner
            .message()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(missing);
        }
        // A syntax error has no serde path: name the key from the text itself.
        if field.is_empty() {
            if let Some(span) = inner.span() {
                field = key_at(text, span.start).unwrap_or_default();
            }
        }
        if field.is_empty() {
            field = "(top level)".to_string();
        }
        ConfigError::invalid(path, field, format!("{}{location}", inner.message()))
    }
}

/// The dotted key on the line holding `offset` (`table.key`), from the raw text.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split('=').next()?.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    };
    if !bare(key) || !line.contains('=') {
        return None;
    }
    let table = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}
