//! `[[team]]`: which MASV teams are managed, which key names in each, under
//! which policy. Resolved once at parse time: the name patterns compiled into
//! one [`GlobSet`], the policy overlaid on `[policy]`.

use std::collections::HashSet;
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use super::policy::PolicyOverride;
use super::ConfigError;
use crate::engine::Policy;

/// `[[team]]` as written (messages call it `TeamConfig`, as they always have).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "struct TeamConfig", deny_unknown_fields)]
pub(super) struct TeamTable {
    id: String,
    keys: Vec<String>,
    policy: Option<PolicyOverride>,
}

/// One managed team, ready to use.
#[derive(Debug, Clone)]
pub struct TeamConfig {
    pub id: String,
    /// Glob patterns over key names, as written; a key whose name matches none
    /// is never touched.
    pub keys: Vec<String>,
    /// `[policy]` with this team's `[team.policy]` laid over it.
    pub policy: Policy,
    /// `keys` compiled, once, when the config is parsed.
    matcher: GlobSet,
}

impl TeamConfig {
    /// The compiled name patterns.
    pub fn matcher(&self) -> &GlobSet {
        &self.matcher
    }
}

/// Every `[[team]]`, in file order: at least one, ids MASV team ids listed
/// once, patterns that compile, policies that hold. `defaults` is `[policy]`.
pub(super) fn resolve(
    tables: Vec<TeamTable>,
    defaults: Policy,
    file: &Path,
) -> Result<Vec<TeamConfig>, ConfigError> {
    if tables.is_empty() {
        return Err(ConfigError::invalid(
            file,
            "team",
            "at least one [[team]] is required",
        ));
    }
    let mut seen = HashSet::new();
    let mut teams = Vec::with_capacity(tables.len());
    for (i, table) in tables.into_iter().enumerate() {
        let at = format!("team[{i}]");
        if !crate::masv::ids::is_masv_id(&table.id) {
            return Err(ConfigError::invalid(
                file,
                format!("{at}.id"),
                format!(
                    "{:?} is not a MASV team id (a 26-character ULID, e.g. 01FB4S68W7RAW4M89801H1C4CR)",
                    table.id
                ),
            ));
        }
        if !seen.insert(table.id.clone()) {
            return Err(ConfigError::invalid(
                file,
                format!("{at}.id"),
                format!("team {} is listed twice", table.id),
            ));
        }
        let matcher = compile_patterns(&table.keys, file, &at)?;
        let policy = match &table.policy {
            Some(o) => o.resolve(defaults, file, &format!("{at}.policy"))?,
            None => defaults,
        };
        teams.push(TeamConfig {
            id: table.id,
            keys: table.keys,
            policy,
            matcher,
        });
    }
    Ok(teams)
}

/// The name patterns as one set, each compiled once; an error names the
/// pattern (`team[i].keys[j]`) that cannot compile.
fn compile_patterns(patterns: &[String], file: &Path, at: &str) -> Result<GlobSet, ConfigError> {
    if patterns.is_empty() {
        return Err(ConfigError::invalid(
            file,
            format!("{at}.keys"),
            "must list at least one name pattern",
        ));
    }
    let mut builder = GlobSetBuilder::new();
    for (j, pattern) in patterns.iter().enumerate() {
        if pattern.trim().is_empty() {
            return Err(ConfigError::invalid(
                file,
                format!("{at}.keys[{j}]"),
                "empty pattern",
            ));
        }
        let glob = Glob::new(pattern).map_err(|e| {
            ConfigError::invalid(
                file,
                format!("{at}.keys[{j}]"),
                format!("bad glob {pattern:?}: {e}"),
            )
        })?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| ConfigError::invalid(file, format!("{at}.keys"), e.to_string()))
}

/// The teams as the engine manages them.
pub fn managed_teams(config: &super::Config) -> Vec<crate::engine::ManagedTeam> {
    config
        .teams
        .iter()
        .map(|t| crate::engine::ManagedTeam {
            id: t.id.clone(),
            matcher: t.matcher().clone(),
            policy: t.policy,
        })
        .collect()
}
