//! The configuration file (docs/design.md, section 3): parsed, then validated, in one place.
//!
//! Parsing is strict (`deny_unknown_fields`) because a misspelt policy field that
//! silently fell back to its default could keep a leaked key alive for months.
//! Every error names the file, the field (a dotted path such as `policy.max_age`)
//! and what is wrong, so an operator can fix it without reading code.
//!
//! Secrets are never stored in the file itself: the file names where they live
//! (`*_file` or `*_env`), and [`Credentials::resolve`] reads them into
//! [`SecretString`]s.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use secrecy::SecretString;
use serde::Deserialize;

use crate::plain_http;

/// Where the config is looked up when `--config` is not given.
pub const ENV_CONFIG_PATH: &str = "MASV_KEY_ROTATOR_CONFIG";
/// The last resort config path.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/masv-key-rotator/config.toml";

mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    const DAY: u64 = 24 * 60 * 60;

    pub fn masv_base_url() -> String {
        "https://api.massive.app/v1".to_string()
    }
    pub fn masv_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_concurrency() -> usize {
        8
    }
    pub fn vault_mount() -> String {
        "secret".to_string()
    }
    pub fn path_prefix() -> String {
        "masv".to_string()
    }
    pub fn approle_mount() -> String {
        "approle".to_string()
    }
    pub fn database_path() -> PathBuf {
        PathBuf::from("/var/lib/masv-key-rotator/state.db")
    }
    pub fn cron() -> String {
        "0 */5 * * * *".to_string()
    }
    pub fn rotate_before_expiry() -> Duration {
        Duration::from_secs(7 * DAY)
    }
    pub fn max_age() -> Duration {
        Duration::from_secs(90 * DAY)
    }
    pub fn new_key_lifetime() -> Duration {
        Duration::from_secs(30 * DAY)
    }
    pub fn grace_period() -> Duration {
        Duration::from_secs(60 * 60)
    }
    pub fn idle_before_deactivate() -> Duration {
        Duration::from_secs(15 * 60)
    }
    pub fn max_overlap() -> Duration {
        Duration::from_secs(7 * DAY)
    }
    pub fn delete_after() -> Duration {
        Duration::from_secs(7 * DAY)
    }
    pub fn unused_after() -> Duration {
        Duration::from_secs(30 * DAY)
    }
    pub fn log_level() -> String {
        "info".to_string()
    }
}

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
    fn invalid(file: &Path, field: impl Into<String>, problem: impl Into<String>) -> Self {
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
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub masv: MasvConfig,
    pub vault: VaultConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub policy: Policy,
    #[serde(rename = "team", default)]
    pub teams: Vec<TeamConfig>,
    #[serde(default)]
    pub log: LogConfig,
    pub metrics: Option<MetricsConfig>,
    pub notify: Option<NotifyConfig>,
    /// The file this config came from (not a TOML field).
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasvConfig {
    #[serde(default = "defaults::masv_base_url")]
    pub base_url: String,
    pub email: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    #[serde(default = "defaults::masv_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "defaults::max_concurrency")]
    pub max_concurrency: usize,
    /// Lets `base_url` be plain http to a host that is not loopback ([`crate::plain_http`]).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    pub address: String,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    #[serde(default = "defaults::vault_mount")]
    pub mount: String,
    #[serde(default = "defaults::path_prefix")]
    pub path_prefix: String,
    pub ca_cert: Option<PathBuf>,
    pub namespace: Option<String>,
    pub approle: Option<AppRoleConfig>,
    /// Lets `address` be plain http to a host that is not loopback ([`crate::plain_http`]).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleConfig {
    pub role_id: String,
    pub secret_id_file: Option<PathBuf>,
    pub secret_id_env: Option<String>,
    #[serde(default = "defaults::approle_mount")]
    pub mount: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default = "defaults::database_path")]
    pub path: PathBuf,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: defaults::database_path(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Seconds-first cron, as tokio-cron-scheduler reads it.
    #[serde(default = "defaults::cron")]
    pub cron: String,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            cron: defaults::cron(),
        }
    }
}

