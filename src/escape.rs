//! Making attacker-controlled text safe to show to a person.
//!
//! Key names, descriptions and error details come from MASV, where any team
//! member can give a key any name. Printed raw, a name could carry terminal
//! escape sequences (retitle the window, recolour or erase the screen), a
//! newline that forges a line of the `once` summary or of a text log, or bidi
//! overrides that make it read differently from what it is. So every human
//! output (tables, summaries, error messages, text logs, report cells) passes
//! such text through [`escaped`], which replaces each of these characters with
//! a visible escape:
//!
//! - `\n`, `\r` and `\t` as those two characters;
//! - every other C0 control (ESC is `\x1b`) and DEL as `\xHH`, the notation
//!   tracing-subscriber's own sanitiser uses for log messages;
//! - C1 controls (U+0080–U+009F), the bidi marks and overrides (U+061C,
//!   U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the Unicode line and
//!   paragraph separators (U+2028, U+2029) as `\u{hhhh}`.
//!
//! Nothing else changes, not even `\`: the result is for reading, not for
//! decoding. Whoever needs the exact bytes has the JSON outputs, which serde
//! escapes already and which are left as they are.

use std::fmt::{self, Display, Write};

/// Whether `c` must not reach a terminal or a line-oriented output as it is
/// (also what makes a key name unmanageable: `engine::admission`).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Writes `s` to `out` with every character of the module's list escaped.
fn write_escaped(out: &mut impl Write, s: &str) -> fmt::Result {
    let mut rest = s;
    while let Some((at, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
        out.write_str(&rest[..at])?;
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32)?,
            c => write!(out, "\\u{{{:x}}}", c as u32)?,
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// `value`'s text with every control, bidi and line-separator character made
/// visible (see the module docs). Width, fill and alignment apply to the
/// escaped text, so `format!("{:<40}", escaped(name))` lines up.
pub fn escaped<T: Display>(value: T) -> Escaped<T> {
    Escaped(value)
}

/// What [`escaped`] returns: formats its value, escaped.
pub struct Escaped<T>(T);

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        if f.width().is_none() && f.precision().is_none() {
            return write_escaped(f, &text);
        }
        let mut out = String::with_capacity(text.len());
        write_escaped(&mut out, &text)?;
        f.pad(&out)
    }
}

/// Panics unless `out` is safe to show: no character [`escaped`] replaces but
/// the newlines that end its lines. For the tests of every human output.
#[cfg(test)]
pub(crate) fn assert_shown(out: &str) {
    if let Some(c) = out.chars().find(|&c| c != '\n' && needs_escape(c)) {
        panic!("{c:?} reached the output: {out:?}");
    }
}

/// Key names as an attacker on the team would choose them, for the tests of
/// every human output: terminal escapes, a newline forging a summary line,
/// spreadsheet formulas, table and CSV separators, bidi and C1 controls.
#[cfg(test)]
pub(crate) const HOSTILE: &[&str] = &[
    "ci-\x1b]0;pwned\x07\x1b[2J",
    "ci-x\nresult: 99 action(s) ok, 0 failed",
    "=HYPERLINK(\"http://evil.example\",\"ci\")",
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\tci-tab",
    "\rci-cr",
    "ci|x | y",
    "ci\\|z",
    "ci,\"quoted\"",
    "ci-\u{202e}gpj.exe",
    "ci-\u{9b}31m",
    "ci-crlf\r\n",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> String {
        escaped(s).to_string()
    }

    #[test]
    fn plain_text_is_unchanged() {
        for s in ["", "ci-build", "rénder nøde ✓", "a\\x1b", "=SUM(A1)", "a|b"] {
            assert_eq!(e(s), s);
        }
    }

    #[test]
    fn c0_controls_and_del_are_shown_as_escapes() {
        assert_eq!(e("a\nb"), "a\\nb");
        assert_eq!(e("a\r\nb"), "a\\r\\nb");
        assert_eq!(e("\tx"), "\\tx");
        assert_eq!(e("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(e("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
        assert_eq!(e("\0\x08\x0c\x7f"), "\\x00\\x08\\x0c\\x7f");
        for b in (0u8..0x20).chain([0x7f]) {
            let out = e(&format!("x{}y", b as char));
            assert!(
                out.starts_with("x\\") && out.ends_with('y'),
                "{b:#x}: {out}"
            );
            assert!(out.chars().all(|c| !c.is_control()), "{b:#x}: {out:?}");
        }
    }

    #[test]
    fn c1_controls_bidi_and_line_separators_are_shown_as_escapes() {
        assert_eq!(e("a\u{9b}31m"), "a\\u{9b}31m");
        assert_eq!(e("\u{85}"), "\\u{85}");
        assert_eq!(e("ci-\u{202e}gpj.exe"), "ci-\\u{202e}gpj.exe");
        for c in ('\u{80}'..='\u{9f}')
            .chain('\u{202a}'..='\u{202e}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(['\u{61c}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{2029}'])
        {
            assert_eq!(e(&c.to_string()), format!("\\u{{{:x}}}", c as u32));
        }
    }

    proptest::proptest! {
        #[test]
        fn nothing_to_escape_survives(s in "\\PC*|[\\x00-\\x7f\\u{80}-\\u{9f}\\u{2028}-\\u{206f}]*") {
            let out = e(&s);
            assert_shown(&out);
            proptest::prop_assert!(!out.contains('\n'));
            if !s.chars().any(needs_escape) {
                proptest::prop_assert_eq!(out, s);
            }
        }
    }

    #[test]
    fn padding_counts_the_escaped_text() {
        assert_eq!(format!("[{:<6}]", escaped("a\nb")), "[a\\nb  ]");
        assert_eq!(format!("[{:>4}]", escaped("ab")), "[  ab]");
        assert_eq!(
            format!("[{}]", escaped(format_args!("{}-{}", 1, "\x1b"))),
            "[1-\\x1b]"
        );
    }
}
