//! Project automation: `cargo xtask codegen | etcd | test | demo | bench`.

mod codegen;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("codegen") => codegen::run(args.iter().any(|a| a == "--check")),
        _ => anyhow::bail!("usage: cargo xtask codegen [--check]"),
    }
}