/// The rotation policy (docs/design.md, section 4). `[policy]` sets the defaults, `[team.policy]`
/// overrides single fields for one team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default = "defaults::rotate_before_expiry", with = "humantime_serde")]
    pub rotate_before_expiry: Duration,
    #[serde(default = "defaults::max_age", with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(default = "defaults::new_key_lifetime", with = "humantime_serde")]
    pub new_key_lifetime: Duration,
    #[serde(default = "defaults::grace_period", with = "humantime_serde")]
    pub grace_period: Duration,
    #[serde(default = "defaults::idle_before_deactivate", with = "humantime_serde")]
    pub idle_before_deactivate: Duration,
    #[serde(default = "defaults::max_overlap", with = "humantime_serde")]
    pub max_overlap: Duration,
    #[serde(default = "defaults::delete_after", with = "humantime_serde")]
    pub delete_after: Duration,
    #[serde(default = "defaults::unused_after", with = "humantime_serde")]
    pub unused_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            rotate_before_expiry: defaults::rotate_before_expiry(),
            max_age: defaults::max_age(),
            new_key_lifetime: defaults::new_key_lifetime(),
            grace_period: defaults::grace_period(),
            idle_before_deactivate: defaults::idle_before_deactivate(),
            max_overlap: defaults::max_overlap(),
            delete_after: defaults::delete_after(),
            unused_after: defaults::unused_after(),
        }
    }
}

/// A per-team override: every field optional, the rest from `[policy]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    #[serde(default, with = "humantime_serde")]
    pub rotate_before_expiry: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub new_key_lifetime: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub grace_period: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub idle_before_deactivate: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_overlap: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub delete_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub unused_after: Option<Duration>,
}

impl Policy {
    /// This policy with the override's fields laid over it.
    pub fn with_override(&self, o: &PolicyOverride) -> Policy {
        Policy {
            rotate_before_expiry: o.rotate_before_expiry.unwrap_or(self.rotate_before_expiry),
            max_age: o.max_age.unwrap_or(self.max_age),
            new_key_lifetime: o.new_key_lifetime.unwrap_or(self.new_key_lifetime),
            grace_period: o.grace_period.unwrap_or(self.grace_period),
            idle_before_deactivate: o
                .idle_before_deactivate
                .unwrap_or(self.idle_before_deactivate),
            max_overlap: o.max_overlap.unwrap_or(self.max_overlap),
            delete_after: o.delete_after.unwrap_or(self.delete_after),
            unused_after: o.unused_after.unwrap_or(self.unused_after),
        }
    }

