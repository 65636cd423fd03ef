//! `cargo xtask codegen`: regenerates etcd-proto's committed Rust code (stub, being written).

/// Regenerates the code, or with `check` only verifies it is fresh.
pub(crate) fn run(_check: bool) -> anyhow::Result<()> {
    anyhow::bail!("codegen not written yet")
}
