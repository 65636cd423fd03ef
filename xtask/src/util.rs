//! Small helpers shared by the subcommands.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

/// The workspace root (the parent of the `xtask` package).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `<workspace>/target/etcd`: where downloaded etcd releases live.
pub(crate) fn etcd_root() -> PathBuf {
    workspace_root().join("target").join("etcd")
}

/// A `cargo` command (the one that runs us, via `$CARGO`), run from the workspace root.
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    cmd
}

/// Removes the `ETCD_*` variables from the environment of an etcd process: etcd reads every
/// `ETCD_<FLAG>` as a flag, so e.g. `ETCD_VERSION=3.5.1` makes it refuse to start.
pub(crate) fn scrub_etcd_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("ETCD_") && key != "ETCD_UNSUPPORTED_ARCH" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A process exit status as our own exit code (`128 + signal` when killed by a signal).
pub(crate) fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Minimal option parser: `--name value` / `--name=value` for the given value options and bare
/// flags; everything after `--` is returned as `rest`.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) values: Vec<(String, String)>,
    pub(crate) flags: Vec<String>,
    pub(crate) rest: Vec<String>,
}

impl Args {
    pub(crate) fn parse(
        args: &[String],
        value_opts: &[&str],
        flag_opts: &[&str],
    ) -> anyhow::Result<Args> {
        let mut out = Args::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                out.rest.extend(iter.by_ref().cloned());
                break;
            }
            if flag_opts.contains(&arg.as_str()) {
                out.flags.push(arg.clone());
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            if !value_opts.contains(&name) {
                anyhow::bail!("unexpected argument `{arg}` (see `cargo xtask help`)");
            }
            let value = match inline {
                Some(value) => value,
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("`{name}` needs a value"))?,
            };
            out.values.push((name.to_string(), value));
        }
        Ok(out)
    }

    /// The last value given for `name`.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}
