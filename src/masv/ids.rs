//! The shape of a MASV id. Every id in the vendor's pages is a 26-character
//! ULID (Crockford base32); an id of any other shape is malformed and never
//! becomes part of a URL or a Vault path.

/// Whether `id` is a ULID as MASV writes them (upper case Crockford base32,
/// within the 128-bit range).
pub fn is_masv_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
        && id.as_bytes()[0] <= b'7'
        && ulid::Ulid::from_string(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_pass_and_everything_else_is_refused() {
        assert!(is_masv_id("01F3NH1NRBQWRN7HQDJ2SYGBDH"));
        assert!(is_masv_id(&ulid::Ulid::new().to_string()));
        for bad in [
            "",
            "01F3NH1NRBQWRN7HQDJ2SYGBD",
            "01F3NH1NRBQWRN7HQDJ2SYGBDHX",
            "01f3nh1nrbqwrn7hqdj2sygbdh",
            "01F3NH1NRBQWRN7HQDJ2SYGBDI",
            "../api_keys/01F3NH1NRBQWRN",
            "01F3NH1NRBQWRN7HQDJ2SY%2F.",
            "81F3NH1NRBQWRN7HQDJ2SYGBDH",
            "01F3NH1NRBQWRN7HQDJ2SYGBD\n",
        ] {
            assert!(!is_masv_id(bad), "{bad:?}");
        }
    }
}
