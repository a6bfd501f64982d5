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

/// `masv-key-rotator --config <config> run` in the background; killed if dropped
/// before `stop`.
pub struct Daemon {
    child: Option<std::process::Child>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
            .env_remove("MASV_KEY_ROTATOR_CONFIG")
            .args(["--config", config.to_str().unwrap(), "run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Daemon { child: Some(child) }
    }

    /// Asks it to stop (SIGTERM) and waits until it has.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
