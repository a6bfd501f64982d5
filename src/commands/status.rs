//! `status [--json]`: every managed key, from the local database (no network),
//! and with `[ha]` who holds the leader lease (one read of `_leader` in Vault;
//! if Vault cannot be read the keys are still shown, with the reason).
//! The table shows names and ids from MASV [`escaped`]; `--json` is exact:
//! an array of keys, or with `[ha]` an object `{"lease": …, "keys": […]}`.

use std::fmt::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::escape::escaped;
use crate::exit::{CommandError, CommandResult, Exit};
use crate::view::View;

pub(crate) fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

fn snake<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The table people read.
pub fn table(view: &View) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:<26} {:<9} {:<8} {:<16} {:<16} {:>5} {:<10} {:<16} WHY",
        "LINEAGE", "KEY", "STATE", "ROLE", "EXPIRY", "LAST USE", "AGE", "NEXT", "WHEN"
    );
    for k in view.keys() {
        let _ = writeln!(
            out,
            "{:<40} {:<26} {:<9} {:<8} {:<16} {:<16} {:>5} {:<10} {:<16} {}",
            escaped(format_args!("{}/{}", k.team_id, k.lineage)),
            escaped(&k.key_id),
            k.state.as_str(),
            snake(&k.role),
            when(k.expiry),
            when(k.last_request_at),
            k.age_days.map_or("-".to_string(), |d| format!("{d}d")),
            snake(&k.next_action),
            when(k.next_at),
            k.why.unwrap_or("-"),
        );
    }
    if view.lineages.is_empty() {
        let _ = writeln!(
            out,
            "(no managed keys recorded yet: run `once` or `run` first)"
        );
    }
    let _ = writeln!(
        out,
        "as of the last list of each team: {}",
        when(view.listed_at)
    );
    out
}

/// The lease as `status` shows it.
#[derive(Debug, serde::Serialize)]
pub struct LeaseView {
    /// None: nobody holds it (never taken, or released).
    pub holder: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The fencing token (the lease's KV version).
    pub token: Option<u64>,
    /// Why the lease could not be read, if it could not.
    pub error: Option<String>,
}

impl LeaseView {
    fn line(&self) -> String {
        match (&self.error, &self.holder) {
            (Some(e), _) => format!("HA lease: unknown ({})", escaped(e)),
            (None, Some(h)) => format!(
                "HA lease: held by {} until {} UTC (fencing token {})",
                escaped(h),
                when(self.expires_at),
                self.token.unwrap_or_default()
            ),
            (None, None) => "HA lease: nobody holds it".to_string(),
        }
    }
}

/// With `[ha]`, the lease as Vault has it now.
async fn lease(config: &crate::config::Config) -> Option<LeaseView> {
    config.ha.as_ref()?;
    let unknown = |error: String| LeaseView {
        holder: None,
        expires_at: None,
        token: None,
        error: Some(error),
    };
    let credentials = match crate::config::Credentials::resolve(config) {
        Ok(c) => c,
        Err(e) => return Some(unknown(e.to_string())),
    };
    let settings = crate::services::vault_settings(config, credentials.vault);
    let read =
        match crate::services::connect_vault(settings, crate::traffic::Traffic::default()).await {
            Ok(vault) => vault.read_lease().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
    Some(match read {
        Ok(Some(o)) if !o.record.is_released() => LeaseView {
            holder: Some(o.record.holder),
            expires_at: Some(o.record.expires_at),
            token: Some(o.version),
            error: None,
        },
        Ok(_) => LeaseView {
            holder: None,
            expires_at: None,
            token: None,
            error: None,
        },
        Err(e) => unknown(e),
    })
}

pub async fn run(path: &Path, json: bool) -> CommandResult {
    let config = super::load_config(path)?;
    let view = super::offline_view(&config).await?;
    let lease = lease(&config).await;
    if json {
        let keys: Vec<_> = view.keys().collect();
        let value = match &lease {
            Some(l) => serde_json::json!({ "lease": l, "keys": keys }),
            None => serde_json::to_value(&keys).map_err(CommandError::failed)?,
        };
        let text = serde_json::to_string_pretty(&value).map_err(CommandError::failed)?;
        println!("{text}");
    } else {
        print!("{}", table(&view));
        if let Some(l) = &lease {
            println!("{}", l.line());
        }
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use crate::escape::{assert_shown, HOSTILE};

    #[test]
    fn hostile_names_stay_on_their_row() {
        let out = super::table(&crate::view::sample(HOSTILE));
        assert_shown(&out);
        assert_eq!(out.lines().count(), 1 + HOSTILE.len() + 1, "{out}");
        assert!(out.contains("ci-\\x1b]0;pwned\\x07\\x1b[2J-key"), "{out}");
        assert!(out.contains("/ci-x\\nresult: 99"), "{out}");
    }
}
