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
    /// Like [`Daemon::start`], with its log (stderr) appended to `log`.
    pub fn start_logging(config: &Path, log: &Path) -> Daemon {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
            .env_remove("MASV_KEY_ROTATOR_CONFIG")
            .args(["--config", config.to_str().unwrap(), "run"])
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon { child: Some(child) }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// CPU time (user + system) the process has used so far, from /proc.
    pub fn cpu_time(&self) -> std::time::Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name's closing parenthesis: utime is the 12th, stime the 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on Linux.
        std::time::Duration::from_millis(ticks * 10)
    }

    /// `kill -9`, and waits until it is gone.
    pub async fn kill9(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
    }

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
