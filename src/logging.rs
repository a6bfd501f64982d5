//! Log output: JSON lines for machines or plain text for people, on stderr.
//!
//! Secrets never reach a log line because they are `SecretString`s (whose Debug
//! prints a placeholder) and because every instrumented span uses `skip_all`.
//! The filter comes from `[log] level`, raised to `debug` by `--debug`;
//! `RUST_LOG` is deliberately ignored so a stray environment variable cannot
//! turn on a dependency's wire-level tracing.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

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

/// Installs the global subscriber writing to stderr. Calling it twice is harmless.
pub fn init(format: LogFormat, level: &str, debug: bool) {
    init_with_writer(format, level, debug, std::io::stderr);
}

/// Installs the global subscriber with a chosen writer (tests capture output this way).
pub fn init_with_writer<W>(format: LogFormat, level: &str, debug: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level, debug))
        .with_writer(writer)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
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

    #[test]
    fn explicit_directives_are_kept() {
        assert_eq!(
            filter("masv_key_rotator=trace", false).to_string(),
            "masv_key_rotator=trace"
        );
    }
}
