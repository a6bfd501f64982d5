//! `[masv]` and `[vault]`: where the daemon sends its credentials, and how.
//!
//! Both tables name their secrets (`*_file` or `*_env`) rather than hold them;
//! [`super::Credentials`] reads them. Plain http off loopback is refused here,
//! once both URLs are known to parse ([`crate::plain_http`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::checks::{check_path_segment, check_url, exactly_one};
use super::ConfigError;
use crate::plain_http;

/// How long one Vault request may take. Vault has a timeout of its own, not
/// `masv.timeout`: a slow MASV says nothing about how long Vault needs. The
/// config format has no field for it.
pub const VAULT_TIMEOUT: Duration = Duration::from_secs(30);

fn masv_base_url() -> String {
    "https://api.massive.app/v1".to_string()
}
fn masv_timeout() -> Duration {
    Duration::from_secs(30)
}
fn max_concurrency() -> usize {
    8
}
fn vault_mount() -> String {
    "secret".to_string()
}
fn path_prefix() -> String {
    "masv".to_string()
}
fn approle_mount() -> String {
    "approle".to_string()
}
fn vault_timeout() -> Duration {
    VAULT_TIMEOUT
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasvConfig {
    #[serde(default = "masv_base_url")]
    pub base_url: String,
    pub email: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    #[serde(default = "masv_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "max_concurrency")]
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
    #[serde(default = "vault_mount")]
    pub mount: String,
    #[serde(default = "path_prefix")]
    pub path_prefix: String,
    pub ca_cert: Option<PathBuf>,
    pub namespace: Option<String>,
    pub approle: Option<AppRoleConfig>,
    /// Lets `address` be plain http to a host that is not loopback ([`crate::plain_http`]).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Always [`VAULT_TIMEOUT`]: not read from the file (a `timeout` under
    /// `[vault]` is an unknown field, as before).
    #[serde(skip_deserializing, default = "vault_timeout")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleConfig {
    pub role_id: String,
    pub secret_id_file: Option<PathBuf>,
    pub secret_id_env: Option<String>,
    #[serde(default = "approle_mount")]
    pub mount: String,
}

impl MasvConfig {
    /// What serde cannot check: the URL, the email, one password source, the limits.
    pub(super) fn check(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |field: &str, problem: String| Err(ConfigError::invalid(file, field, problem));
        check_url(file, "masv.base_url", &self.base_url)?;
        let email = self.email.trim();
        if email.is_empty() || !email.contains('@') {
            return err(
                "masv.email",
                format!("{:?} is not an email address", self.email),
            );
        }
        exactly_one(
            file,
            "masv",
            &[
                ("password_file", self.password_file.is_some()),
                ("password_env", self.password_env.is_some()),
            ],
        )?;
        if self.timeout.is_zero() {
            return err("masv.timeout", "must be greater than zero".into());
        }
        if !(1..=256).contains(&self.max_concurrency) {
            return err(
                "masv.max_concurrency",
                format!("must be between 1 and 256, got {}", self.max_concurrency),
            );
        }
        Ok(())
    }
}

impl VaultConfig {
    /// What serde cannot check: the address, plain http (of both tables, once
    /// `masv` has passed [`MasvConfig::check`]), one way to log in, the paths.
    pub(super) fn check(&self, file: &Path, masv: &MasvConfig) -> Result<(), ConfigError> {
        check_url(file, "vault.address", &self.address)?;
        plain_http::check(file, masv, self)?;
        exactly_one(
            file,
            "vault",
            &[
                ("token_file", self.token_file.is_some()),
                ("token_env", self.token_env.is_some()),
                ("approle", self.approle.is_some()),
            ],
        )?;
        check_path_segment(file, "vault.mount", &self.mount)?;
        check_path_segment(file, "vault.path_prefix", &self.path_prefix)?;
        if let Some(approle) = &self.approle {
            if approle.role_id.trim().is_empty() {
                return Err(ConfigError::invalid(
                    file,
                    "vault.approle.role_id",
                    "must not be empty",
                ));
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
        Ok(())
    }
}
