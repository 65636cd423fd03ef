//! Locating the etcd binary and asking it for its version.
//!
//! The binary is taken from the `ETCD_BIN` environment variable when it is
//! set, otherwise the first executable `etcd` on `PATH` is used.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Name of the environment variable that overrides which etcd binary is used.
pub const ETCD_BIN_ENV: &str = "ETCD_BIN";

const HOW_TO_FIX: &str = "run `cargo xtask test`, which installs etcd into target/, \
     or set ETCD_BIN=/path/to/etcd, or apt-get install etcd-server";

/// Returns the path of the etcd binary the harness runs.
///
/// Looks at `ETCD_BIN` first, then for an executable named `etcd` on `PATH`.
/// The result is computed once per process.
///
/// # Panics
///
/// Panics with a message explaining how to install etcd when no binary is
/// found, or when `ETCD_BIN` names something that is not an executable file.
pub fn etcd_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match find_etcd_binary() {
        Ok(path) => path,
        Err(why) => panic!("etcd binary not found: {why}; to fix this, {HOW_TO_FIX}"),
    })
}

/// Looks for the etcd binary without panicking.
///
/// Same rules as [`etcd_binary`]; the error says what was tried.
pub fn find_etcd_binary() -> Result<PathBuf, String> {
    if let Some(bin) = env::var_os(ETCD_BIN_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&bin);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "{ETCD_BIN_ENV}={} is not an executable file",
                path.display()
            ))
        };
    }
    let path_var = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path_var)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("{ETCD_BIN_ENV} is not set and there is no `etcd` on PATH"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// An etcd release version such as `3.4.23`.
///
/// Ordered by `(major, minor, patch)`, so tests can gate on features with
/// e.g. `etcd_version() >= EtcdVersion::new(3, 5, 0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtcdVersion {
    /// Major version (`3` in `3.4.23`).
    pub major: u32,
    /// Minor version (`4` in `3.4.23`).
    pub minor: u32,
    /// Patch version (`23` in `3.4.23`).
    pub patch: u32,
}

impl EtcdVersion {
    /// Builds a version from its three components.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses the output of `etcd --version`, whose first line reads
    /// `etcd Version: 3.4.23`. A bare `3.4.23` is accepted too; any
    /// pre-release suffix (`3.6.0-rc.1`) is ignored.
    pub fn parse(output: &str) -> Option<Self> {
        let first = output.lines().next()?.trim();
        let text = first.rsplit(' ').next()?.trim_start_matches('v');
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Self::new(major, minor, patch))
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Runs `<binary> --version` and parses the first line of its output.
pub fn binary_version(binary: &Path) -> Result<EtcdVersion, String> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("running `{} --version`: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    EtcdVersion::parse(&text).ok_or_else(|| {
        format!(
            "cannot parse `{} --version` output: {:?}",
            binary.display(),
            text.lines().next().unwrap_or("")
        )
    })
}

/// Version of [`etcd_binary`], computed once per process.
///
/// # Panics
///
/// Panics when the binary cannot be found or its version cannot be parsed.
pub fn etcd_version() -> EtcdVersion {
    static VERSION: OnceLock<EtcdVersion> = OnceLock::new();
    *VERSION.get_or_init(|| binary_version(etcd_binary()).unwrap_or_else(|e| panic!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::EtcdVersion;

    #[test]
    fn parses_version_output() {
        let out = "etcd Version: 3.4.23\nGit SHA: abc\nGo Version: go1.19.8\n";
        assert_eq!(EtcdVersion::parse(out), Some(EtcdVersion::new(3, 4, 23)));
        assert_eq!(
            EtcdVersion::parse("etcd Version: 3.6.0-rc.1\n"),
            Some(EtcdVersion::new(3, 6, 0))
        );
        assert_eq!(EtcdVersion::parse("3.5.1"), Some(EtcdVersion::new(3, 5, 1)));
        assert_eq!(EtcdVersion::parse("garbage"), None);
        assert!(EtcdVersion::new(3, 5, 1) > EtcdVersion::new(3, 4, 23));
        assert_eq!(EtcdVersion::new(3, 4, 23).to_string(), "3.4.23");
    }
}
