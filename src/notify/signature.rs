//! The `X-Rotator-Signature-256` header: `sha256=` and the lowercase hex
//! HMAC-SHA256 of the exact bytes POSTed, keyed with `[notify]
//! webhook_secret_file`, so a receiver can tell the daemon's events from
//! anyone else's POSTs to its URL (GitHub's webhook scheme, which receivers
//! already know how to check).
//!
//! The key is held as a [`SecretString`] and remembered in [`crate::redact`],
//! so no error, log line or body that somehow quoted it goes out unscrubbed.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "X-Rotator-Signature-256";

/// Signs bodies with the webhook secret.
#[derive(Clone)]
pub struct Signer {
    secret: SecretString,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
}

impl Signer {
    pub fn new(secret: SecretString) -> Self {
        crate::redact::remember("notify.webhook_secret", &secret);
        Signer { secret }
    }

    /// The header value for `body`: `sha256=<hex>`.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn a_known_answer() {
        let signer = Signer::new(SecretString::from("Jefe".to_string()));
        assert_eq!(
            signer.sign(b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_secret_is_scrubbed_and_never_shown() {
        let signer = Signer::new(SecretString::from("whsec-4f1c2a-scrub-me".to_string()));
        assert_eq!(
            crate::redact::scrub("echo whsec-4f1c2a-scrub-me"),
            "echo [redacted]"
        );
        assert!(!format!("{signer:?}").contains("whsec"));
    }
}
