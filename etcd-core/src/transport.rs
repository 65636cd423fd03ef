//! The wire tier: what can carry etcd's gRPC calls.

use bytes::Bytes;
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic::codegen::StdError;

/// Anything that can carry etcd's gRPC calls: a tonic `Channel`, a `Channel` wrapped in
/// tower layers, a hyper client, or an in-memory server.
///
/// This is a trait alias: every type with the right bounds implements it.
pub trait GrpcTransport:
    GrpcService<
        Body,
        Error: Into<StdError>,
        ResponseBody: http_body::Body<Data = Bytes, Error: Into<StdError> + Send> + Send + 'static,
        Future: Send,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> GrpcTransport for T where
    T: GrpcService<
            Body,
            Error: Into<StdError>,
            ResponseBody: http_body::Body<Data = Bytes, Error: Into<StdError> + Send>
                              + Send
                              + 'static,
            Future: Send,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// The mark of a transport error whose request certainly never reached the server: the
/// connection could not be made, or it closed (or the server refused the stream) before
/// the request was written or acted on.
///
/// A transport puts it in the chain of causes of the error it returns (as the error itself,
/// as a source, or inside an `std::io::Error`), and etcd-core then classifies the failure
/// as [`Applied::No`](crate::Applied::No) by this type alone, whatever the cause says:
/// such a request may be sent again, even a write. Without the mark a broken call's outcome
/// is unknown, unless a well-known error of tonic or hyper below says otherwise.
///
/// One exception keeps the mark's text: an I/O error that crosses h2 (tonic's HTTP/2)
/// reaches the caller as its kind and message only, so a marked I/O error under tonic's
/// channel is recognised by [`NeverSent::TEXT`], which its message starts with.
///
/// ```
/// use etcd_core::transport::NeverSent;
/// let refused = std::io::Error::other("no route to the member");
/// let status = tonic::Status::from_error(Box::new(NeverSent::new(refused)));
/// let error = etcd_core::Error::from(status);
/// assert_eq!(error.applied(), etcd_core::Applied::No);
/// ```
#[derive(Debug)]
pub struct NeverSent {
    cause: crate::BoxError,
}

impl NeverSent {
    /// What the mark's message starts with.
    pub const TEXT: &'static str = "request never sent: ";

    /// Marks `cause` as the failure of a request that was never sent.
    pub fn new(cause: impl Into<crate::BoxError>) -> Self {
        Self {
            cause: cause.into(),
        }
    }

    /// The transport's own error.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.cause
    }
}

impl std::fmt::Display for NeverSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::TEXT, self.cause)
    }
}

impl std::error::Error for NeverSent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

/// Whether `error` is, or carries in an `std::io::Error`, the [`NeverSent`] mark (an I/O
/// error flattened by h2 by its text: see [`NeverSent`]).
pub(crate) fn is_never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    error.is::<NeverSent>()
        || error.downcast_ref::<std::io::Error>().is_some_and(|io| {
            io.get_ref().is_some_and(|inner| inner.is::<NeverSent>())
                || io.to_string().starts_with(NeverSent::TEXT)
        })
}