    /// Checks the relations between fields; `at` is the table's dotted path.
    fn validate(&self, file: &Path, at: &str) -> Result<(), ConfigError> {
        let named = |field: &str| format!("{at}.{field}");
        for (field, value) in [
            ("max_age", self.max_age),
            ("new_key_lifetime", self.new_key_lifetime),
            ("max_overlap", self.max_overlap),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(
                    file,
                    named(field),
                    "must be greater than zero",
                ));
            }
        }
        if self.rotate_before_expiry >= self.new_key_lifetime {
            return Err(ConfigError::invalid(
                file,
                named("rotate_before_expiry"),
                format!(
                    "must be shorter than new_key_lifetime ({}), or every new key would be due at once",
                    humantime::format_duration(self.new_key_lifetime)
                ),
            ));
        }
        if self.max_overlap < self.grace_period {
            return Err(ConfigError::invalid(
                file,
                named("max_overlap"),
                format!(
                    "must be at least grace_period ({})",
                    humantime::format_duration(self.grace_period)
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub id: String,
    /// Glob patterns over key names; a key whose name matches none is never touched.
    pub keys: Vec<String>,
    pub policy: Option<PolicyOverride>,
    /// `keys` compiled, once, when the config is parsed.
    #[serde(skip)]
    matcher: GlobSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: defaults::log_level(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub webhook_url: String,
}

/// Resolves which config file to use: `--config`, else the environment, else the default.
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    match std::env::var_os(ENV_CONFIG_PATH) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

impl Config {
    /// Reads, parses and validates a config file; one that group or others
    /// may write is refused before it is parsed.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let read = |source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read)?;
        // The mode of the file actually opened, not of whatever is at the name later.
        let mode = file.metadata().map_err(read)?.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(ConfigError::WritableByOthers {
                file: path.to_path_buf(),
                mode,
            });
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(read)?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
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
        })?;
        config.source = path.to_path_buf();
        config.validate()?;
        for (i, team) in config.teams.iter_mut().enumerate() {
            team.matcher = compile_patterns(&team.keys).map_err(|e| {
                ConfigError::invalid(path, format!("team[{i}].keys"), e.to_string())
            })?;
        }
        Ok(config)
    }

    /// The one validation pass: every rule that serde's types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let file = self.source.as_path();
        let err = |field: &str, problem: String| Err(ConfigError::invalid(file, field, problem));

        // [masv]
        check_url(file, "masv.base_url", &self.masv.base_url)?;
        let email = self.masv.email.trim();
        if email.is_empty() || !email.contains('@') {
            return err(
                "masv.email",
                format!("{:?} is not an email address", self.masv.email),
            );
        }
        exactly_one(
            file,
            "masv",
            &[
                ("password_file", self.masv.password_file.is_some()),
                ("password_env", self.masv.password_env.is_some()),
            ],
        )?;
        if self.masv.timeout.is_zero() {
            return err("masv.timeout", "must be greater than zero".into());
        }
        if !(1..=256).contains(&self.masv.max_concurrency) {
            return err(
                "masv.max_concurrency",
                format!(
                    "must be between 1 and 256, got {}",
                    self.masv.max_concurrency
                ),
            );
        }

        // [vault]
        check_url(file, "vault.address", &self.vault.address)?;
        plain_http::check(self)?;
        exactly_one(
            file,
            "vault",
            &[
                ("token_file", self.vault.token_file.is_some()),
                ("token_env", self.vault.token_env.is_some()),
                ("approle", self.vault.approle.is_some()),
            ],
        )?;
        check_path_segment(file, "vault.mount", &self.vault.mount)?;
        check_path_segment(file, "vault.path_prefix", &self.vault.path_prefix)?;
        if let Some(approle) = &self.vault.approle {
            if approle.role_id.trim().is_empty() {
                return err("vault.approle.role_id", "must not be empty".into());
            }
            exactly_one(
                file,
                "vault.approle",
                &[
                    ("secret_id_file", approle.secret_id_file.is_some()),
                    ("secret_id_env", approle.secret_id_env.is_some()),
                ],
            )?;
            check_path_segment(file, "vault.approle.mount", &approle.mount)?;
        }

        // [database]
        if self.database.path.as_os_str().is_empty() {
            return err("database.path", "must not be empty".into());
        }

        // [schedule]
        if let Err(e) = parse_cron(&self.schedule.cron) {
            return err(
                "schedule.cron",
                format!(
                    "{:?} is not a seconds-first cron expression (e.g. \"0 */5 * * * *\"): {e}",
                    self.schedule.cron
                ),
            );
        }

        // [policy] and [[team]]
        self.policy.validate(file, "policy")?;
        if self.teams.is_empty() {
            return err("team", "at least one [[team]] is required".into());
        }
        let mut seen = HashSet::new();
        for (i, team) in self.teams.iter().enumerate() {
            let at = format!("team[{i}]");
            if !crate::masv::ids::is_masv_id(&team.id) {
                return err(
                    &format!("{at}.id"),
                    format!(
                        "{:?} is not a MASV team id (a 26-character ULID, e.g. 01FB4S68W7RAW4M89801H1C4CR)",
                        team.id
                    ),
                );
            }
            if !seen.insert(team.id.as_str()) {
                return err(
                    &format!("{at}.id"),
                    format!("team {} is listed twice", team.id),
                );
            }
            if team.keys.is_empty() {
                return err(
                    &format!("{at}.keys"),
                    "must list at least one name pattern".into(),
                );
            }
            for (j, pattern) in team.keys.iter().enumerate() {
                if pattern.trim().is_empty() {
                    return err(&format!("{at}.keys[{j}]"), "empty pattern".into());
                }
                if let Err(e) = Glob::new(pattern) {
                    return err(
                        &format!("{at}.keys[{j}]"),
                        format!("bad glob {pattern:?}: {e}"),
                    );
                }
            }
            if let Some(o) = &team.policy {
                self.policy
                    .with_override(o)
                    .validate(file, &format!("{at}.policy"))?;
            }
        }

        // [log]
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return err(
                "log.level",
                format!(
                    "{:?} is not a level (error, warn, info, debug, trace) or filter",
                    self.log.level
                ),
            );
        }

        // [notify]
        if let Some(notify) = &self.notify {
            check_url(file, "notify.webhook_url", &notify.webhook_url)?;
        }
        Ok(())
    }

    /// The effective policy for a team.
    pub fn policy_for(&self, team: &TeamConfig) -> Policy {
        match &team.policy {
            Some(o) => self.policy.with_override(o),
            None => self.policy,
        }
    }
}

