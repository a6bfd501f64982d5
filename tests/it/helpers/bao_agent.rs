//! OpenBao's own agent (`bao agent`) as a real Vault client: it logs in with a
//! token file and renders lineages' keys to files, re-reading them every second
//! (`static_secret_render_interval`), the way many apps get their secrets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::bao::bao_binary;
use super::write_private;

/// A running `bao agent`; killed when dropped.
pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    /// Starts an agent on the Vault at `address`, logged in with `token`, rendering
    /// `.Data.data.api_key` of each KV v2 `(path, file)` into its file. Its
    /// config, token file and log live in `dir`.
    pub fn start(dir: &Path, address: &str, token: &str, templates: &[(String, PathBuf)]) -> Agent {
        let token_file = dir.join("agent-token");
        write_private(&token_file, token);
        let mut config = format!(
            "vault {{\n  address = {address:?}\n}}\n\
             auto_auth {{\n  method \"token_file\" {{\n    config {{\n      token_file_path = {:?}\n    }}\n  }}\n}}\n\
             template_config {{\n  static_secret_render_interval = \"1s\"\n}}\n",
            token_file.display().to_string()
        );
        for (path, file) in templates {
            let contents =
                format!("{{{{ with secret {path:?} }}}}{{{{ .Data.data.api_key }}}}{{{{ end }}}}");
            config.push_str(&format!(
                "template {{\n  contents = {contents:?}\n  destination = {:?}\n}}\n",
                file.display().to_string()
            ));
        }
        let config_file = dir.join("agent.hcl");
        write_private(&config_file, &config);
        let log = dir.join("agent.log");
        let child = Command::new(bao_binary())
            .arg("agent")
            .arg(format!("-config={}", config_file.display()))
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("agent.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bao agent: {e}"));
        Agent { child, log }
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        let err = self.log.with_file_name("agent.err");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}{}", read(&self.log), read(&err))
    }

    /// Waits until every file holds something, or fails with the agent's log.
    pub async fn wait_rendered(&mut self, files: &[PathBuf], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let rendered = files
                .iter()
                .all(|f| std::fs::read_to_string(f).is_ok_and(|text| !text.trim().is_empty()));
            if rendered {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("bao agent exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "bao agent rendered nothing within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
