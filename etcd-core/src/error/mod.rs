//! The one error type of the client: what went wrong, and whether a write may have applied.

mod session_loss;
pub(crate) mod status;

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use crate::lease::LossReason;

/// A boxed error as produced by tower stacks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with an etcd call.
///
/// Match on the variant for what happened, and ask [`Error::applied`] whether a write that
/// failed this way may nevertheless have taken effect on the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was rejected by the client before anything was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(#[from] InvalidRequest),
    /// etcd answered with an error status.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The call's deadline passed before an answer came. A write may have been applied.
    ///
    /// `call` names what timed out (`PutRequest`, `watch creation`, ...) and `limit` the
    /// deadline that passed, when the part of the client that gave up knows them (a tower
    /// timeout layer of your own does not say).
    #[error("{}", timeout_message(*call, *limit, endpoints))]
    Timeout {
        /// What timed out: the request type or the step (for example `watch creation`).
        call: Option<&'static str>,
        /// The deadline that passed.
        limit: Option<std::time::Duration>,
        /// The members the call was sent to, in order (empty when unknown).
        endpoints: Box<[String]>,
    },
    /// The connection failed. Whether the request reached the server is in `applied`.
    #[error("transport error: {message}")]
    Transport {
        /// What the transport reported.
        message: Cow<'static, str>,
        /// Whether the request may have reached the server.
        applied: Applied,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The server's answer could not be interpreted.
    #[error("unexpected response: {0}")]
    Protocol(Cow<'static, str>),
    /// A response message was larger than the client accepts (the limit set with
    /// `max_response_size`; 2 GiB − 1 by default, as etcd's Go client). It is refused as
    /// soon as its length prefix arrives, before any of it is buffered. For a write, the
    /// server did answer, but whether the write succeeded is in the refused message:
    /// [`Applied::Unknown`]. On a watch stream it ends every watch the server was serving
    /// on that stream (which one the message was for cannot be known without reading it);
    /// watches not yet created there resume, as after any break of the stream.
    #[error(
        "response too large: a message of {size} bytes, over the client's limit of {limit} bytes (raise it with max_response_size)"
    )]
    ResponseTooLarge {
        /// The size the message's prefix announced.
        size: usize,
        /// The client's limit.
        limit: usize,
    },
    /// A lease is gone, or may be: the server said it does not exist, no keep-alive was
    /// acknowledged in time, it was revoked through this client, or its keep-alive task
    /// stopped. [`LossReason::is_known_gone`] tells "gone" from "may be gone".
    #[error("lease {id:x} {reason}")]
    LeaseLost {
        /// The lease.
        id: i64,
        /// Why it is no longer kept alive.
        reason: LossReason,
    },
    /// The revision a watch had to continue from was compacted away: events between the
    /// last delivered one and `compact_revision` can no longer be delivered. Re-read the
    /// current state (a get at the latest revision) and watch again from its revision + 1.
    /// Terminal for the watch.
    #[error("the watch's next revision was compacted (compact revision {compact_revision})")]
    WatchCompacted {
        /// The revision the history was compacted to; the oldest revision still watchable.
        compact_revision: i64,
    },
    /// The server canceled a watch or refused to create it (for example: permission
    /// denied, or an invalid range); [`server_kind`](Error::server_kind) classifies the
    /// reason. Terminal for the watch.
    #[error("watch canceled by the server: {reason}")]
    WatchCanceled {
        /// The server's reason, as sent.
        reason: String,
    },
    /// A watch stream opened with require-leader lost its member's leader. Terminal for
    /// the watch.
    #[error("the member serving the watch has no leader (etcdserver: no leader)")]
    WatchNoLeader,
    /// A session's lease is gone, or a waiter's key in a lock or election queue is: the
    /// waiter fails with this instead of waiting for others (and never acquires
    /// afterwards). `loss` is the session's reason, or `None` when the key itself vanished
    /// (its lease was revoked or expired on the server before the session noticed, or
    /// someone deleted the key).
    #[error("session of lease {lease_id:x} expired{}", match .loss { Some(l) => format!(" ({l})"), None => " (its key is gone)".to_owned() })]
    SessionExpired {
        /// The session's lease.
        lease_id: i64,
        /// The session's reason, when it knows one.
        loss: Option<SessionLoss>,
    },
    /// A lock's `try_lock`: another session holds the lock.
    #[error("the lock is held by another session (key {owner:?})")]
    Locked {
        /// The holder's key.
        owner: Bytes,
    },
    /// A fenced election write failed: the leadership's key was deleted or recreated, so
    /// it no longer leads.
    #[error("not the leader: the leadership key was deleted or recreated")]
    NotLeader,
    /// A double barrier's `enter`: `count` participants had already entered, so this one
    /// withdrew.
    #[error("the barrier is full: {count} participants already entered")]
    BarrierFull {
        /// The barrier's count.
        count: usize,
    },
    /// With monotonic reads on, a member answered a read at a revision older than one this
    /// client has already seen (it fell behind the others, or was restored from an older
    /// snapshot). The read was sent on to another member; this error means none answered
    /// at `seen` or later. Nothing was applied.
    #[error(
        "stale read: the member answered at revision {revision}, older than revision {seen} this client has already seen"
    )]
    StaleRead {
        /// The revision the member answered at.
        revision: i64,
        /// The highest revision the client had seen.
        seen: i64,
    },
}