impl TeamConfig {
    /// The compiled name patterns.
    pub fn matcher(&self) -> &GlobSet {
        &self.matcher
    }
}

/// The name patterns as one set; an error names the pattern that cannot compile.
fn compile_patterns(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(Glob::new(pattern)?);
    }
    builder.build()
}

/// Parses a seconds-first cron expression the way tokio-cron-scheduler does.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
}

/// The time between two consecutive runs of a schedule from `from` (for health checks).
pub fn cron_interval(expr: &str, from: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let cron = parse_cron(expr).ok()?;
    let first = cron.find_next_occurrence(&from, false).ok()?;
    let second = cron.find_next_occurrence(&first, false).ok()?;
    (second - first).to_std().ok()
}

/// The secrets a config points at, read from their files or environment variables.
pub struct Credentials {
    pub masv_password: SecretString,
    pub vault: VaultCredentials,
}

/// How the daemon authenticates to Vault.
pub enum VaultCredentials {
    Token(SecretString),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretSource,
    },
}

/// Where a secret that is read again at each use comes from (the AppRole
/// secret id: an operator may replace its file while the daemon runs).
#[derive(Clone)]
pub enum SecretSource {
    /// `<table>.<name>_file` or `<table>.<name>_env` of a config file.
    Config {
        config_file: PathBuf,
        table: String,
        name: String,
        file: Option<PathBuf>,
        env: Option<String>,
    },
    /// A value fixed at start (tests, embedding).
    Fixed(SecretString),
}

impl SecretSource {
    /// The secret as it is now; an error names the field and the path or
    /// variable, never the value.
    pub fn read(&self) -> Result<SecretString, ConfigError> {
        match self {
            SecretSource::Config {
                config_file,
                table,
                name,
                file,
                env,
            } => read_secret(config_file, table, name, file.as_deref(), env.as_deref()),
            SecretSource::Fixed(s) => Ok(s.clone()),
        }
    }
}

