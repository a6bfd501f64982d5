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

use std::collections::{BTreeMap, HashSet, VecDeque};
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
    named: BTreeMap<&'static str, VecDeque<Needle>>,
    keys: VecDeque<Needle>,
    /// The first [`MIN_LEN`] bytes of every needle, rebuilt on each change: a
    /// text none of whose windows is among them holds no secret, so most
    /// texts are cleared in one pass over their bytes, however many secrets
    /// are remembered.
    prefixes: HashSet<[u8; MIN_LEN]>,
}

/// A remembered secret as it is looked for: plain, and JSON-escaped when
/// that differs (worked out once, not on every scrub).
struct Needle {
    plain: Zeroizing<String>,
    escaped: Option<Zeroizing<String>>,
}

impl Needle {
    fn new(value: &str) -> Self {
        let escaped = Zeroizing::new(serde_json::to_string(value).unwrap_or_default());
        let escaped = escaped.trim_matches('"');
        Needle {
            plain: Zeroizing::new(value.to_string()),
            escaped: (escaped != value).then(|| Zeroizing::new(escaped.to_string())),
        }
    }

    fn forms(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.plain.as_str()).chain(self.escaped.as_deref().map(String::as_str))
    }
}

fn prefix(text: &str) -> Option<[u8; MIN_LEN]> {
    text.as_bytes().get(..MIN_LEN)?.try_into().ok()
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
        recent.retain(|v| v.plain.as_str() != value);
        if recent.len() == RECENT_PER_SLOT {
            recent.pop_front();
        }
        recent.push_back(Needle::new(value));
        self.index();
    }

    fn remember_key(&mut self, value: &str) {
        if value.len() < MIN_LEN || self.keys.iter().any(|k| k.plain.as_str() == value) {
            return;
        }
        if self.keys.len() == RECENT_KEYS {
            self.keys.pop_front();
        }
        self.keys.push_back(Needle::new(value));
        self.index();
    }

    fn needles(&self) -> impl Iterator<Item = &Needle> {
        self.named.values().flatten().chain(self.keys.iter())
    }

    fn index(&mut self) {
        let prefixes = self
            .needles()
            .flat_map(Needle::forms)
            .filter_map(prefix)
            .collect();
        self.prefixes = prefixes;
    }

    fn scrub(&self, text: &str) -> String {
        let suspect = text
            .as_bytes()
            .windows(MIN_LEN)
            .any(|w| <[u8; MIN_LEN]>::try_from(w).is_ok_and(|w| self.prefixes.contains(&w)));
        if !suspect {
            return text.to_string();
        }
        let mut out = text.to_string();
        for needle in self.needles() {
            for form in needle.forms() {
                out = replace_all(out, form);
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
    fn the_prefilter_finds_a_secret_anywhere_and_lets_other_text_through() {
        let mut r = Registry::default();
        r.remember_key("KEYxyz-0001");
        r.remember("test.quoted", "\"q\"-password");
        for text in [
            "KEYxyz-0001",
            "aKEYxyz-0001",
            "tail: KEYxyz-0001",
            r#"{"pw":"\"q\"-password"}"#,
            "\"q\"-password",
        ] {
            let out = r.scrub(text);
            assert!(out.contains(REDACTED), "{text} -> {out}");
            assert!(!out.contains("0001") && !out.contains("-password"), "{out}");
        }
        for text in ["KEYxyz-0002 shares a prefix", "nothing here", "KEY", ""] {
            assert_eq!(r.scrub(text), text);
        }
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
