//! What the Vault adapter is given: where Vault is, where the secrets go, and
//! how to log in (a token, or AppRole whose secret id is read at each login).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{SecretSource, VaultConfig, VaultCredentials};

/// How the daemon authenticates to Vault.
pub enum VaultAuth {
    Token(SecretString),
    AppRole {
        mount: String,
        role_id: String,
        /// Read again at every login.
        secret_id: SecretSource,
    },
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("Token(..)"),
            VaultAuth::AppRole { mount, role_id, .. } => write!(
                f,
                "AppRole {{ mount: {mount:?}, role_id: {role_id:?}, .. }}"
            ),
        }
    }
}

impl From<VaultCredentials> for VaultAuth {
    fn from(c: VaultCredentials) -> Self {
        match c {
            VaultCredentials::Token(t) => VaultAuth::Token(t),
            VaultCredentials::AppRole {
                mount,
                role_id,
                secret_id,
            } => VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            },
        }
    }
}

/// Everything the adapter needs.
#[derive(Debug)]
pub struct VaultSettings {
    pub address: String,
    pub mount: String,
    pub path_prefix: String,
    pub ca_cert: Option<PathBuf>,
    pub namespace: Option<String>,
    pub timeout: Duration,
    pub auth: VaultAuth,
}

impl VaultSettings {
    pub fn from_config(cfg: &VaultConfig, creds: VaultCredentials) -> Self {
        VaultSettings {
            address: cfg.address.clone(),
            mount: cfg.mount.clone(),
            path_prefix: cfg.path_prefix.clone(),
            ca_cert: cfg.ca_cert.clone(),
            namespace: cfg.namespace.clone(),
            timeout: cfg.timeout,
            auth: creds.into(),
        }
    }
}
