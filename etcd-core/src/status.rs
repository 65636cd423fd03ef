//! Classification of etcd's error statuses.
//!
//! etcd treats its status messages as API (its own Go client looks errors up by message),
//! and the gRPC codes differ between versions, so the message decides and the code is the
//! fallback. Every row is checked by a unit test below and most by integration tests
//! against etcd 3.4 and 3.5.

use std::error::Error as StdError;

use crate::error::{Applied, Error, ServerError};

/// The portable kind of an etcd error status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerErrorKind {
    /// `etcdserver: key is not provided`: an empty key.
    EmptyKey,
    /// `etcdserver: key not found`: `ignore_value`/`ignore_lease` on a missing key, or an
    /// empty operation in a transaction.
    KeyNotFound,
    /// `etcdserver: value is provided`: `ignore_value` with a value.
    ValueProvided,
    /// `etcdserver: lease is provided`: `ignore_lease` with a lease.
    LeaseProvided,
    /// `etcdserver: too many operations in txn request`.
    TooManyOps,
    /// `etcdserver: duplicate key given in txn request`.
    DuplicateKey,
    /// `etcdserver: mvcc: required revision has been compacted`.
    Compacted,
    /// `etcdserver: mvcc: required revision is a future revision`.
    FutureRevision,
    /// `etcdserver: mvcc: database space exceeded`: the NOSPACE alarm is raised.
    NoSpace,
    /// The request is larger than the server accepts (`etcdserver: request is too large`,
    /// or gRPC's own `received message larger than max`).
    RequestTooLarge,
    /// `etcdserver: too many requests`: the server is behind on applying; retry later.
    TooManyRequests,
    /// `etcdserver: requested lease not found`.
    LeaseNotFound,
    /// `etcdserver: lease already exists`.
    LeaseExists,
    /// `etcdserver: too large lease TTL`.
    LeaseTtlTooLarge,
    /// `etcdserver: watch canceled`.
    WatchCanceled,
    /// `etcdserver: no leader` (sent with require-leader).
    NoLeader,
    /// `etcdserver: not leader`: the call must go to the leader.
    NotLeader,
    /// `etcdserver: leader changed` during a linearizable read.
    LeaderChanged,
    /// `etcdserver: request timed out` and its variants: the proposal did not apply in
    /// time. A write may still commit.
    RequestTimedOut,
    /// `etcdserver: server stopped`.
    Stopped,
    /// `etcdserver: unhealthy cluster`.
    Unhealthy,
    /// `etcdserver: not capable`: the cluster version lacks the feature.
    NotCapable,
    /// `etcdserver: rpc not supported for learner` (code `Unavailable` in 3.4 and 3.5,
    /// `FailedPrecondition` later): the member is a learner, which serves only
    /// serializable reads and a few maintenance calls. Refused before anything was done;
    /// the client sends the call to another member
    /// ([`is_refused_by_member`](Self::is_refused_by_member)).
    NotSupportedForLearner,
    /// `etcdserver: bad leader transferee`: a move-leader target that is not a started,
    /// caught-up voting member. Refused before anything was done.
    BadLeaderTransferee,
    /// `etcdserver: cluster version not found during downgrade` (3.5 on; code
    /// `Unavailable` in 3.5, `FailedPrecondition` later): a downgrade call while the
    /// cluster version is not known yet. Refused before anything was done.
    ClusterVersionUnavailable,
    /// `etcdserver: wrong downgrade target version format` (3.5 on): the target version is
    /// not `major.minor`.
    WrongDowngradeVersionFormat,
    /// `etcdserver: invalid downgrade target version` (3.5 on): the target is not one
    /// minor version below the cluster version.
    InvalidDowngradeTargetVersion,
    /// `etcdserver: cluster has a downgrade job in progress` (3.5 on).
    DowngradeInProgress,
    /// `etcdserver: no inflight downgrade job` (3.5 on): nothing to cancel.
    NoInflightDowngrade,
    /// `etcdserver: corrupt cluster`.
    Corrupt,
    /// The server's context was canceled or its deadline passed; a write may have applied.
    Canceled,
    /// `etcdserver: invalid auth token`.
    InvalidAuthToken,
    /// The auth store changed after the token was issued (3.4's `revision of auth store is
    /// old`, 3.5's `auth: revision in header is old`).
    AuthOldRevision,
    /// `etcdserver: user name is empty`: auth is on and no token was sent.
    UserEmpty,
    /// `etcdserver: authentication failed, invalid user ID or password`.
    AuthFailed,
    /// `etcdserver: authentication is not enabled`.
    AuthNotEnabled,
    /// `etcdserver: permission denied`.
    PermissionDenied,
    /// Auth administration errors: unknown or duplicate users and roles, missing grants,
    /// missing root.
    AuthManagement,
    /// Membership errors: unknown or duplicate members, bad URLs, learner rules.
    Membership,
    /// Another `Unavailable` status, such as a server going away.
    Unavailable,
    /// Anything not listed above; see the message.
    Other,
}

