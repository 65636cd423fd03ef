//! The project's own test helpers, over the real etcd processes, clusters and fault proxy
//! of [`etcd_testkit`] (which the tests use directly, as any user of the kit would).
//!
//! - [`hostile::HostileMember`]: a loopback "member" that breaks HTTP/2 in a chosen way.
//! - [`examples::Example`]: runs a compiled example of the workspace (against
//!   an etcd of the kit), with a timeout, and checks its exit status and output.
//! - [`clients`]: raw gRPC handles on one member, to check what the client under test did.
//! - [`counting`]: a tower layer counting the calls that reach the transport.
//! - [`history`]: records a run's operations and proves them against the server's history.
//! - [`logs::Capture`]: keeps what the client logs through `tracing`, to check it.
//! - [`chaos`]: a seeded run of the client under faults, checked by [`history`].
//! - [`expect_refused`]: asserts a typed refusal that certainly did not apply.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod chaos;
pub mod clients;
pub mod counting;
pub mod examples;
pub mod history;
pub mod hostile;
pub mod logs;

/// Asserts that `result` is etcd's refusal of kind `kind`, certainly not applied (a
/// refusal before the request was proposed), and returns the error. `what` names the call
/// in the panic message.
#[track_caller]
pub fn expect_refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, etcd3::Error>,
    kind: etcd3::ServerErrorKind,
) -> etcd3::Error {
    let error = result.expect_err(what);
    assert_eq!(error.server_kind(), Some(kind), "{what}: {error:?}");
    assert_eq!(error.applied(), etcd3::Applied::No, "{what}: {error:?}");
    error
}
