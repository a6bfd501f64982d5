//! The config module's unit tests: defaults, resolution, and that every error
//! names its field.

use std::time::Duration;

use super::secrets::read_secret;
use super::*;

const MINIMAL: &str = r#"
[masv]
email = "ops@example.com"
password_env = "MASV_PASSWORD"

[vault]
address = "http://127.0.0.1:8200"
token_env = "VAULT_TOKEN"

[[team]]
id = "01FB4S68W7RAW4M89801H1C4CR"
keys = ["ci-*"]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

fn field_of(text: &str) -> String {
    parse(text).unwrap_err().field().unwrap_or("").to_string()
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.masv.base_url, "https://api.massive.app/v1");
    assert_eq!(c.masv.timeout, Duration::from_secs(30));
    assert_eq!(c.masv.max_concurrency, 8);
    assert_eq!(c.vault.mount, "secret");
    assert_eq!(c.vault.path_prefix, "masv");
    assert_eq!(c.schedule.cron.as_str(), "0 */5 * * * *");
    assert_eq!(c.teams[0].policy, Policy::default());
    assert_eq!(c.teams[0].policy.max_age, Duration::from_secs(90 * 86400));
    assert_eq!(c.log.format, LogFormat::Json);
    assert!(c.metrics.is_none() && c.notify.is_none());
}

#[test]
fn team_policy_overrides_single_fields() {
    let text = format!("{MINIMAL}\n[team.policy]\nmax_age = \"10d\"\n");
    let c = parse(&text).unwrap();
    let p = c.teams[0].policy;
    assert_eq!(p.max_age, Duration::from_secs(10 * 86400));
    assert_eq!(p.grace_period, Policy::default().grace_period);
}

#[test]
fn unknown_field_is_named() {
    let text = MINIMAL.replace("[vault]", "[vault]\nadress = \"x\"");
    let e = parse(&text).unwrap_err();
    assert!(e.to_string().contains("adress"), "{e}");
    assert!(e.to_string().starts_with("test.toml: vault"), "{e}");
}

#[test]
fn bad_duration_names_the_field() {
    let text = format!("{MINIMAL}\n[policy]\nmax_age = \"ninety days\"\n");
    assert_eq!(field_of(&text), "policy.max_age");
}

#[test]
fn bad_cron_names_the_field() {
    let text = format!("{MINIMAL}\n[schedule]\ncron = \"*/5 * * * *\"\n");
    assert_eq!(field_of(&text), "schedule.cron");
}

#[test]
fn both_password_sources_conflict() {
    let text = MINIMAL.replace(
        "password_env = \"MASV_PASSWORD\"",
        "password_env = \"A\"\npassword_file = \"/x\"",
    );
    assert_eq!(field_of(&text), "masv.password_env");
}

#[test]
fn rotate_before_expiry_must_be_shorter_than_lifetime() {
    let text = format!("{MINIMAL}\n[policy]\nrotate_before_expiry = \"30d\"\n");
    assert_eq!(field_of(&text), "policy.rotate_before_expiry");
}

#[test]
fn bad_glob_and_bad_team_id_are_named() {
    assert_eq!(
        field_of(&MINIMAL.replace("\"ci-*\"", "\"ci-[\"")),
        "team[0].keys[0]"
    );
    assert_eq!(
        field_of(&MINIMAL.replace("01FB4S68W7RAW4M89801H1C4CR", "../etc")),
        "team[0].id"
    );
}

#[test]
fn vault_path_prefix_must_be_relative() {
    let text = MINIMAL.replace("token_env", "path_prefix = \"/abs\"\ntoken_env");
    assert_eq!(field_of(&text), "vault.path_prefix");
}

#[test]
fn cron_interval_is_the_gap_between_runs() {
    let now = chrono::Utc::now();
    let interval = |text: &str| CronSchedule::parse(text).unwrap().interval_after(now);
    assert_eq!(interval("0 */5 * * * *"), Some(Duration::from_secs(300)));
    assert_eq!(interval("*/2 * * * * *"), Some(Duration::from_secs(2)));
    assert!(CronSchedule::parse("nonsense").is_err());
}

#[test]
fn matcher_uses_globs() {
    let c = parse(MINIMAL).unwrap();
    let m = c.teams[0].matcher();
    assert!(m.is_match("ci-build"));
    assert!(!m.is_match("render-node-1"));
}

#[test]
fn plain_http_off_loopback_is_refused_unless_allowed() {
    let remote = MINIMAL.replace("http://127.0.0.1:8200", "http://vault.internal:8200");
    let e = parse(&remote).unwrap_err();
    assert_eq!(e.field(), Some("vault.address"));
    assert!(
        e.to_string().contains("vault.allow_insecure_http = true"),
        "{e}"
    );
    let allowed = remote.replace("[vault]", "[vault]\nallow_insecure_http = true");
    assert!(parse(&allowed).unwrap().vault.allow_insecure_http);

    let masv = MINIMAL.replace("[masv]", "[masv]\nbase_url = \"http://masv.example/v1\"");
    assert_eq!(field_of(&masv), "masv.base_url");
    let allowed = masv.replace("[masv]", "[masv]\nallow_insecure_http = true");
    assert!(parse(&allowed).unwrap().masv.allow_insecure_http);
    for local in ["http://localhost:8200", "http://[::1]:8200"] {
        parse(&MINIMAL.replace("http://127.0.0.1:8200", local)).unwrap();
    }
}

