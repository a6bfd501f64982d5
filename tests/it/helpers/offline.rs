//! A complete config whose MASV and Vault are loopback ports where nothing
//! listens, with its secret files: for the refusals that come before any
//! network call (no simulator, no container).

use std::path::PathBuf;
use std::process::Output;

use super::{bin, write_private};

pub struct Offline {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
}

impl Offline {
    pub fn new() -> Offline {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        write_private(&path("masv-password"), "pw\n");
        write_private(&path("vault-token"), "token\n");
        let (config, db) = (path("config.toml"), path("state.db"));
        write_private(
            &config,
            &format!(
                r#"[masv]
base_url = "http://127.0.0.1:9/v1"
email = "ops@example.com"
password_file = "{pw}"

[vault]
address = "http://127.0.0.1:9"
token_file = "{token}"

[database]
path = "{db}"

[[team]]
id = "01FB4S68W7RAW4M89801H1C4CR"
keys = ["ci-*"]

[log]
format = "text"
"#,
                pw = path("masv-password").display(),
                token = path("vault-token").display(),
                db = db.display(),
            ),
        );
        Offline { dir, config, db }
    }

    /// Rewrites the config through `edit` (its mode stays).
    pub fn edit(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, edit(text)).unwrap();
    }

    /// `masv-key-rotator --config <config> <args>`.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--config".to_string(), self.config.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        bin::run(all).await
    }
}
