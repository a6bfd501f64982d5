//! Configs the binary refuses before doing anything, with exit 2 and a message
//! naming the file: plain http to a MASV or Vault that is not on loopback
//! (unless opted out, which is warned about).

use std::process::Output;

use crate::helpers::offline::Offline;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_with_exit_2_naming_the_field() {
    for (from, to, field) in [
        (
            "http://127.0.0.1:9/v1",
            "http://masv.studio.example/v1",
            "masv.base_url",
        ),
        (
            "http://127.0.0.1:9\"",
            "http://10.1.2.3:8200\"",
            "vault.address",
        ),
    ] {
        let o = Offline::new();
        o.edit(|t| t.replace(from, to));
        let out = o.run(&["status"]).await;
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{e}");
        let table = field.split('.').next().unwrap();
        assert!(
            e.contains(&format!("{}: {field}: ", o.config.display()))
                && e.contains("is plain http to a host that is not loopback")
                && e.contains(&format!("{table}.allow_insecure_http = true")),
            "{e}"
        );
    }
}

#[tokio::test]
async fn the_insecure_http_opt_out_is_accepted_with_a_warning() {
    let o = Offline::new();
    o.edit(|t| {
        t.replace("http://127.0.0.1:9/v1", "http://masv.studio.example/v1")
            .replace("[masv]", "[masv]\nallow_insecure_http = true")
    });
    let out = o.run(&["status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The warning comes once logging is up, before the secrets are read: with the
    // password file gone, `once` stops there (exit 2) without any network call.
    std::fs::remove_file(o.dir.path().join("masv-password")).unwrap();
    let out = o.run(&["once"]).await;
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("WARN") && e.contains("masv.allow_insecure_http = true"),
        "{e}"
    );
}