/// Whether a request that failed may still have taken effect on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Applied {
    /// The request certainly did not take effect: it never left the client, or the server
    /// rejected it before proposing it.
    No,
    /// The request may or may not have taken effect (for example it timed out after the
    /// server had proposed it, or the connection broke after it was sent). Writes that fail
    /// this way must not be retried blindly; read the key back to find out.
    Unknown,
}

/// The text of [`Error::Timeout`].
fn timeout_message(
    call: Option<&str>,
    limit: Option<std::time::Duration>,
    endpoints: &[String],
) -> String {
    let what = match (call, limit) {
        (Some(call), Some(limit)) => {
            format!("request timed out: {call} took longer than {limit:?}")
        }
        (Some(call), None) => format!("request timed out: {call}"),
        (None, Some(limit)) => format!("request timed out after {limit:?}"),
        (None, None) => "request timed out".to_owned(),
    };
    match endpoints {
        [] => what,
        [one] => format!("{what}, sent to {one}"),
        many => format!("{what}, sent to {}", many.join(", ")),
    }
}

impl Error {
    /// A [`Timeout`](Error::Timeout) of `call` after `limit`.
    pub fn timeout(call: &'static str, limit: std::time::Duration) -> Self {
        Error::Timeout {
            call: Some(call),
            limit: Some(limit),
            endpoints: Box::default(),
        }
    }

    /// Recovers a typed error from whatever a tower stack produced: an [`Error`], a
    /// `tonic::Status`, a tower timeout, or anything else (a transport failure: never sent
    /// when it carries [`NeverSent`](crate::transport::NeverSent), else with an unknown
    /// outcome unless a well-known cause says otherwise).
    pub fn from_boxed(error: BoxError) -> Self {
        let error = match error.downcast::<Error>() {
            Ok(e) => return *e,
            Err(e) => e,
        };
        let error = match error.downcast::<tonic::Status>() {
            Ok(status) => return Error::from(*status),
            Err(e) => e,
        };
        if error.is::<tower::timeout::error::Elapsed>() {
            return Error::Timeout {
                call: None,
                limit: None,
                endpoints: Box::default(),
            };
        }
        // Anything else failed below gRPC: classified as a transport failure, never sent
        // when it carries the transport's mark (or a foreign error says so).
        Error::from(tonic::Status::from_error(error))
    }

    /// Whether a write that failed with this error may have been applied by the server.
    ///
    /// Reads are never applied; for them the answer only says whether the request reached
    /// the server.
    pub fn applied(&self) -> Applied {
        match self {
            Error::InvalidRequest(_) => Applied::No,
            Error::Server(e) => e.applied(),
            Error::Timeout { .. } | Error::Protocol(_) | Error::ResponseTooLarge { .. } => {
                Applied::Unknown
            }
            Error::Transport { applied, .. } => *applied,
            // Refusals and endings of leases, watches, locks and elections: the call they
            // end changed nothing (a lock waiter's key is removed, a fenced write refused).
            Error::LeaseLost { .. }
            | Error::WatchCompacted { .. }
            | Error::WatchCanceled { .. }
            | Error::WatchNoLeader
            | Error::SessionExpired { .. }
            | Error::Locked { .. }
            | Error::NotLeader
            | Error::BarrierFull { .. }
            | Error::StaleRead { .. } => Applied::No,
        }
    }

    /// True when the outcome of a write that failed with this error is unknown: it may have
    /// been applied. Shorthand for `self.applied() == Applied::Unknown`.
    pub fn is_outcome_unknown(&self) -> bool {
        self.applied() == Applied::Unknown
    }

    /// True when a connection failed in its TLS handshake for a reason that trying again
    /// will not fix: the server's certificate is not trusted or does not name it, the
    /// server refused the client certificate (or wanted one and got none), or the server
    /// does not speak TLS. The error is an [`Error::Transport`] whose message says which,
    /// with [`Applied::No`]; retrying it is pointless.
    pub fn is_tls(&self) -> bool {
        match self {
            Error::Transport {
                source: Some(source),
                ..
            } => source.is::<status::TlsFailure>(),
            _ => false,
        }
    }

