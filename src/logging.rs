//! Log output: JSON lines for machines or plain text for people, on stderr.
//!
//! Secrets never reach a log line because they are `SecretString`s (whose Debug
//! prints a placeholder) and because every instrumented span uses `skip_all`.
//! The filter comes from `[log] level`, raised to `debug` by `--debug`;
//! `RUST_LOG` is deliberately ignored so a stray environment variable cannot
//! turn on a dependency's wire-level tracing.
//!
//! Log lines quote key names and MASV's answers, which anyone on a team can
//! shape. In JSON, serde escapes every control character. In text, the fields
//! and the message of every event and span are formatted by [`EscapedFields`],
//! which [`escaped`]s them: a newline in a name cannot start a forged log line,
//! and an escape sequence cannot reach a terminal. This works on the text of
//! the fields, not on the finished line (a writer wrapper could only escape
//! whole lines, and would have to tell the formatter's own colour codes from a
//! name's), and tracing-subscriber's `Full` format writes nothing else that
//! comes from outside: time, level and span names are its own or static.
//! Colour is used only when stderr is a terminal and `NO_COLOR` is not set, so
//! journald and log files never get colour codes.

use std::io::{IsTerminal, Write};

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::escape::escaped;

/// The filter for a configured level, with `--debug` taking it to `debug`.
/// Dependencies stay at `warn` unless the level names them explicitly, so HTTP
/// client internals (which see headers) never log at debug. vaultrs and rustify
/// are silenced: they log every non-2xx answer (including the expected 404 of a
/// lineage not yet in Vault) at error level, and the daemon reports real failures
/// itself, with context.
pub fn filter(level: &str, debug: bool) -> EnvFilter {
    let ours = if debug { "debug" } else { level };
    let directives = if ours.contains('=') {
        ours.to_string()
    } else {
        format!("warn,vaultrs=off,rustify=off,masv_key_rotator={ours}")
    };
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("warn,masv_key_rotator=info"))
}

/// Formats fields as tracing-subscriber's default text format does, then
/// [`escaped`]s the result. The default formatter quotes `&str` fields with
/// `Debug` (escaped), but writes the message and `%`-recorded fields raw, apart
/// from ESC and a few other controls in the message; a newline or CR passes.
/// It runs without colour, so every control character left is the data's own.
#[derive(Debug, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut raw = String::new();
        DefaultFields::new().format_fields(Writer::new(&mut raw), fields)?;
        write!(writer, "{}", escaped(raw))
    }
}

/// Installs the global subscriber writing to stderr. Calling it twice is harmless.
pub fn init(format: LogFormat, level: &str, debug: bool) {
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = subscriber(format, level, debug, std::io::stderr, colour).try_init();
}

/// Installs the global subscriber with a chosen writer (tests capture output
/// this way), without colour.
pub fn init_with_writer<W>(format: LogFormat, level: &str, debug: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let _ = subscriber(format, level, debug, writer, false).try_init();
}

/// The subscriber [`init`] installs, writing to `writer`.
fn subscriber<W>(
    format: LogFormat,
    level: &str,
    debug: bool,
    writer: W,
    colour: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level, debug))
        .with_writer(writer)
        .with_ansi(colour)
        .with_target(false);
    match format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.fmt_fields(EscapedFields).finish()),
    }
}

/// A cloneable in-memory writer, for capturing logs in tests.
#[derive(Clone, Default)]
pub struct CaptureWriter {
    buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl CaptureWriter {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().expect("capture mutex poisoned")).into_owned()
    }
}

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer
            .lock()
            .expect("capture mutex poisoned")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CaptureWriter {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_flag_raises_only_our_crate() {
        let f = filter("info", true).to_string();
        assert!(f.contains("masv_key_rotator=debug"), "{f}");
        assert!(f.split(',').any(|d| d == "warn"), "{f}");
    }

    /// Logs, with `format`, an event in a span whose fields hold a hostile name
    /// every way the code records one: `%` (Display), `?` (Debug), a plain
    /// `&str`, and inside the message.
    fn hostile_event(format: LogFormat) -> String {
        let capture = CaptureWriter::default();
        let name = "ci-x\n2030-01-01T00:00:00Z  INFO forged=1\r\x1b[2J\x1b]0;t\x07\u{9b}\u{202e}";
        let sub = subscriber(format, "info", false, capture.clone(), false);
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("lineage", key_name = %name, plain = name);
            let _in = span.enter();
            tracing::warn!(error = %name, debug = ?name, "action on {name} failed");
        });
        capture.contents()
    }

    #[test]
    fn text_log_escapes_every_field_and_the_message() {
        let out = hostile_event(LogFormat::Text);
        assert_eq!(out.matches('\n').count(), 1, "one event, one line: {out:?}");
        assert!(out.ends_with('\n'), "{out:?}");
        crate::escape::assert_shown(&out);
        assert!(out.contains("WARN"), "{out:?}");
        assert!(out.contains("key_name=ci-x\\n2030"), "{out:?}");
        assert!(out.contains("action on ci-x\\n2030"), "{out:?}");
        assert!(
            out.contains("\\x1b[2J") && out.contains("\\u{202e}"),
            "{out:?}"
        );
    }

    #[test]
    fn json_log_keeps_the_name_exact_and_escaped() {
        let out = hostile_event(LogFormat::Json);
        assert_eq!(out.matches('\n').count(), 1, "one event, one line: {out:?}");
        // serde_json escapes what JSON requires (below U+0020); DEL, C1 and
        // bidi characters stay raw inside the strings, as the data is exact.
        assert!(
            !out.trim_end_matches('\n').chars().any(|c| c < ' '),
            "{out:?}"
        );
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        let name = "ci-x\n2030-01-01T00:00:00Z  INFO forged=1\r\x1b[2J\x1b]0;t\x07\u{9b}\u{202e}";
        assert_eq!(v["error"], name);
        assert_eq!(v["span"]["key_name"], name);
        assert_eq!(v["message"], format!("action on {name} failed"));
    }

    #[test]
    fn explicit_directives_are_kept() {
        assert_eq!(
            filter("masv_key_rotator=trace", false).to_string(),
            "masv_key_rotator=trace"
        );
    }
}
