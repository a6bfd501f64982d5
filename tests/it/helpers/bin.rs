//! Running the real binary from an async test: the simulator serves from the
//! test's own runtime, so the blocking wait happens on a blocking thread.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `masv-key-rotator <args>` to completion and collects its output.
pub async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
            .env_remove("MASV_KEY_ROTATOR_CONFIG")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `masv-key-rotator --config <config> once`.
pub async fn once(config: &Path) -> Output {
    run(vec![
        "--config".into(),
        config.to_str().unwrap().into(),
        "once".into(),
    ])
    .await
}

/// `masv-key-rotator --config <config> once`, which must exit 0.
pub async fn once_succeeds(config: &Path) {
    let out = once(config).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
