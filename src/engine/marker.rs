//! The marker a new key's description carries.
//!
//! The create call is the one MASV call whose outcome can be unknown (the key may
//! exist although the response was lost). Its description names the rotation that
//! created it, so a later sweep can find such a key in the team's list and clean
//! it up: invariant 3 (docs/design.md), no orphans.

/// The prefix every daemon-created key's description starts with.
pub const PREFIX: &str = "managed by masv-key-rotator; rotation ";

/// The description for a key created by `rotation_id`.
pub fn description(rotation_id: &str) -> String {
    format!("{PREFIX}{rotation_id}")
}

/// The rotation id in a description, if the daemon wrote it.
pub fn rotation_id(description: &str) -> Option<&str> {
    let rest = description.strip_prefix(PREFIX)?;
    let id = rest.split_whitespace().next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = description("01HZY0000000000000000000AB");
        assert_eq!(rotation_id(&d), Some("01HZY0000000000000000000AB"));
    }

    #[test]
    fn foreign_descriptions_have_no_marker() {
        assert_eq!(rotation_id("This is a sample key"), None);
        assert_eq!(rotation_id(PREFIX), None);
        assert_eq!(rotation_id(""), None);
    }
}
