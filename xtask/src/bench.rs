//! `cargo xtask bench`: placeholder.

use std::process::ExitCode;

pub(crate) fn run(_args: &[String]) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`cargo xtask bench` is not yet implemented (issue #7)")
}
