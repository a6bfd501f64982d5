//! The secrets a config names (`*_file` or `*_env`), read into
//! [`SecretString`]s. The file itself never holds one. Errors name the field and
//! the path or variable, never the value; a secret file others can read is
//! refused.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::{Config, ConfigError};

/// The secrets a config points at, read from their files or environment variables.
pub struct Credentials {
    pub masv_password: SecretString,
    pub vault: VaultCredentials,
    /// `[notify] webhook_secret_file`, if set: signs each webhook POST.
    pub webhook_secret: Option<SecretString>,
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
        let webhook_secret = match &config.notify {
            Some(notify) => notify
                .webhook_secret_file
                .as_deref()
                .map(|path| read_secret(file, "notify", "webhook_secret", Some(path), None))
                .transpose()?,
            None => None,
        };
        Ok(Credentials {
            masv_password,
            vault,
            webhook_secret,
        })
    }
}

/// Reads `<table>.<name>_file` or `<table>.<name>_env`. Trailing newlines are
/// dropped (files written with `echo` have one); an empty secret is an error.
pub(super) fn read_secret(
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
/// can read it can take over the MASV account or the Vault path, or sign
/// webhook events of their own. Refused (not just warned about) because the
/// daemon cannot know who else is on the machine.
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