impl From<SecretString> for SecretSource {
    fn from(s: SecretString) -> Self {
        SecretSource::Fixed(s)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

impl Credentials {
    /// Reads every secret the config names. An error names the field and the path
    /// or variable, never the value.
    pub fn resolve(config: &Config) -> Result<Credentials, ConfigError> {
        let file = config.source.as_path();
        let masv_password = read_secret(
            file,
            "masv",
            "password",
            config.masv.password_file.as_deref(),
            config.masv.password_env.as_deref(),
        )?;
        let vault = match &config.vault.approle {
            Some(approle) => {
                let secret_id = SecretSource::Config {
                    config_file: file.to_path_buf(),
                    table: "vault.approle".into(),
                    name: "secret_id".into(),
                    file: approle.secret_id_file.clone(),
                    env: approle.secret_id_env.clone(),
                };
                // Read once now so a missing or open secret fails at start.
                secret_id.read()?;
                VaultCredentials::AppRole {
                    mount: approle.mount.clone(),
                    role_id: approle.role_id.clone(),
                    secret_id,
                }
            }
            None => VaultCredentials::Token(read_secret(
                file,
                "vault",
                "token",
                config.vault.token_file.as_deref(),
                config.vault.token_env.as_deref(),
            )?),
        };
        Ok(Credentials {
            masv_password,
            vault,
        })
    }
}

/// Reads `<table>.<name>_file` or `<table>.<name>_env`. Trailing newlines are
/// dropped (files written with `echo` have one); an empty secret is an error.
fn read_secret(
    config_file: &Path,
    table: &str,
    name: &str,
    from_file: Option<&Path>,
    from_env: Option<&str>,
) -> Result<SecretString, ConfigError> {
    let (field, raw) = match (from_file, from_env) {
        (Some(path), _) => {
            let field = format!("{table}.{name}_file");
            check_private(config_file, &field, path)?;
            let raw = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::invalid(
                    config_file,
                    &field,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            (field, raw)
        }
        (None, Some(var)) => {
            let field = format!("{table}.{name}_env");
            let raw = std::env::var(var).map_err(|_| {
                ConfigError::invalid(
                    config_file,
                    &field,
                    format!("environment variable {var} is not set or not UTF-8"),
                )
            })?;
            (field, raw)
        }
        (None, None) => {
            return Err(ConfigError::invalid(
                config_file,
                table,
                format!("set {name}_file or {name}_env"),
            ))
        }
    };
    let trimmed = raw.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(ConfigError::invalid(
            config_file,
            field,
            "the secret is empty",
        ));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// A secret file must not be readable or writable by group or others: anyone who
/// can read it can take over the MASV account or the Vault path. Refused (not
/// just warned about) because the daemon cannot know who else is on the machine.
/// systemd credentials (`LoadCredential=`) always pass: they are 0400.
fn check_private(config_file: &Path, field: &str, path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        ConfigError::invalid(
            config_file,
            field,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::invalid(
            config_file,
            field,
            format!(
                "{} is accessible by group or others (mode {mode:04o}); run: chmod 600 {}",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(())
}

fn exactly_one(file: &Path, table: &str, options: &[(&str, bool)]) -> Result<(), ConfigError> {
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

fn check_url(file: &Path, field: &str, value: &str) -> Result<(), ConfigError> {
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
fn check_path_segment(file: &Path, field: &str, value: &str) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[masv]
email = "ops@example.com"
password_env = "MASV_PASSWORD"

[vault]
address = "http://127.0.0.1:8200"
token_env = "VAULT_TOKEN"

[[team]]
id = "01FB4S68W7RAW4M89801H1C4CR"
keys = ["ci-*"]
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    fn field_of(text: &str) -> String {
        parse(text).unwrap_err().field().unwrap_or("").to_string()
    }

    #[test]
    fn minimal_config_gets_the_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.masv.base_url, "https://api.massive.app/v1");
        assert_eq!(c.masv.timeout, Duration::from_secs(30));
        assert_eq!(c.masv.max_concurrency, 8);
        assert_eq!(c.vault.mount, "secret");
        assert_eq!(c.vault.path_prefix, "masv");
        assert_eq!(c.schedule.cron, "0 */5 * * * *");
        assert_eq!(c.policy, Policy::default());
        assert_eq!(c.policy.max_age, Duration::from_secs(90 * 86400));
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(c.metrics.is_none() && c.notify.is_none());
    }

    #[test]
    fn team_policy_overrides_single_fields() {
        let text = format!("{MINIMAL}\n[team.policy]\nmax_age = \"10d\"\n");
        let c = parse(&text).unwrap();
        let p = c.policy_for(&c.teams[0]);
        assert_eq!(p.max_age, Duration::from_secs(10 * 86400));
        assert_eq!(p.grace_period, Policy::default().grace_period);
    }

    #[test]
    fn unknown_field_is_named() {
        let text = MINIMAL.replace("[vault]", "[vault]\nadress = \"x\"");
        let e = parse(&text).unwrap_err();
        assert!(e.to_string().contains("adress"), "{e}");
        assert!(e.to_string().starts_with("test.toml: vault"), "{e}");
    }

    #[test]
    fn bad_duration_names_the_field() {
        let text = format!("{MINIMAL}\n[policy]\nmax_age = \"ninety days\"\n");
        assert_eq!(field_of(&text), "policy.max_age");
    }

    #[test]
    fn bad_cron_names_the_field() {
        let text = format!("{MINIMAL}\n[schedule]\ncron = \"*/5 * * * *\"\n");
        assert_eq!(field_of(&text), "schedule.cron");
    }

    #[test]
    fn both_password_sources_conflict() {
        let text = MINIMAL.replace(
            "password_env = \"MASV_PASSWORD\"",
            "password_env = \"A\"\npassword_file = \"/x\"",
        );
        assert_eq!(field_of(&text), "masv.password_env");
    }

    #[test]
    fn rotate_before_expiry_must_be_shorter_than_lifetime() {
        let text = format!("{MINIMAL}\n[policy]\nrotate_before_expiry = \"30d\"\n");
        assert_eq!(field_of(&text), "policy.rotate_before_expiry");
    }

    #[test]
    fn bad_glob_and_bad_team_id_are_named() {
        assert_eq!(
            field_of(&MINIMAL.replace("\"ci-*\"", "\"ci-[\"")),
            "team[0].keys[0]"
        );
        assert_eq!(
            field_of(&MINIMAL.replace("01FB4S68W7RAW4M89801H1C4CR", "../etc")),
            "team[0].id"
        );
    }

    #[test]
    fn vault_path_prefix_must_be_relative() {
        let text = MINIMAL.replace("token_env", "path_prefix = \"/abs\"\ntoken_env");
        assert_eq!(field_of(&text), "vault.path_prefix");
    }

    #[test]
    fn cron_interval_is_the_gap_between_runs() {
        let now = chrono::Utc::now();
        assert_eq!(
            cron_interval("0 */5 * * * *", now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            cron_interval("*/2 * * * * *", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(cron_interval("nonsense", now), None);
    }

    #[test]
    fn matcher_uses_globs() {
        let c = parse(MINIMAL).unwrap();
        let m = c.teams[0].matcher();
        assert!(m.is_match("ci-build"));
        assert!(!m.is_match("render-node-1"));
    }

    #[test]
    fn plain_http_off_loopback_is_refused_unless_allowed() {
        let remote = MINIMAL.replace("http://127.0.0.1:8200", "http://vault.internal:8200");
        let e = parse(&remote).unwrap_err();
        assert_eq!(e.field(), Some("vault.address"));
        assert!(
            e.to_string().contains("vault.allow_insecure_http = true"),
            "{e}"
        );
        let allowed = remote.replace("[vault]", "[vault]\nallow_insecure_http = true");
        assert!(parse(&allowed).unwrap().vault.allow_insecure_http);

        let masv = MINIMAL.replace("[masv]", "[masv]\nbase_url = \"http://masv.example/v1\"");
        assert_eq!(field_of(&masv), "masv.base_url");
        let allowed = masv.replace("[masv]", "[masv]\nallow_insecure_http = true");
        assert!(parse(&allowed).unwrap().masv.allow_insecure_http);
        for local in ["http://localhost:8200", "http://[::1]:8200"] {
            parse(&MINIMAL.replace("http://127.0.0.1:8200", local)).unwrap();
        }
    }

    #[test]
    fn missing_password_file_names_field_and_path() {
        let text = MINIMAL.replace(
            "password_env = \"MASV_PASSWORD\"",
            "password_file = \"/nonexistent/masv-password\"",
        );
        let c = parse(&text).unwrap();
        let e = Credentials::resolve(&c).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("masv.password_file"), "{msg}");
        assert!(msg.contains("/nonexistent/masv-password"), "{msg}");
    }

    #[test]
    fn secret_file_trailing_newline_is_dropped() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_secret(Path::new("c"), "masv", "password", Some(&pw), None).unwrap_err();
        assert!(
            err.to_string().contains("mode 0644") && err.to_string().contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = read_secret(Path::new("c"), "masv", "password", Some(&pw), None).unwrap();
        assert_eq!(s.expose_secret(), "hunter2");
        std::fs::write(&pw, "\n").unwrap();
        assert!(read_secret(Path::new("c"), "masv", "password", Some(&pw), None).is_err());
    }
}