/// Message fragments and the kind they mean. Exact etcd messages come first; the order
/// matters only where one message contains another.
const MESSAGES: &[(&str, ServerErrorKind)] = &[
    ("etcdserver: key is not provided", ServerErrorKind::EmptyKey),
    ("etcdserver: key not found", ServerErrorKind::KeyNotFound),
    (
        "etcdserver: value is provided",
        ServerErrorKind::ValueProvided,
    ),
    (
        "etcdserver: lease is provided",
        ServerErrorKind::LeaseProvided,
    ),
    (
        "etcdserver: too many operations in txn request",
        ServerErrorKind::TooManyOps,
    ),
    (
        "etcdserver: duplicate key given in txn request",
        ServerErrorKind::DuplicateKey,
    ),
    (
        "etcdserver: mvcc: required revision has been compacted",
        ServerErrorKind::Compacted,
    ),
    (
        "etcdserver: mvcc: required revision is a future revision",
        ServerErrorKind::FutureRevision,
    ),
    (
        "etcdserver: mvcc: database space exceeded",
        ServerErrorKind::NoSpace,
    ),
    (
        "etcdserver: request is too large",
        ServerErrorKind::RequestTooLarge,
    ),
    (
        "received message larger than max",
        ServerErrorKind::RequestTooLarge,
    ),
    (
        "etcdserver: too many requests",
        ServerErrorKind::TooManyRequests,
    ),
    (
        "etcdserver: requested lease not found",
        ServerErrorKind::LeaseNotFound,
    ),
    (
        "etcdserver: lease already exists",
        ServerErrorKind::LeaseExists,
    ),
    (
        "etcdserver: too large lease TTL",
        ServerErrorKind::LeaseTtlTooLarge,
    ),
    ("etcdserver: watch canceled", ServerErrorKind::WatchCanceled),
    ("etcdserver: no leader", ServerErrorKind::NoLeader),
    ("etcdserver: not leader", ServerErrorKind::NotLeader),
    ("etcdserver: leader changed", ServerErrorKind::LeaderChanged),
    (
        "etcdserver: request timed out",
        ServerErrorKind::RequestTimedOut,
    ),
    ("etcdserver: server stopped", ServerErrorKind::Stopped),
    ("etcdserver: unhealthy cluster", ServerErrorKind::Unhealthy),
    ("etcdserver: not capable", ServerErrorKind::NotCapable),
    (
        "etcdserver: rpc not supported for learner",
        ServerErrorKind::NotSupportedForLearner,
    ),
    (
        "etcdserver: bad leader transferee",
        ServerErrorKind::BadLeaderTransferee,
    ),
    (
        "etcdserver: cluster version not found during downgrade",
        ServerErrorKind::ClusterVersionUnavailable,
    ),
    (
        "etcdserver: wrong downgrade target version format",
        ServerErrorKind::WrongDowngradeVersionFormat,
    ),
    (
        "etcdserver: invalid downgrade target version",
        ServerErrorKind::InvalidDowngradeTargetVersion,
    ),
    (
        "etcdserver: cluster has a downgrade job in progress",
        ServerErrorKind::DowngradeInProgress,
    ),
    (
        "etcdserver: no inflight downgrade job",
        ServerErrorKind::NoInflightDowngrade,
    ),
    ("etcdserver: corrupt cluster", ServerErrorKind::Corrupt),
    ("etcdserver: request canceled", ServerErrorKind::Canceled),
    (
        "etcdserver: context deadline exceeded",
        ServerErrorKind::Canceled,
    ),
    (
        "etcdserver: invalid auth token",
        ServerErrorKind::InvalidAuthToken,
    ),
    (
        "etcdserver: revision of auth store is old",
        ServerErrorKind::AuthOldRevision,
    ),
    (
        "auth: revision in header is old",
        ServerErrorKind::AuthOldRevision,
    ),
    ("etcdserver: user name is empty", ServerErrorKind::UserEmpty),
    (
        "etcdserver: authentication failed",
        ServerErrorKind::AuthFailed,
    ),
    (
        "etcdserver: authentication is not enabled",
        ServerErrorKind::AuthNotEnabled,
    ),
    (
        "etcdserver: permission denied",
        ServerErrorKind::PermissionDenied,
    ),
    (
        "etcdserver: root user does not",
        ServerErrorKind::AuthManagement,
    ),
    (
        "etcdserver: user name already exists",
        ServerErrorKind::AuthManagement,
    ),
    (
        "etcdserver: user name not found",
        ServerErrorKind::AuthManagement,
    ),
    ("etcdserver: role name", ServerErrorKind::AuthManagement),
    (
        "etcdserver: permission not given",
        ServerErrorKind::AuthManagement,
    ),
    (
        "etcdserver: role is not granted to the user",
        ServerErrorKind::AuthManagement,
    ),
    (
        "etcdserver: permission is not granted to the role",
        ServerErrorKind::AuthManagement,
    ),
    (
        "etcdserver: invalid auth management",
        ServerErrorKind::AuthManagement,
    ),
    (
        "etcdserver: member ID already exist",
        ServerErrorKind::Membership,
    ),
    (
        "etcdserver: Peer URLs already exists",
        ServerErrorKind::Membership,
    ),
    (
        "etcdserver: re-configuration failed",
        ServerErrorKind::Membership,
    ),
    (
        "etcdserver: given member URLs are invalid",
        ServerErrorKind::Membership,
    ),
    ("etcdserver: member not found", ServerErrorKind::Membership),
    (
        "etcdserver: can only promote a learner member",
        ServerErrorKind::Membership,
    ),
    (
        "etcdserver: too many learner members",
        ServerErrorKind::Membership,
    ),
];