#[test]
fn missing_password_file_names_field_and_path() {
    let text = MINIMAL.replace(
        "password_env = \"MASV_PASSWORD\"",
        "password_file = \"/nonexistent/masv-password\"",
    );
    let c = parse(&text).unwrap();
    let e = Credentials::resolve(&c).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("masv.password_file"), "{msg}");
    assert!(msg.contains("/nonexistent/masv-password"), "{msg}");
}

#[test]
fn secret_file_trailing_newline_is_dropped() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "hunter2\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read_secret(Path::new("c"), "masv", "password", Some(&pw), None).unwrap_err();
    assert!(
        err.to_string().contains("mode 0644") && err.to_string().contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = read_secret(Path::new("c"), "masv", "password", Some(&pw), None).unwrap();
    assert_eq!(s.expose_secret(), "hunter2");
    std::fs::write(&pw, "\n").unwrap();
    assert!(read_secret(Path::new("c"), "masv", "password", Some(&pw), None).is_err());
}

#[test]
fn each_team_gets_policy_then_its_own_override() {
    let text = format!(
        "{MINIMAL}\n[team.policy]\ngrace_period = \"2h\"\n\n[[team]]\nid = \"01FB4S68W7RAW4M89801H1C4CS\"\nkeys = [\"render-*\"]\n\n[policy]\nmax_age = \"20d\"\n"
    );
    let c = parse(&text).unwrap();
    let twenty_days = Duration::from_secs(20 * 86400);
    let (first, second) = (c.teams[0].policy, c.teams[1].policy);
    assert_eq!(first.max_age, twenty_days);
    assert_eq!(first.grace_period, Duration::from_secs(2 * 3600));
    assert_eq!(second.max_age, twenty_days);
    assert_eq!(second.grace_period, Policy::default().grace_period);
}

#[test]
fn vault_keeps_its_own_timeout_whatever_masv_timeout_says() {
    let text = MINIMAL.replace("[masv]", "[masv]\ntimeout = \"5s\"");
    let c = parse(&text).unwrap();
    assert_eq!(c.masv.timeout, Duration::from_secs(5));
    assert_eq!(c.vault.timeout, VAULT_TIMEOUT);
    assert_eq!(VAULT_TIMEOUT, Duration::from_secs(30));
    let token = VaultCredentials::Token(secrecy::SecretString::from("t".to_string()));
    let settings = crate::vault::VaultSettings::from_config(&c.vault, token);
    assert_eq!(settings.timeout, VAULT_TIMEOUT);
}

#[test]
fn vault_timeout_is_not_a_field_of_the_file() {
    let text = MINIMAL.replace("[vault]", "[vault]\ntimeout = \"5s\"");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.field(), Some("vault.timeout"), "{e}");
    assert!(e.to_string().contains("unknown field `timeout`"), "{e}");
}

#[test]
fn notify_events_default_to_all_and_a_list_keeps_only_its_events() {
    use crate::notify::{EventFilter, EventKind};
    let base = format!("{MINIMAL}\n[notify]\nwebhook_url = \"https://hooks.example.com/x\"\n");
    let all = parse(&base).unwrap().notify.unwrap();
    assert_eq!(all.event_filter(), EventFilter::all());
    assert_eq!(all.webhook_secret_file, None);
    let listed = format!(
        "{base}events = [\"rotation.failed\", \"key.expiring\", \"lease.lost\"]\nwebhook_secret_file = \"/run/s\"\n"
    );
    let some = parse(&listed).unwrap().notify.unwrap();
    assert_eq!(
        some.event_filter(),
        EventFilter::only([
            EventKind::RotationFailed,
            EventKind::KeyExpiring,
            EventKind::LeaseLost
        ])
    );
    assert_eq!(
        some.webhook_secret_file.as_deref(),
        Some(Path::new("/run/s"))
    );
    assert_eq!(
        field_of(&format!("{base}events = [\"key.stale\", \"key.gone\"]\n")),
        "notify.events[1]"
    );
    assert_eq!(field_of(&format!("{base}events = []\n")), "notify.events");
    assert_eq!(
        field_of(&format!("{base}webhook_secret_env = \"X\"\n")),
        "notify.webhook_secret_env"
    );
}

/// The anchor's instance id: `[ha] instance_id` when set, else the host name
/// (uname(2), which agrees with `/proc/sys/kernel/hostname` where that is visible).
#[test]
fn the_instance_id_is_the_ha_one_else_the_host_name() {
    let host = super::host_name().expect("a host name");
    if let Ok(proc_name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        assert_eq!(host, proc_name.trim());
    }
    assert_eq!(parse(MINIMAL).unwrap().instance_id().unwrap(), host);
    let ha = parse(&format!("{MINIMAL}\n[ha]\ninstance_id = \"node-a\"\n")).unwrap();
    assert_eq!(ha.instance_id().unwrap(), "node-a");
}