    /// The server error kind, when etcd answered with an error: an error status, or the
    /// reason it canceled a watch with (for example
    /// [`ServerErrorKind::PermissionDenied`] for a watch on a key the user may not read).
    pub fn server_kind(&self) -> Option<ServerErrorKind> {
        match self {
            Error::Server(e) => Some(e.kind()),
            Error::WatchCanceled { reason } => Some(status::parse_cancel_reason(reason).kind()),
            _ => None,
        }
    }

    /// The server's error behind this one: an error status as sent, or a watch's cancel
    /// reason (`rpc error: code = PermissionDenied desc = etcdserver: permission denied`,
    /// or a bare `etcdserver: ...` message) parsed and classified like a status.
    pub fn server_error(&self) -> Option<ServerError> {
        match self {
            Error::Server(e) => Some(e.clone()),
            Error::WatchCanceled { reason } => Some(status::parse_cancel_reason(reason)),
            _ => None,
        }
    }

    /// The compact revision, when a watch ended because its next revision was compacted.
    pub fn compact_revision(&self) -> Option<i64> {
        match self {
            Error::WatchCompacted { compact_revision } => Some(*compact_revision),
            _ => None,
        }
    }

    /// True when the server said a lease does not exist: a keep-alive reply with TTL 0 or
    /// a time-to-live of -1 ([`Error::LeaseLost`] with [`LossReason::NotFound`]), or an
    /// error status (`etcdserver: requested lease not found`, for example from a revoke).
    pub fn is_lease_not_found(&self) -> bool {
        match self {
            Error::LeaseLost { reason, .. } => *reason == LossReason::NotFound,
            _ => self.server_kind() == Some(ServerErrorKind::LeaseNotFound),
        }
    }

    /// True for [`Error::SessionExpired`].
    pub fn is_session_expired(&self) -> bool {
        matches!(self, Error::SessionExpired { .. })
    }

    /// The reason a request was rejected locally, when it was.
    pub fn invalid_request(&self) -> Option<&InvalidRequest> {
        match self {
            Error::InvalidRequest(e) => Some(e),
            _ => None,
        }
    }
}

/// Why the client refused to send a request. Nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// etcd keys may not be empty. Use a range helper (for example `all()`) to address
    /// every key.
    #[error("the key is empty (etcd keys must have at least one byte)")]
    EmptyKey,
    /// A transaction holds more compares or operations in one list than the server allows
    /// (etcd's `--max-txn-ops`, 128 by default).
    #[error("a transaction list holds {ops} entries, more than the limit of {limit}")]
    TooManyOps {
        /// The length of the longest list (compares, then-ops or else-ops).
        ops: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A transaction branch writes the same key twice, or puts a key that it also deletes.
    #[error("a transaction branch writes key {key:?} more than once")]
    DuplicateKey {
        /// The key written twice.
        key: Bytes,
    },
    /// `ignore_value` was set together with a value.
    #[error("a put with ignore_value must not carry a value")]
    ValueWithIgnoreValue,
    /// `ignore_lease` was set together with a lease.
    #[error("a put with ignore_lease must not carry a lease")]
    LeaseWithIgnoreLease,
    /// A lease ID must be positive (0 means "no lease").
    #[error("lease ID {0} is invalid: IDs are positive")]
    InvalidLeaseId(i64),
    /// A revision was negative.
    #[error("revision {0} is invalid: revisions are not negative")]
    NegativeRevision(i64),
    /// A numeric option was out of its range.
    #[error("{what} is {value}, out of range")]
    OutOfRange {
        /// Which option.
        what: &'static str,
        /// The value given.
        value: i64,
    },
    /// Any other malformed input, explained.
    #[error("{0}")]
    Other(Cow<'static, str>),
}

/// An error status returned by etcd, with a portable [`ServerErrorKind`].
#[derive(Clone, Debug, thiserror::Error)]
pub struct ServerError {
    code: tonic::Code,
    kind: ServerErrorKind,
    message: String,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "etcd error {:?} ({:?}): {}",
            self.kind, self.code, self.message
        )
    }
}

impl ServerError {
    /// Builds a server error from its gRPC code and message, classifying it.
    pub fn new(code: tonic::Code, message: impl Into<String>) -> Self {
        let message = message.into();
        let kind = ServerErrorKind::classify(code, &message);
        Self {
            code,
            kind,
            message,
        }
    }

    /// The portable kind of the error.
    pub fn kind(&self) -> ServerErrorKind {
        self.kind
    }

    /// The gRPC status code as sent.
    pub fn code(&self) -> tonic::Code {
        self.code
    }

    /// The status message as sent.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether a write that failed this way may have been applied.
    pub fn applied(&self) -> Applied {
        self.kind.applied()
    }
}

pub use session_loss::SessionLoss;
pub use status::ServerErrorKind;
