//! Process exit codes (docs/design.md, section 2). Scripts and systemd units branch on these, so
//! they are part of the product's contract and live in one place, with the error
//! a command returns when it cannot do what it was asked ([`CommandError`]).

use std::fmt::Display;
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

/// How a command ended: `Ok` with its exit code once it has said what it did
/// (a sweep with failed actions is `Ok(Exit::ActionFailed)`), or the error that
/// stopped it.
pub type CommandResult = Result<Exit, CommandError>;

/// Why a command stopped: the exit code it deserves and a message for the
/// operator. Commands only return it; `commands::run` prints it, once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    exit: Exit,
    message: String,
}

impl CommandError {
    pub fn new(exit: Exit, message: impl Display) -> Self {
        Self {
            exit,
            message: message.to_string(),
        }
    }

    /// Bad usage or configuration (exit 2).
    pub fn usage(message: impl Display) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// Something the command tried failed (exit 1).
    pub fn failed(message: impl Display) -> Self {
        Self::new(Exit::ActionFailed, message)
    }

    pub fn exit(&self) -> Exit {
        self.exit
    }

    pub fn message(&self) -> &str {
        &self.message
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
