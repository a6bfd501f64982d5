//! Plain `http://` to MASV (`[masv] base_url`) or Vault (`[vault] address`).
//!
//! Over plain http the MASV password, MASV session tokens, the Vault token and
//! every new API key's secret cross the network readable by anyone on the path.
//! So it is refused unless the host is loopback (`127.0.0.0/8`, `::1`,
//! `localhost`: a local proxy, a dev server, the test rigs), where nothing leaves
//! the machine. A section may opt out with `allow_insecure_http = true`; the
//! daemon then says so in a warning each time it loads that config, so the
//! choice stays visible in the logs.

use std::net::IpAddr;
use std::path::Path;

use tracing::warn;

use crate::config::{Config, ConfigError, MasvConfig, VaultConfig};

/// Whether `url` is plain http to a host other than loopback. Anything that is
/// not an http URL with a host (https, or not a URL) is not.
pub fn is_insecure(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    url.scheme() == "http" && !url.host_str().is_some_and(is_loopback)
}

/// `localhost`, or an address in `127.0.0.0/8` or `::1` (IPv6 in brackets, as
/// URLs write it).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One URL the daemon sends secrets to, and its section's opt-out.
struct Target<'a> {
    table: &'static str,
    field: &'static str,
    url: &'a str,
    allowed: bool,
    /// What would travel in clear.
    carries: &'static str,
}

fn targets<'a>(masv: &'a MasvConfig, vault: &'a VaultConfig) -> [Target<'a>; 2] {
    [
        Target {
            table: "masv",
            field: "base_url",
            url: &masv.base_url,
            allowed: masv.allow_insecure_http,
            carries: "the MASV password and every new API key",
        },
        Target {
            table: "vault",
            field: "address",
            url: &vault.address,
            allowed: vault.allow_insecure_http,
            carries: "the Vault token and every key's secret",
        },
    ]
}

/// Refuses `masv.base_url` or `vault.address` if it is plain http off
/// loopback and its section has not opted out; `file` is named in the error.
pub fn check(file: &Path, masv: &MasvConfig, vault: &VaultConfig) -> Result<(), ConfigError> {
    for t in targets(masv, vault) {
        if !t.allowed && is_insecure(t.url) {
            return Err(ConfigError::Invalid {
                file: file.to_path_buf(),
                field: format!("{}.{}", t.table, t.field),
                problem: format!(
                    "{:?} is plain http to a host that is not loopback: {} would cross the \
                     network unencrypted; use https:// (only on a network you fully trust: \
                     {}.allow_insecure_http = true)",
                    t.url, t.carries, t.table
                ),
            });
        }
    }
    Ok(())
}

/// Logs a warning for each section whose opt-out lets plain http through.
pub fn warn_opt_outs(config: &Config) {
    for t in targets(&config.masv, &config.vault) {
        if t.allowed && is_insecure(t.url) {
            warn!(
                url = t.url,
                "{}.allow_insecure_http = true: {} go over plain http, readable on the network",
                t.table,
                t.carries
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_https_are_secure_anything_else_over_http_is_not() {
        for ok in [
            "https://api.massive.app/v1",
            "https://10.0.0.5:8200",
            "http://127.0.0.1:8200",
            "http://127.9.8.7/v1",
            "http://localhost:8200",
            "http://LOCALHOST:8200",
            "http://[::1]:8200",
        ] {
            assert!(!is_insecure(ok), "{ok}");
        }
        for bad in [
            "http://vault.internal:8200",
            "http://10.0.0.5:8200",
            "http://0.0.0.0:8200",
            "http://[::ffff:127.0.0.1]:8200",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
        ] {
            assert!(is_insecure(bad), "{bad}");
        }
    }
}