impl ServerErrorKind {
    /// Classifies a status by its message first and its code second.
    pub fn classify(code: tonic::Code, message: &str) -> Self {
        if let Some((_, kind)) = MESSAGES.iter().find(|(m, _)| message.contains(m)) {
            return *kind;
        }
        match code {
            tonic::Code::Unavailable => ServerErrorKind::Unavailable,
            tonic::Code::PermissionDenied => ServerErrorKind::PermissionDenied,
            tonic::Code::Unauthenticated => ServerErrorKind::InvalidAuthToken,
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => ServerErrorKind::Canceled,
            _ => ServerErrorKind::Other,
        }
    }

    /// Whether a write that failed with this kind may still have been applied.
    ///
    /// Only errors raised after the server proposed the request leave the outcome open:
    /// timeouts, a stopping server, a canceled context, and statuses we cannot place.
    pub fn applied(self) -> Applied {
        match self {
            ServerErrorKind::RequestTimedOut
            | ServerErrorKind::Stopped
            | ServerErrorKind::Canceled
            | ServerErrorKind::Unavailable
            | ServerErrorKind::Other => Applied::Unknown,
            _ => Applied::No,
        }
    }

    /// Whether any request failing this way may be sent again after a pause: the server
    /// rejected it before doing anything, for a reason that can pass.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ServerErrorKind::NoLeader
                | ServerErrorKind::LeaderChanged
                | ServerErrorKind::TooManyRequests
                | ServerErrorKind::Unhealthy
        )
    }

    /// Whether the member refused the request, before doing anything, for a reason of
    /// its own that another member does not share: today only
    /// [`NotSupportedForLearner`](Self::NotSupportedForLearner). Any request failing this
    /// way may be sent to another member at once.
    pub fn is_refused_by_member(self) -> bool {
        matches!(self, ServerErrorKind::NotSupportedForLearner)
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let code = status.code();
        let message = status.message();
        // A status the server sent carries etcd's message; the ones tonic makes up for a
        // broken or refused connection carry a transport error as their source.
        let from_server = message.starts_with("etcdserver:") || message.starts_with("auth:");
        if !from_server {
            if code == tonic::Code::DeadlineExceeded && status.source().is_none()
                || timed_out(&status)
            {
                return Error::Timeout;
            }
            if let Some(message) = tls_failure(&status) {
                return Error::Transport {
                    message: message.into(),
                    applied: Applied::No,
                    source: Some(Box::new(TlsFailure { status })),
                };
            }
            if let Some((applied, explained)) = transport_failure(&status) {
                return Error::Transport {
                    message: explained
                        .unwrap_or_else(|| status.message().to_owned())
                        .into(),
                    applied,
                    source: Some(Box::new(status)),
                };
            }
        }
        Error::Server(ServerError::new(code, message))
    }
}

