//! Where a consumer gets its key: the lineage's Vault path read over HTTP as any
//! app would (KV v2, a read-only token), or a file an agent renders from it.

use std::path::PathBuf;

use serde_json::Value;

use crate::helpers::world::{World, TEAM};

/// One read of a key.
pub enum Read {
    /// A key to use, and what the read knew of it.
    Key(Seen),
    /// Nothing there (yet).
    Missing,
    /// The read failed (Vault answered something else, or the file was unreadable).
    Failed(String),
}

/// A key as read, with what its source told of it (a file tells only the key).
#[derive(Clone, Debug)]
pub struct Seen {
    pub api_key: String,
    pub key_id: Option<String>,
    pub version: Option<u64>,
    pub written: Option<String>,
}

impl Seen {
    /// "key <id> (Vault version <n>, written <time>)", as much as is known.
    pub fn describe(&self) -> String {
        let id = self.key_id.as_deref().unwrap_or("(id not read)");
        match (self.version, &self.written) {
            (Some(v), Some(w)) => format!("key {id} (Vault version {v}, written {w})"),
            (Some(v), None) => format!("key {id} (Vault version {v})"),
            _ => format!("key {id}"),
        }
    }
}

/// The Vault path of one team's lineages, read over HTTP with a token.
#[derive(Clone)]
pub struct VaultReader {
    http: reqwest::Client,
    address: String,
    token: String,
    mount: String,
    prefix: String,
}

impl VaultReader {
    /// Reads `world`'s lineages with `token`.
    pub fn new(world: &World, token: String) -> VaultReader {
        VaultReader {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
            address: world.vault.address.trim_end_matches('/').to_string(),
            token,
            mount: world.vault.mount.clone(),
            prefix: world.vault.prefix.clone(),
        }
    }

    /// `<mount>/data/<prefix>/<team>/<name>`: the path the daemon writes and apps read.
    pub fn lineage_path(&self, name: &str) -> String {
        format!("{}/data/{}/{TEAM}/{name}", self.mount, self.prefix)
    }

    /// The latest version of the lineage's secret.
    pub async fn read(&self, name: &str) -> Read {
        let url = format!("{}/v1/{}", self.address, self.lineage_path(name));
        let answer = match self
            .http
            .get(&url)
            .header("X-Vault-Token", &self.token)
            .send()
            .await
        {
            Ok(a) => a,
            Err(e) => return Read::Failed(format!("Vault read: {e}")),
        };
        let status = answer.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Read::Missing;
        }
        if !status.is_success() {
            return Read::Failed(format!("Vault read: {status}"));
        }
        let body: Value = match answer.json().await {
            Ok(b) => b,
            Err(e) => return Read::Failed(format!("Vault read body: {e}")),
        };
        let field = |v: &Value| v.as_str().map(str::to_string);
        let Some(api_key) = field(&body["data"]["data"]["api_key"]) else {
            return Read::Failed("Vault read: no api_key field".into());
        };
        Read::Key(Seen {
            api_key,
            key_id: field(&body["data"]["data"]["key_id"]),
            version: body["data"]["metadata"]["version"].as_u64(),
            written: field(&body["data"]["metadata"]["created_time"]),
        })
    }
}

/// What one consumer reads.
#[derive(Clone, Debug)]
pub enum Source {
    /// The lineage's Vault path.
    Vault,
    /// A file holding the key alone (rendered by an agent).
    File(PathBuf),
}

impl Source {
    pub async fn read(&self, vault: &VaultReader, lineage: &str) -> Read {
        match self {
            Source::Vault => vault.read(lineage).await,
            Source::File(path) => match tokio::fs::read_to_string(path).await {
                Ok(text) if text.trim().is_empty() => Read::Missing,
                Ok(text) => Read::Key(Seen {
                    api_key: text.trim().to_string(),
                    key_id: None,
                    version: None,
                    written: None,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Read::Missing,
                Err(e) => Read::Failed(format!("{}: {e}", path.display())),
            },
        }
    }
}
