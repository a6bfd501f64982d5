//! This instance's name: `[ha] instance_id`, else the host name. The HA lease
//! (`_leader`'s `holder`) and the audit anchor (`_audit/<instance_id>`) both
//! name the instance by it, so both take it from here: an instance without
//! `[ha]` anchors its audit log under the same name it would hold the lease by.

use super::Config;

/// Why `id` cannot name an instance (it becomes a Vault path segment), if so.
pub(crate) fn bad_instance_id(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id.len() > 64 {
        Some("is longer than 64 bytes")
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || id.chars().all(|c| c == '.')
    {
        Some("may hold only letters, digits, '-', '_' and '.' (it names a Vault path)")
    } else {
        None
    }
}

/// The kernel's host name, as `hostname` prints it: from uname(2), which
/// answers the same inside the systemd unit's sandbox (where `ProcSubset=pid`
/// hides `/proc/sys/kernel/hostname`) as in an operator's shell, so the daemon
/// and `history --verify` name the same anchor.
pub fn host_name() -> Option<String> {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_str().ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

impl Config {
    /// The name this instance anchors its audit log under: `[ha] instance_id`
    /// (checked with the config), else the host name; Err says why neither serves.
    pub fn instance_id(&self) -> Result<String, String> {
        if let Some(ha) = &self.ha {
            return Ok(ha.instance_id.clone());
        }
        let name = host_name().ok_or_else(|| {
            "the host name cannot be read: set [ha] instance_id to name this instance".to_string()
        })?;
        match bad_instance_id(&name) {
            None => Ok(name),
            Some(problem) => Err(format!(
                "the host name \"{}\" {problem}: set [ha] instance_id",
                crate::escape::escaped(&name)
            )),
        }
    }
}
