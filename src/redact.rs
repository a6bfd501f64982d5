//! Every secret the daemon holds, so that text from outside can be cleaned of
//! them before it becomes an error, a log line, an audit row or a webhook body.
//!
//! Upstreams are untrusted: a MASV or Vault that quotes the request in its
//! error answers (many proxies and frameworks do) would otherwise hand the
//! password, a user token or a new API key back to us inside a message we
//! print and store. Secrets are remembered here while they are in use:
//! long-lived ones (the MASV password, the current user token, the Vault
//! token, the AppRole secret id) under a fixed name, keeping the few most
//! recent values of each (a reload briefly runs two clients side by side,
//! each with its own token); API keys in a small ring of the most recent
//! ones, which covers every rotation in flight. [`scrub`] replaces each of them, and its JSON
//! escaped form, with `[redacted]`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{LazyLock, RwLock};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// How many recent API keys are remembered (far more than can be in flight).
const RECENT_KEYS: usize = 512;

/// How many recent values of one named secret are remembered.
const RECENT_PER_SLOT: usize = 8;

/// Shorter values are not secrets worth matching (and would mangle text).
const MIN_LEN: usize = 4;

#[derive(Default)]
struct Registry {
    named: BTreeMap<&'static str, VecDeque<Zeroizing<String>>>,
    keys: VecDeque<Zeroizing<String>>,
}

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(Default::default);

fn registry_mut() -> std::sync::RwLockWriteGuard<'static, Registry> {
    REGISTRY.write().unwrap_or_else(|p| p.into_inner())
}

/// Remembers a long-lived secret under `slot`, with the slot's few most recent values.
pub fn remember(slot: &'static str, secret: &SecretString) {
    let value = secret.expose_secret();
    if value.len() < MIN_LEN {
        return;
    }
    registry_mut().remember(slot, value);
}

/// Remembers an API key (a new key's value, or one read from Vault).
pub fn remember_key(secret: &SecretString) {
    registry_mut().remember_key(secret.expose_secret());
}

/// `text` with every remembered secret, plain or JSON-escaped, replaced.
pub fn scrub(text: &str) -> String {
    REGISTRY
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .scrub(text)
}

impl Registry {
    fn remember(&mut self, slot: &'static str, value: &str) {
        let recent = self.named.entry(slot).or_default();
        recent.retain(|v| v.as_str() != value);
        if recent.len() == RECENT_PER_SLOT {
            recent.pop_front();
        }
        recent.push_back(Zeroizing::new(value.to_string()));
    }

    fn remember_key(&mut self, value: &str) {
        if value.len() < MIN_LEN || self.keys.iter().any(|k| k.as_str() == value) {
            return;
        }
        if self.keys.len() == RECENT_KEYS {
            self.keys.pop_front();
        }
        self.keys.push_back(Zeroizing::new(value.to_string()));
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.named.values().flatten().chain(self.keys.iter()) {
            out = replace_all(out, secret);
            let escaped = serde_json::to_string(secret.as_str()).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            if escaped != secret.as_str() {
                out = replace_all(out, escaped);
            }
        }
        out
    }
}

fn replace_all(text: String, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) {
        text
    } else {
        text.replace(secret, REDACTED)
    }
}

/// An excerpt of untrusted text for an error message: secrets scrubbed first
/// (so a cut cannot leave half of one), control characters written as
/// escapes, then cut to `max` characters.
pub fn excerpt(text: &str, max: usize) -> String {
    let clean = scrub(text);
    let mut out = String::new();
    for (i, c) in clean.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_secrets_and_keys_are_scrubbed_plain_and_json_escaped() {
        remember(
            "test.password",
            &SecretString::from("pa\"ss\\word-1".to_string()),
        );
        remember_key(&SecretString::from("KEY-abcdef-123".to_string()));
        let text = r#"bad request: {"password":"pa\"ss\\word-1"} and pa"ss\word-1, X-API-KEY: KEY-abcdef-123"#;
        let out = scrub(text);
        assert!(!out.contains("word-1"), "{out}");
        assert!(!out.contains("KEY-abcdef"), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 3, "{out}");
    }

    #[test]
    fn a_slot_keeps_its_recent_values_and_short_values_are_ignored() {
        remember("test.short", &SecretString::from("ab".to_string()));
        assert_eq!(scrub("ab"), "ab");
        // A registry of its own: the global one is shared with parallel tests.
        let mut r = Registry::default();
        for i in 0..=RECENT_PER_SLOT {
            r.remember("test.slot", &format!("token-{i:02}"));
        }
        r.remember("test.slot", &format!("token-{RECENT_PER_SLOT:02}"));
        assert_eq!(r.named["test.slot"].len(), RECENT_PER_SLOT);
        assert_eq!(r.scrub("token-00"), "token-00", "evicted");
        for i in 1..=RECENT_PER_SLOT {
            assert_eq!(r.scrub(&format!("token-{i:02}")), REDACTED);
        }
    }

    #[test]
    fn the_key_ring_is_bounded_and_keeps_the_newest() {
        // A registry of its own: the global one is shared with parallel tests.
        let mut r = Registry::default();
        for i in 0..RECENT_KEYS + 10 {
            r.remember_key(&format!("ring-key-{i:05}"));
        }
        assert_eq!(r.keys.len(), RECENT_KEYS);
        let newest = format!("ring-key-{:05}", RECENT_KEYS + 9);
        assert_eq!(r.scrub(&newest), REDACTED);
        assert_eq!(r.scrub("ring-key-00000"), "ring-key-00000", "evicted");
    }

    #[test]
    fn an_excerpt_is_scrubbed_before_it_is_cut() {
        remember_key(&SecretString::from("0123456789SECRET".to_string()));
        let out = excerpt("xx0123456789SECRET tail", 8);
        assert!(!out.contains("0123"), "{out}");
        assert!(out.starts_with("xx[redac"), "{out}");
        assert!(out.ends_with('…'));
    }

    #[test]
    fn an_excerpt_shows_control_characters_as_escapes() {
        let out = excerpt("a\x1b[31mred\nforged line\r", 100);
        assert_eq!(out, "a\\u{1b}[31mred\\nforged line\\r");
    }
}
