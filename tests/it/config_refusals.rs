//! Configs the binary refuses before doing anything, with exit 2 and a message
//! naming the file: one that group or others may write, plain http to a
//! MASV or Vault that is not on loopback (unless opted out, which is warned about),
//! and a webhook secret file that is missing, open to others or empty.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use crate::helpers::offline::Offline;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_config_writable_by_group_or_others_is_refused_with_exit_2() {
    let o = Offline::new();
    let shown = o.config.display().to_string();
    for mode in [0o664, 0o646, 0o620, 0o602] {
        std::fs::set_permissions(&o.config, std::fs::Permissions::from_mode(mode)).unwrap();
        for command in ["status", "run"] {
            let out = o.run(&[command]).await;
            let e = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{mode:o} {command}: {e}");
            assert!(
                e.contains(&format!(
                    "{shown}: the config file is writable by group or others (mode {mode:04o})"
                )),
                "{e}"
            );
            assert!(e.contains(&format!("run: chmod go-w {shown}")), "{e}");
        }
    }
    // Readable by others is fine: the config holds no secrets.
    for mode in [0o600, 0o640, 0o644, 0o444] {
        std::fs::set_permissions(&o.config, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = o.run(&["status"]).await;
        assert_eq!(out.status.code(), Some(0), "{mode:o}: {}", stderr(&out));
    }
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

/// Every command that reads the secrets exits 2 naming `field` and `problem`,
/// before anything is changed.
async fn assert_refused(o: &Offline, field: &str, problem: &str) {
    for command in [
        vec!["once"],
        vec!["run"],
        vec![
            "rotate",
            "--team",
            "01FB4S68W7RAW4M89801H1C4CR",
            "--name",
            "ci-a",
        ],
        vec!["check-config"],
    ] {
        let out = o.run(&command).await;
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {e}");
        let shown = format!("{}: {field}: ", o.config.display());
        assert!(
            e.contains(&shown) && e.contains(problem),
            "{command:?}: {e}"
        );
        assert!(!e.contains("whsec"), "{e}");
        assert!(!o.db.exists(), "nothing was changed");
    }
}

#[tokio::test]
async fn a_webhook_secret_file_is_refused_like_the_other_secret_files() {
    let o = Offline::new();
    let secret = o.dir.path().join("webhook-secret");
    o.edit(|t| {
        format!(
            "{t}\n[notify]\nwebhook_url = \"http://127.0.0.1:9/hook\"\nwebhook_secret_file = \"{}\"\n",
            secret.display()
        )
    });
    let field = "notify.webhook_secret_file";
    let shown = secret.display();
    assert_refused(&o, field, &format!("cannot read {shown}")).await;

    std::fs::write(&secret, "whsec-open-to-all\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open =
        format!("{shown} is accessible by group or others (mode 0644); run: chmod 600 {shown}");
    assert_refused(&o, field, &open).await;

    std::fs::write(&secret, "\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_refused(&o, field, "the secret is empty").await;
}
