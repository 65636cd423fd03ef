//! Running the workspace's examples as tests: an example must work against a real etcd,
//! not only compile.
//!
//! `cargo test --workspace` builds every example of the workspace into
//! `<target>/<profile>/examples/<name>` before it runs any test, and [`Example`] runs that
//! binary: found by its name alone (whichever package it belongs to), with the given
//! arguments, killed when it overruns its timeout, and failing the test unless it exits
//! with status 0. A test binary run on its own (`cargo test -p etcd-tests --test ..`) does
//! not build them: build them first (`cargo build --workspace --examples`), or the run
//! fails saying so. An example binary older than its source fails the same way.
//!
//! # Example
//!
//! ```no_run
//! use etcd_tests::examples::{Example, run_example};
//!
//! #[tokio::test]
//! async fn custom_layer() {
//!     let output = run_example("custom_layer", [etcd_testkit::shared_server().client_url()]).await;
//!     output.assert_stdout_contains("layered = ");
//! }
//!
//! #[tokio::test]
//! async fn failover() {
//!     let cluster = etcd_testkit::EtcdCluster::start(3).await;
//!     Example::new("failover")
//!         .args(cluster.client_urls())
//!         .timeout(std::time::Duration::from_secs(120))
//!         .run()
//!         .await
//!         .assert_stdout_contains("done");
//! }
//! ```

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an example may run unless [`Example::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the example `name` of any workspace package with `args` and returns its output;
/// panics unless it exits with status 0 within [`DEFAULT_TIMEOUT`]. See [`Example`] for
/// more settings.
pub async fn run_example<I, A>(name: &str, args: I) -> ExampleOutput
where
    I: IntoIterator<Item = A>,
    A: AsRef<OsStr>,
{
    Example::new(name).args(args).run().await
}

/// One run of a compiled example of the workspace, set up like a `Command`.
#[derive(Clone, Debug)]
pub struct Example {
    name: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
}

/// What an example printed, once it exited with status 0.
#[derive(Clone, Debug)]
pub struct ExampleOutput {
    /// Its standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Its standard error (invalid UTF-8 replaced).
    pub stderr: String,
}

impl Example {
    /// The example `name` (the file name under some package's `examples/`, without
    /// `.rs`), with no arguments.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments (several endpoints, for example).
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable of the example (it inherits the test's environment).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// How long the example may run before it is killed and the test fails (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The compiled example: `<target>/<profile>/examples/<name>` next to this test
    /// binary's `<target>/<profile>/deps/`. An error says how to build it when it is
    /// missing or older than its source.
    pub fn binary(&self) -> Result<PathBuf, String> {
        let name = &self.name;
        let exe = std::env::current_exe().map_err(|e| format!("no path of the test: {e}"))?;
        // <target>/<profile>/deps/<test>-<hash>
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| format!("{} is not in <target>/<profile>/deps", exe.display()))?;
        let binary = profile
            .join("examples")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        let source = example_source(name);
        let built = std::fs::metadata(&binary).and_then(|m| m.modified());
        let Some((package, source)) = source else {
            return match built {
                // Somewhere this search does not look; run what was built.
                Ok(_) => Ok(binary),
                Err(_) => Err(format!(
                    "no example `{name}`: no package of the workspace has \
                     examples/{name}.rs, and {} does not exist",
                    binary.display()
                )),
            };
        };
        let build = format!("build it with `cargo build -p {package} --examples`");
        let Ok(built) = built else {
            return Err(format!(
                "example `{name}` is not built (no {}): `cargo test --workspace` builds \
                 every example; for a test run on its own, {build}",
                binary.display()
            ));
        };
        let changed = std::fs::metadata(&source).and_then(|m| m.modified());
        if changed.is_ok_and(|changed| changed > built) {
            return Err(format!(
                "example `{name}` is older than its source {}: {build}",
                source.display()
            ));
        }
        Ok(binary)
    }

    /// Runs the example and returns its output.
    ///
    /// # Panics
    ///
    /// When the binary is missing or stale (see [`binary`](Self::binary)), or the
    /// example exits with another status than 0, or outlives its timeout (it is then
    /// killed). The message holds what it printed.
    pub async fn run(self) -> ExampleOutput {
        let binary = self.binary().unwrap_or_else(|why| panic!("{why}"));
        let mut command = Command::new(&binary);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = etcd_testkit::process::spawn_with_pdeathsig(command)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut running = Running(child);
        let stdout = read_all(running.0.stdout.take());
        let stderr = read_all(running.0.stderr.take());
        let started = Instant::now();
        let status = loop {
            match running.0.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= self.timeout => break None,
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("cannot wait for example `{}`: {e}", self.name),
            }
        };
        // On a timeout: killed here, so that its pipes close and the output can be read.
        drop(running);
        let output = ExampleOutput {
            stdout: joined(stdout),
            stderr: joined(stderr),
        };
        let args = self.args.iter().map(|a| a.to_string_lossy());
        let args = args.collect::<Vec<_>>().join(" ");
        match status {
            Some(status) if status.success() => output,
            Some(status) => panic!(
                "example `{} {args}` failed ({}){output}",
                self.name,
                describe(status)
            ),
            None => panic!(
                "example `{} {args}` did not finish within {:?}: killed{output}",
                self.name, self.timeout
            ),
        }
    }
}

impl ExampleOutput {
    /// Asserts that the standard output holds `expected`; the message shows both outputs.
    #[track_caller]
    pub fn assert_stdout_contains(&self, expected: &str) -> &Self {
        assert!(
            self.stdout.contains(expected),
            "the example did not print {expected:?}{self}"
        );
        self
    }
}

impl std::fmt::Display for ExampleOutput {
    /// Both outputs, each under a heading, for failure messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// A running example, killed when dropped (a timeout, or a panic of the test).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads a pipe to its end on a thread of its own.
fn read_all(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn joined(reader: JoinHandle<Vec<u8>>) -> String {
    String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned()
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The package that has the example `name`, and its source: `examples/<name>.rs` or
/// `examples/<name>/main.rs` in a package folder of the workspace.
fn example_source(name: &str) -> Option<(String, PathBuf)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    for entry in std::fs::read_dir(workspace).ok()?.flatten() {
        let folder = entry.path();
        let file = folder.join("examples").join(format!("{name}.rs"));
        let main = folder.join("examples").join(name).join("main.rs");
        let Some(source) = [file, main].into_iter().find(|p| p.is_file()) else {
            continue;
        };
        let manifest = std::fs::read_to_string(folder.join("Cargo.toml")).ok()?;
        return Some((package_name(&manifest)?, source));
    }
    None
}

/// The `name` of a manifest's `[package]`.
fn package_name(manifest: &str) -> Option<String> {
    let package = manifest.split("[package]").nth(1)?;
    let line = package
        .lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find(|l| l.trim_start().starts_with("name") && l.contains('='))?;
    let value = line.split_once('=')?.1.trim();
    Some(value.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_of_an_example_is_found() {
        let (package, source) = example_source("custom_transport").unwrap();
        assert_eq!(package, "etcd-watch");
        assert!(source.ends_with("etcd-watch/examples/custom_transport.rs"));
        assert_eq!(example_source("no_such_example"), None);
    }

    #[test]
    fn a_missing_example_is_named() {
        let why = Example::new("no_such_example").binary().unwrap_err();
        assert!(why.contains("no example `no_such_example`"), "{why}");
        assert!(why.contains("examples/no_such_example.rs"), "{why}");
    }
}
