//! One error and its causes as one line of text.
//!
//! Library errors (reqwest, rustify, vaultrs) often say only "error sending
//! request" at the top and keep the useful part (refused, reset, a bad
//! certificate) in their sources; the MASV and Vault adapters put the whole
//! chain into their own errors' reasons.

use std::error::Error;

/// `error: its source: that one's source: …`, outermost first.
pub fn describe(error: &dyn Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Link {
        text: &'static str,
        #[source]
        cause: Option<Box<Link>>,
    }

    fn link(text: &'static str, cause: Option<Link>) -> Link {
        Link {
            text,
            cause: cause.map(Box::new),
        }
    }

    #[test]
    fn an_error_without_a_source_is_its_own_text() {
        assert_eq!(describe(&link("refused", None)), "refused");
    }

    #[test]
    fn the_whole_chain_outermost_first() {
        let chain = link(
            "error sending request",
            Some(link("connect", Some(link("connection refused", None)))),
        );
        assert_eq!(
            describe(&chain),
            "error sending request: connect: connection refused"
        );
    }
}
