//! Process exit codes (docs/design.md, section 2). Scripts and systemd units branch on these, so
//! they are part of the product's contract and live in one place.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done (nothing due is success too).
    Success,
    /// At least one action failed; the others still ran.
    ActionFailed,
    /// Bad usage or configuration; nothing was changed.
    Usage,
    /// MASV or Vault could not be reached.
    Unreachable,
    /// Another instance holds the state database's lock: a code of its own so
    /// scripts can tell "already running" from a failure.
    Locked,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::ActionFailed => 1,
            Exit::Usage => 2,
            Exit::Unreachable => 3,
            Exit::Locked => 4,
        }
    }

    /// The more serious of two outcomes (unreachable > usage > failed > success).
    pub fn worst(self, other: Exit) -> Exit {
        fn rank(e: Exit) -> u8 {
            match e {
                Exit::Success => 0,
                Exit::ActionFailed => 1,
                Exit::Usage => 2,
                Exit::Unreachable => 3,
                Exit::Locked => 4,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_spec() {
        assert_eq!(
            [
                Exit::Success,
                Exit::ActionFailed,
                Exit::Usage,
                Exit::Unreachable
            ]
            .map(Exit::code),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn worst_keeps_the_more_serious() {
        assert_eq!(Exit::Success.worst(Exit::ActionFailed), Exit::ActionFailed);
        assert_eq!(
            Exit::Unreachable.worst(Exit::ActionFailed),
            Exit::Unreachable
        );
        assert_eq!(Exit::Usage.worst(Exit::Success), Exit::Usage);
    }
}
