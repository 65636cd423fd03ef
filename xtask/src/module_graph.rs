//! A check of the library crates' shape: no two modules of a crate import each other.
//!
//! A module's imports are the `crate::…` and `super::…` paths in its code (comments and
//! its `tests` module left out), resolved to the longest module path that exists. A parent
//! and its own child may use each other (the child is part of the parent); any other pair
//! that points both ways is reported. A test of `xtask` (this module exists in tests only).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crates checked, by folder.
const CRATES: &[&str] = &[
    "etcd-proto",
    "etcd-core",
    "etcd-lease",
    "etcd-watch",
    "etcd-client",
    "etcd-testkit",
];

/// Every pair of modules of the crate at `root` (its folder) that import each other.
fn mutual_imports(root: &Path) -> std::io::Result<Vec<(String, String)>> {
    let src = root.join("src");
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src)? {
        let module = module_path(&src, &file);
        let text = std::fs::read_to_string(&file)?;
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p).to_owned();
        let mut found = BTreeSet::new();
        for line in code_lines(&text) {
            for path in paths_after(line, "crate::") {
                found.insert(path);
            }
            for path in paths_after(line, "super::") {
                found.insert(join(&parent, &path));
            }
        }
        imports.insert(module, found);
    }
    let modules: BTreeSet<String> = imports.keys().cloned().collect();
    let resolved: BTreeMap<&String, BTreeSet<String>> = imports
        .iter()
        .map(|(module, paths)| {
            let targets = paths
                .iter()
                .filter_map(|path| resolve(&modules, path))
                .filter(|target| target != module)
                .collect();
            (module, targets)
        })
        .collect();
    let mut pairs = Vec::new();
    for (a, targets) in &resolved {
        for b in targets {
            let related = b.starts_with(&format!("{a}::")) || a.starts_with(&format!("{b}::"));
            if a.as_str() < b.as_str()
                && !related
                && resolved
                    .get(b)
                    .is_some_and(|back| back.contains(a.as_str()))
            {
                pairs.push(((*a).clone(), b.clone()));
            }
        }
    }
    Ok(pairs)
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(files)
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` is the crate root (empty).
fn module_path(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The lines of code before the file's `tests` module, without comment lines.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
}

/// The module paths that follow `prefix` on `line` (`crate::a::b::{c, d}` gives `a::b`).
fn paths_after(line: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `$crate::`, `foo_crate::`
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(path.trim_end_matches(':').to_owned());
    }
    paths
}

fn join(parent: &str, path: &str) -> String {
    if parent.is_empty() {
        path.to_owned()
    } else {
        format!("{parent}::{path}")
    }
}

/// The longest module that `path` starts with.
fn resolve(modules: &BTreeSet<String>, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_modules_import_each_other() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = Vec::new();
        for name in CRATES {
            for (a, b) in mutual_imports(&workspace.join(name)).expect("read the crate") {
                found.push(format!("{name}: {a} <-> {b}"));
            }
        }
        assert!(
            found.is_empty(),
            "modules that import each other:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn a_cycle_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a")).unwrap();
        std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
        std::fs::write(src.join("a/mod.rs"), "use crate::b::B;\nmod inner;\n").unwrap();
        std::fs::write(src.join("a/inner.rs"), "use super::A;\n").unwrap();
        std::fs::write(
            src.join("b.rs"),
            "// crate::a in a comment\nuse crate::a::A;\n",
        )
        .unwrap();
        assert_eq!(
            mutual_imports(dir.path()).unwrap(),
            vec![("a".to_owned(), "b".to_owned())]
        );
    }
}
