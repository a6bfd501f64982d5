//! The operation a Vault request performs, told from its method and path, so
//! `/metrics` can count requests by what they do (`vault_requests_total{op}`)
//! without a secret's path, which names a team and a key, in a label.

/// The operation of a request with `method` on `path` (`/v1/...`).
pub(super) fn op_of(method: &str, path: &str) -> &'static str {
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("v1/").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    match segments[0] {
        "sys" => return "sys",
        "auth" if segments.last() == Some(&"login") => return "login",
        "auth" => return "auth",
        _ => {}
    }
    // `<mount>/data/<path>` or `<mount>/metadata/<path>`; a mount may hold slashes.
    let kind = segments[1..]
        .iter()
        .find(|s| matches!(**s, "data" | "metadata"));
    match (kind.copied(), method) {
        (Some("data"), "GET") => "read",
        (Some("data"), "POST" | "PUT" | "PATCH") => "write",
        (Some("data"), "DELETE") => "delete",
        (Some("metadata"), "GET") => "read_metadata",
        (Some("metadata"), "LIST") => "list",
        (Some("metadata"), "POST" | "PUT" | "PATCH") => "write_metadata",
        (Some("metadata"), "DELETE") => "delete_metadata",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::op_of;

    #[test]
    fn requests_are_named_by_what_they_do() {
        for (method, path, op) in [
            ("GET", "/v1/secret/data/masv/ci-build", "read"),
            ("POST", "/v1/secret/data/masv/ci-build", "write"),
            ("GET", "/v1/kv/prod/metadata/masv/x", "read_metadata"),
            ("POST", "/v1/secret/metadata/masv/x", "write_metadata"),
            (
                "DELETE",
                "/v1/secret/metadata/masv/_pending/x",
                "delete_metadata",
            ),
            ("LIST", "/v1/secret/metadata/masv", "list"),
            ("POST", "/v1/auth/approle/login", "login"),
            ("GET", "/v1/auth/token/lookup-self", "auth"),
            ("POST", "/v1/sys/capabilities-self", "sys"),
            ("GET", "/v1/secret/config", "other"),
        ] {
            assert_eq!(op_of(method, path), op, "{method} {path}");
        }
    }
}
