//! Which listed keys the engine can manage at all.
//!
//! Key names and descriptions are chosen by whoever creates a key, and any
//! team member may. A managed name becomes a Vault path segment and every
//! managed key is recorded in the state database, so a name that cannot be a
//! path segment, or a name or description of a size nobody writes by hand, is
//! refused here: such a key is reported (a note and a metric) and otherwise
//! left alone. It never fails the sweep, and its text is never stored.

use serde::Serialize;

use super::key::Key;
use crate::escape::needs_escape;

/// The longest key name the daemon manages (a Vault path segment beyond it is unwieldy).
pub const NAME_MAX_BYTES: usize = 255;
/// The longest key description the daemon manages (its own markers are far shorter).
pub const DESCRIPTION_MAX_BYTES: usize = 4096;

/// A listed key whose pattern matched but which the engine cannot manage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmanageable {
    pub team_id: String,
    pub key_id: String,
    pub reason: UnmanageableReason,
}

/// Why a key cannot be managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmanageableReason {
    /// Empty, `.` or `..`, or holds `/`, a control character, a bidi
    /// control or a line separator (Vault refuses those, and they disguise text).
    NameNotAPathSegment,
    NameTooLong,
    DescriptionTooLong,
}

impl UnmanageableReason {
    pub fn describe(self) -> String {
        match self {
            Self::NameNotAPathSegment => {
                "its name cannot be a Vault path segment (empty, '.', '..', '/', a control, bidi or line-separator character)"
                    .into()
            }
            Self::NameTooLong => format!("its name is longer than {NAME_MAX_BYTES} bytes"),
            Self::DescriptionTooLong => {
                format!("its description is longer than {DESCRIPTION_MAX_BYTES} bytes")
            }
        }
    }
}

/// Whether a lineage name can be a Vault path segment of a manageable size.
pub fn name_problem(name: &str) -> Option<UnmanageableReason> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().any(needs_escape)
    {
        Some(UnmanageableReason::NameNotAPathSegment)
    } else if name.len() > NAME_MAX_BYTES {
        Some(UnmanageableReason::NameTooLong)
    } else {
        None
    }
}

/// Why the engine cannot manage `key`, if it cannot.
pub fn problem(key: &Key) -> Option<UnmanageableReason> {
    name_problem(&key.name).or_else(|| {
        (key.description.len() > DESCRIPTION_MAX_BYTES)
            .then_some(UnmanageableReason::DescriptionTooLong)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::key::KeyState;

    fn key(name: &str, description: &str) -> Key {
        Key {
            id: "01F3NH1NRBQWRN7HQDJ2SYGBDH".into(),
            name: name.into(),
            description: description.into(),
            state: KeyState::Active,
            created_at: None,
            expiry: None,
            last_request_at: None,
        }
    }

    #[test]
    fn ordinary_keys_are_manageable() {
        assert_eq!(problem(&key("ci-build", "made by hand")), None);
        assert_eq!(problem(&key("render node ü =1", "")), None);
        assert_eq!(problem(&key(&"n".repeat(NAME_MAX_BYTES), "")), None);
    }

    #[test]
    fn names_that_cannot_be_path_segments_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "ci-\nforged",
            "ci-\u{1b}[31m",
            "x\u{7f}",
        ] {
            assert_eq!(
                problem(&key(name, "")),
                Some(UnmanageableReason::NameNotAPathSegment),
                "{name:?}"
            );
        }
    }

    #[test]
    fn oversized_names_and_descriptions_are_refused() {
        assert_eq!(
            problem(&key(&"n".repeat(NAME_MAX_BYTES + 1), "")),
            Some(UnmanageableReason::NameTooLong)
        );
        assert_eq!(
            problem(&key("ci-build", &"d".repeat(DESCRIPTION_MAX_BYTES + 1))),
            Some(UnmanageableReason::DescriptionTooLong)
        );
    }
}
