//! Classification of etcd's error statuses.
//!
//! etcd treats its status messages as API (its own Go client looks errors up by message),
//! and the gRPC codes differ between versions, so the message decides and the code is the
//! fallback. Every row is checked by a unit test below and most by integration tests
//! against etcd 3.4 and 3.5. A status that did not come from etcd is a transport failure,
//! diagnosed in [`transport`].

mod transport;

pub(crate) use transport::TlsFailure;
use transport::{timed_out, tls_failure, transport_failure};

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
                return Error::Timeout {
                    call: None,
                    limit: None,
                    endpoints: Box::default(),
                };
            }
            if let Some((size, limit)) = over_size_limit(&status) {
                return Error::ResponseTooLarge { size, limit };
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

/// The sizes in the status tonic's generated clients fail a call with when a response
/// message is over their `max_decoding_message_size` (which the adapters set to their
/// response limit): `OutOfRange`, "Error, decoded message length too large: found N bytes,
/// the limit is: M bytes".
fn over_size_limit(status: &tonic::Status) -> Option<(usize, usize)> {
    if status.code() != tonic::Code::OutOfRange {
        return None;
    }
    let rest = status
        .message()
        .strip_prefix("Error, decoded message length too large: found ")?;
    let (size, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((size.parse().ok()?, limit.parse().ok()?))
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
    fn the_generated_clients_size_refusal_is_response_too_large() {
        let status = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 8200 bytes, the limit is: 4096 bytes",
        );
        assert!(matches!(
            Error::from(status),
            Error::ResponseTooLarge {
                size: 8200,
                limit: 4096
            }
        ));
        // Other OutOfRange statuses stay what they were.
        let other = Error::from(tonic::Status::out_of_range("found 8200 bytes"));
        assert!(matches!(other, Error::Server(_)), "{other:?}");
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
}