/// Whether a tower timeout layer below the gRPC client gave up on the call.
fn timed_out(status: &tonic::Status) -> bool {
    let mut cause: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(err) = cause {
        if err.is::<tower::timeout::error::Elapsed>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// What failed TLS handshakes report (rustls' and tonic's messages), and what to tell
/// the caller. The first match in the chain of causes wins.
const TLS_FAILURES: &[(&str, &str)] = &[
    (
        "invalid peer certificate",
        "the server's certificate was not accepted: check that the CA given signed it and \
         that it names the server (or set a server name override)",
    ),
    (
        "certificate not valid for name",
        "the server's certificate does not name the server: set a server name override or \
         use a name it lists",
    ),
    (
        "received fatal alert: CertificateRequired",
        "the server requires a client certificate and none was given",
    ),
    (
        "received fatal alert: BadCertificate",
        "the server refused the client certificate (none given, or not signed by a CA it \
         trusts)",
    ),
    (
        "received fatal alert: CertificateExpired",
        "the server refused the client certificate: it has expired",
    ),
    (
        "received fatal alert: UnknownCA",
        "the server refused the client certificate: it does not trust the CA that signed it",
    ),
    (
        "received fatal alert",
        "the server refused the TLS handshake",
    ),
    (
        "peer sent no certificates",
        "the server sent no certificate",
    ),
    (
        "received corrupt message",
        "the server does not speak TLS on this port (use http:// for it?)",
    ),
    (
        "peer is incompatible",
        "the server's TLS versions or ciphers are incompatible",
    ),
    (
        "HTTP/2 was not negotiated",
        "the server did not offer HTTP/2 over TLS",
    ),
];

/// A connection that failed in its TLS handshake for a reason that trying again will not
/// fix: an untrusted certificate, a refused client certificate, a server without TLS.
#[derive(Debug)]
pub(crate) struct TlsFailure {
    status: tonic::Status,
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TLS handshake failed")
    }
}

impl StdError for TlsFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.status)
    }
}

/// Recognises a failed TLS handshake among the causes of a status, and says what failed.
fn tls_failure(status: &tonic::Status) -> Option<String> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(status.source()?);
    while let Some(err) = cause {
        let text = err.to_string();
        if let Some((_, meaning)) = TLS_FAILURES.iter().find(|(m, _)| text.contains(m)) {
            return Some(format!("TLS handshake failed: {meaning} ({text})"));
        }
        cause = err.source();
    }
    None
}

