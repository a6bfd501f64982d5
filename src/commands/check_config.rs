//! `check-config`: validate the file, log in to MASV, and prove the Vault
//! credentials can write under the prefix — before a daemon is trusted with keys.
//! With `[ha]`, also read the leader lease and say who holds it.
//!
//! Exit 2 when something in the config is wrong (including a wrong password or a
//! token without write capability: both are fixed by editing configuration);
//! exit 3 when MASV or Vault cannot be reached.

use std::path::Path;

use crate::config::{Config, Credentials, VaultCredentials};
use crate::escape::escaped;
use crate::exit::{CommandResult, Exit};
use crate::masv::{MasvClient, MasvError, MasvSettings};
use crate::vault::{VaultError, VaultSettings, VaultStore};

/// One result line. `text` can quote MASV's or Vault's answer, so it is [`escaped`].
fn line(what: &str, ok: bool, text: &str) {
    let status = if ok { "ok" } else { "FAILED" };
    println!("{what:<9}{status:<8}{}", escaped(text));
}

pub async fn run(path: &Path, debug: bool) -> CommandResult {
    let (config, credentials) = super::load(path, debug)?;
    line(
        "config",
        true,
        &format!("{} ({} team(s))", path.display(), config.teams.len()),
    );
    let masv = check_masv(&config, &credentials).await;
    let vault = check_vault(&config, credentials).await;
    let database = check_database(&config);
    Ok(masv.worst(vault).worst(database))
}

async fn check_masv(config: &Config, credentials: &Credentials) -> Exit {
    let settings = MasvSettings::from_config(&config.masv, credentials.masv_password.clone());
    let client = match MasvClient::new(settings) {
        Ok(c) => c,
        Err(e) => {
            line("masv", false, &format!("masv.base_url: {e}"));
            return Exit::Usage;
        }
    };
    let login = match client.login().await {
        Ok(login) => login,
        Err(e @ MasvError::LoginRejected { .. }) => {
            let field = if config.masv.password_file.is_some() {
                "masv.password_file"
            } else {
                "masv.password_env"
            };
            line(
                "masv",
                false,
                &format!("masv.email / {field}: {e} (user {})", config.masv.email),
            );
            return Exit::Usage;
        }
        Err(e) => {
            line("masv", false, &format!("{}: {e}", config.masv.base_url));
            return if e.is_unreachable() {
                Exit::Unreachable
            } else {
                Exit::ActionFailed
            };
        }
    };
    let mut exit = Exit::Success;
    for (i, team) in config.teams.iter().enumerate() {
        if !login.team_ids.iter().any(|t| t == &team.id) {
            line(
                "masv",
                false,
                &format!(
                    "team[{i}].id: {} is not a team of {}",
                    team.id, config.masv.email
                ),
            );
            exit = Exit::Usage;
        }
    }
    if exit == Exit::Success {
        line(
            "masv",
            true,
            &format!(
                "logged in to {} as {}",
                config.masv.base_url, config.masv.email
            ),
        );
    }
    exit
}

fn vault_auth_field(config: &Config) -> &'static str {
    if config.vault.approle.is_some() {
        "vault.approle"
    } else if config.vault.token_file.is_some() {
        "vault.token_file"
    } else {
        "vault.token_env"
    }
}

fn vault_exit(config: &Config, e: &VaultError) -> Exit {
    if e.is_unreachable() {
        line("vault", false, &format!("{}: {e}", config.vault.address));
        Exit::Unreachable
    } else {
        line(
            "vault",
            false,
            &format!("{}: {e}", vault_auth_field(config)),
        );
        Exit::Usage
    }
}

async fn check_vault(config: &Config, credentials: Credentials) -> Exit {
    let creds: VaultCredentials = credentials.vault;
    let settings = VaultSettings::from_config(&config.vault, creds);
    let store = match VaultStore::connect(settings).await {
        Ok(s) => s,
        Err(e) => return vault_exit(config, &e),
    };
    if let Err(e) = store.health().await {
        return vault_exit(config, &e);
    }
    if let Err(e) = store.check_write_capability().await {
        return vault_exit(config, &e);
    }
    line(
        "vault",
        true,
        &format!(
            "{} can write {}/data/{}/*",
            config.vault.address, config.vault.mount, config.vault.path_prefix
        ),
    );
    match &config.ha {
        Some(ha) => check_lease(config, &ha.instance_id, &store).await,
        None => Exit::Success,
    }
}

/// Reads `_leader` (this instance will take part in it).
async fn check_lease(config: &Config, me: &str, store: &VaultStore) -> Exit {
    let at = format!("{}/data/{}", config.vault.mount, store.lease_path());
    match store.read_lease().await {
        Ok(lease) => {
            let holder = match lease {
                Some(l) if !l.record.is_released() => format!(
                    "held by {} until {} (fencing token {})",
                    l.record.holder,
                    l.record.expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    l.version
                ),
                _ => "nobody holds it".to_string(),
            };
            line(
                "ha",
                true,
                &format!("instance {me}; lease at {at}: {holder}"),
            );
            Exit::Success
        }
        Err(e) => {
            line("ha", false, &format!("{at}: {e}"));
            if e.is_unreachable() {
                Exit::Unreachable
            } else {
                Exit::Usage
            }
        }
    }
}

fn check_database(config: &Config) -> Exit {
    let path = &config.database.path;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        line(
            "database",
            false,
            &format!("database.path: directory {} does not exist", dir.display()),
        );
        return Exit::Usage;
    }
    line("database", true, &path.display().to_string());
    Exit::Success
}