/// Tells a transport failure from a server status, and whether the request left the client:
/// a refused or failed connection means it never did. Some failures come with a clearer
/// message than the status's.
fn transport_failure(status: &tonic::Status) -> Option<(Applied, Option<String>)> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(status.source()?);
    let mut applied = Applied::Unknown;
    let mut explained = None;
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            ) {
                applied = Applied::No;
            }
        }
        // A transport of ours (or anyone's) that knows its request was never sent says so
        // with the type, and its message explains.
        if crate::transport::is_never_sent(err) {
            applied = Applied::No;
            explained.get_or_insert_with(|| err.to_string());
        }
        // Diagnosis of foreign errors, by their wording: hyper and tonic connect errors,
        // and hyper's cancel of a request still queued when its connection closed (it was
        // never written).
        let text = err.to_string();
        if text.contains("tcp connect error")
            || text.contains("TLS handshake timeout")
            || text.contains("operation was canceled")
            || text.contains("error trying to connect")
            || text.contains("dns error")
        {
            applied = Applied::No;
        }
        // A server that hangs up on a TLS handshake: a plain-text port, or a server or
        // proxy going away. Nothing was sent.
        if text.contains("tls handshake eof") {
            applied = Applied::No;
            explained.get_or_insert_with(|| {
                format!(
                    "TLS handshake failed: the server closed the connection during the \
                     handshake; if this port does not serve TLS, use an http:// endpoint \
                     ({text})"
                )
            });
        }
        cause = err.source();
    }
    Some((applied, explained))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn kind(code: Code, message: &str) -> ServerErrorKind {
        match Error::from(tonic::Status::new(code, message)) {
            Error::Server(e) => e.kind(),
            other => panic!("{message}: not a server error: {other:?}"),
        }
    }

    #[test]
    fn every_table_row_maps_to_its_kind() {
        use ServerErrorKind as K;
        let rows = [
            (
                Code::InvalidArgument,
                "etcdserver: key is not provided",
                K::EmptyKey,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: key not found",
                K::KeyNotFound,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: value is provided",
                K::ValueProvided,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: lease is provided",
                K::LeaseProvided,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
                K::TooManyOps,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
                K::DuplicateKey,
            ),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
                K::Compacted,
            ),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
                K::FutureRevision,
            ),
            (
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
                K::NoSpace,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: request is too large",
                K::RequestTooLarge,
            ),
            (
                Code::ResourceExhausted,
                "grpc: received message larger than max (2621450 vs. 2097152)",
                K::RequestTooLarge,
            ),
            (
                Code::Unknown,
                "etcdserver: too many requests",
                K::TooManyRequests,
            ),
            (
                Code::NotFound,
                "etcdserver: requested lease not found",
                K::LeaseNotFound,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
                K::LeaseExists,
            ),
            (
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
                K::LeaseTtlTooLarge,
            ),
            (
                Code::Cancelled,
                "etcdserver: watch canceled",
                K::WatchCanceled,
            ),
            (Code::Unavailable, "etcdserver: no leader", K::NoLeader),
            (
                Code::FailedPrecondition,
                "etcdserver: not leader",
                K::NotLeader,
            ),
            (
                Code::Unavailable,
                "etcdserver: leader changed",
                K::LeaderChanged,
            ),
            (
                Code::Unavailable,
                "etcdserver: request timed out",
                K::RequestTimedOut,
            ),
            (
                Code::Unavailable,
                "etcdserver: request timed out, possibly due to previous leader failure",
                K::RequestTimedOut,
            ),
            (
                Code::Unavailable,
                "etcdserver: request timed out, possibly due to connection lost",
                K::RequestTimedOut,
            ),
            (
                Code::Unavailable,
                "etcdserver: request timed out, waiting for the applied index took too long",
                K::RequestTimedOut,
            ),
            (Code::Unavailable, "etcdserver: server stopped", K::Stopped),
            (
                Code::Unavailable,
                "etcdserver: unhealthy cluster",
                K::Unhealthy,
            ),
            (Code::Unavailable, "etcdserver: not capable", K::NotCapable),
            (
                Code::Unavailable,
                "etcdserver: rpc not supported for learner",
                K::NotSupportedForLearner,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: rpc not supported for learner",
                K::NotSupportedForLearner,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee",
                K::BadLeaderTransferee,
            ),
            (
                Code::Unavailable,
                "etcdserver: cluster version not found during downgrade",
                K::ClusterVersionUnavailable,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: cluster version not found during downgrade",
                K::ClusterVersionUnavailable,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: wrong downgrade target version format",
                K::WrongDowngradeVersionFormat,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: invalid downgrade target version",
                K::InvalidDowngradeTargetVersion,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: cluster has a downgrade job in progress",
                K::DowngradeInProgress,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: no inflight downgrade job",
                K::NoInflightDowngrade,
            ),
            (Code::DataLoss, "etcdserver: corrupt cluster", K::Corrupt),
            (Code::Cancelled, "etcdserver: request canceled", K::Canceled),
            (
                Code::DeadlineExceeded,
                "etcdserver: context deadline exceeded",
                K::Canceled,
            ),
            (
                Code::Unauthenticated,
                "etcdserver: invalid auth token",
                K::InvalidAuthToken,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: revision of auth store is old",
                K::AuthOldRevision,
            ),
            (
                Code::Unknown,
                "auth: revision in header is old",
                K::AuthOldRevision,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: user name is empty",
                K::UserEmpty,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: authentication failed, invalid user ID or password",
                K::AuthFailed,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: authentication is not enabled",
                K::AuthNotEnabled,
            ),
            (
                Code::PermissionDenied,
                "etcdserver: permission denied",
                K::PermissionDenied,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: root user does not exist",
                K::AuthManagement,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: user name already exists",
                K::AuthManagement,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: role name not found",
                K::AuthManagement,
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: member ID already exist",
                K::Membership,
            ),
            (
                Code::NotFound,
                "etcdserver: member not found",
                K::Membership,
            ),
            (
                Code::Unavailable,
                "some other unavailability",
                K::Unavailable,
            ),
            (Code::Internal, "who knows", K::Other),
        ];
        for (code, message, expected) in rows {
            assert_eq!(kind(code, message), expected, "{message}");
        }
    }

    #[test]
    fn only_post_proposal_errors_leave_the_outcome_open() {
        let unknown = |c, m| Error::from(tonic::Status::new(c, m)).is_outcome_unknown();
        assert!(unknown(Code::Unavailable, "etcdserver: request timed out"));
        assert!(unknown(Code::Unavailable, "etcdserver: server stopped"));
        assert!(unknown(
            Code::DeadlineExceeded,
            "etcdserver: context deadline exceeded"
        ));
        assert!(!unknown(
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request"
        ));
        assert!(!unknown(Code::Unavailable, "etcdserver: no leader"));
        assert!(!unknown(
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded"
        ));
    }

    /// Refusals of the learner, move-leader and downgrade checks happen before the request
    /// is proposed: definitely not applied, whatever the code (3.4 and 3.5 send some of
    /// them as `Unavailable`, which alone would mean "unknown"). Only the learner's is
    /// worth another member; the others fail the same way on any member.
    #[test]
    fn learner_move_leader_and_downgrade_refusals_never_applied() {
        use ServerErrorKind as K;
        let rows = [
            // (code in 3.4 / 3.5, code later, message, kind)
            (
                Code::Unavailable,
                Code::FailedPrecondition,
                "etcdserver: rpc not supported for learner",
                K::NotSupportedForLearner,
            ),
            (
                Code::FailedPrecondition,
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee",
                K::BadLeaderTransferee,
            ),
            (
                Code::Unavailable,
                Code::FailedPrecondition,
                "etcdserver: cluster version not found during downgrade",
                K::ClusterVersionUnavailable,
            ),
            (
                Code::InvalidArgument,
                Code::InvalidArgument,
                "etcdserver: wrong downgrade target version format",
                K::WrongDowngradeVersionFormat,
            ),
            (
                Code::InvalidArgument,
                Code::InvalidArgument,
                "etcdserver: invalid downgrade target version",
                K::InvalidDowngradeTargetVersion,
            ),
            (
                Code::FailedPrecondition,
                Code::FailedPrecondition,
                "etcdserver: cluster has a downgrade job in progress",
                K::DowngradeInProgress,
            ),
            (
                Code::FailedPrecondition,
                Code::FailedPrecondition,
                "etcdserver: no inflight downgrade job",
                K::NoInflightDowngrade,
            ),
        ];
        for (old, new, message, expected) in rows {
            for code in [old, new] {
                let e = Error::from(tonic::Status::new(code, message));
                assert_eq!(e.server_kind(), Some(expected), "{code:?} {message}");
                assert_eq!(e.applied(), Applied::No, "{code:?} {message}");
                assert!(!e.is_outcome_unknown(), "{code:?} {message}");
                assert!(!expected.is_transient(), "{message}");
                assert_eq!(
                    expected.is_refused_by_member(),
                    expected == K::NotSupportedForLearner,
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn a_client_side_deadline_is_a_timeout() {
        let e = Error::from(tonic::Status::deadline_exceeded("Timeout expired"));
        assert!(matches!(e, Error::Timeout));
        assert!(e.is_outcome_unknown());
    }

    #[test]
    fn a_refused_connection_never_applied() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = tonic::Status::from_error(Box::new(io));
        let e = Error::from(status);
        assert!(
            matches!(
                e,
                Error::Transport {
                    applied: Applied::No,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_request_canceled_before_sending_never_applied() {
        #[derive(Debug)]
        struct Canceled;
        impl std::fmt::Display for Canceled {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("operation was canceled: connection closed")
            }
        }
        impl StdError for Canceled {}
        let status = tonic::Status::from_error(Box::new(Canceled));
        let e = Error::from(status);
        assert!(
            matches!(
                e,
                Error::Transport {
                    applied: Applied::No,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_broken_connection_leaves_the_outcome_open() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let e = Error::from(tonic::Status::from_error(Box::new(io)));
        assert!(
            matches!(
                e,
                Error::Transport {
                    applied: Applied::Unknown,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn tls_handshake_failures_are_typed_and_never_applied() {
        for (text, says) in [
            (
                "invalid peer certificate: UnknownIssuer",
                "CA given signed it",
            ),
            (
                "received fatal alert: CertificateRequired",
                "requires a client certificate",
            ),
            ("received fatal alert: BadCertificate", "client certificate"),
            (
                "received corrupt message of type InvalidContentType",
                "does not speak TLS",
            ),
        ] {
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, text);
            let e = Error::from(tonic::Status::from_error(Box::new(io)));
            assert!(e.is_tls(), "{text}: {e:?}");
            match &e {
                Error::Transport {
                    message,
                    applied: Applied::No,
                    ..
                } => {
                    assert!(message.starts_with("TLS handshake failed"), "{message}");
                    assert!(message.contains(says), "{message}");
                    assert!(message.contains(text), "{message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_tls_handshake_timeout_is_a_retriable_transport_error() {
        let e = Error::from(tonic::Status::from_error("TLS handshake timeout.".into()));
        assert!(!e.is_tls(), "{e:?}");
        assert!(
            matches!(
                e,
                Error::Transport {
                    applied: Applied::No,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_connection_closed_before_the_server_spoke_never_applied() {
        use crate::transport::NeverSent;
        let marked = |text: &str| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, NeverSent::new(text))
        };
        for (text, io) in [
            // Our connector marks it: the type decides, whatever the words.
            (
                "the server closed the connection early",
                marked("the server closed the connection early"),
            ),
            // rustls' words for a server hanging up on the handshake (a foreign error).
            (
                "tls handshake eof",
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof"),
            ),
        ] {
            let e = Error::from(tonic::Status::from_error(Box::new(io)));
            assert!(!e.is_tls(), "{text}: {e:?}");
            match &e {
                Error::Transport {
                    message,
                    applied: Applied::No,
                    ..
                } => assert!(message.contains(text), "{message}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn our_own_words_without_the_mark_leave_the_outcome_open() {
        // The classification of our transports' errors reads the type: the same words
        // without the mark say nothing about whether the request was sent.
        for text in [
            "the request was not sent: GOAWAY",
            "the server closed the connection before sending a byte",
        ] {
            let io = std::io::Error::other(text);
            let e = Error::from(tonic::Status::from_error(Box::new(io)));
            assert_eq!(e.applied(), Applied::Unknown, "{text}: {e:?}");
        }
        let marked = crate::transport::NeverSent::new("stream refused");
        let e = Error::from(tonic::Status::from_error(Box::new(marked)));
        assert_eq!(e.applied(), Applied::No, "{e:?}");
    }

    #[test]
    fn boxed_errors_are_recovered() {
        let e = Error::from_boxed(Box::new(Error::Timeout));
        assert!(matches!(e, Error::Timeout));
        let e = Error::from_boxed(Box::new(tonic::Status::new(
            Code::NotFound,
            "etcdserver: requested lease not found",
        )));
        assert_eq!(e.server_kind(), Some(ServerErrorKind::LeaseNotFound));
        let e = Error::from_boxed(Box::new(tower::timeout::error::Elapsed::new()));
        assert!(matches!(e, Error::Timeout));
        let e = Error::from_boxed(Box::new(crate::transport::NeverSent::new("refused")));
        assert_eq!(e.applied(), Applied::No, "{e:?}");
        let e = Error::from_boxed("something broke".into());
        assert_eq!(e.applied(), Applied::Unknown, "{e:?}");
    }
}

/// A cancel reason as a server error: gRPC's `rpc error: code = <Code> desc = <message>`
/// text, or a bare message (code `Unknown`).
pub(crate) fn parse_cancel_reason(reason: &str) -> ServerError {
    let parsed = reason
        .strip_prefix("rpc error: code = ")
        .and_then(|rest| rest.split_once(" desc = "));
    match parsed {
        Some((code, message)) => ServerError::new(code_named(code.trim()), message),
        None => ServerError::new(tonic::Code::Unknown, reason),
    }
}

/// The gRPC code of the name Go's `codes.Code.String` gives it.
fn code_named(name: &str) -> tonic::Code {
    use tonic::Code;
    match name {
        "OK" => Code::Ok,
        "Canceled" => Code::Cancelled,
        "InvalidArgument" => Code::InvalidArgument,
        "DeadlineExceeded" => Code::DeadlineExceeded,
        "NotFound" => Code::NotFound,
        "AlreadyExists" => Code::AlreadyExists,
        "PermissionDenied" => Code::PermissionDenied,
        "ResourceExhausted" => Code::ResourceExhausted,
        "FailedPrecondition" => Code::FailedPrecondition,
        "Aborted" => Code::Aborted,
        "OutOfRange" => Code::OutOfRange,
        "Unimplemented" => Code::Unimplemented,
        "Internal" => Code::Internal,
        "Unavailable" => Code::Unavailable,
        "DataLoss" => Code::DataLoss,
        "Unauthenticated" => Code::Unauthenticated,
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod cancel_reason_tests {
    use crate::{Error, ServerErrorKind};

    #[test]
    fn cancel_reasons_are_classified() {
        let kind = |reason: &str| {
            Error::WatchCanceled {
                reason: reason.into(),
            }
            .server_kind()
        };
        // etcd 3.5.1 (a forbidden key, or an expired token)
        assert_eq!(
            kind("rpc error: code = PermissionDenied desc = etcdserver: permission denied"),
            Some(ServerErrorKind::PermissionDenied)
        );
        assert_eq!(
            kind("etcdserver: permission denied"),
            Some(ServerErrorKind::PermissionDenied)
        );
        // etcd 3.4.23
        assert_eq!(
            kind("rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"),
            Some(ServerErrorKind::InvalidAuthToken)
        );
        assert_eq!(
            kind(
                "rpc error: code = InvalidArgument desc = etcdserver: revision of auth store is old"
            ),
            Some(ServerErrorKind::AuthOldRevision)
        );
        let parsed = Error::WatchCanceled {
            reason: "rpc error: code = Unauthenticated desc = something new".into(),
        }
        .server_error()
        .unwrap();
        assert_eq!(parsed.code(), tonic::Code::Unauthenticated);
        assert_eq!(parsed.message(), "something new");
        assert_eq!(kind("watch creation refused"), Some(ServerErrorKind::Other));
        assert_eq!(Error::WatchNoLeader.server_kind(), None);
    }
}
