use super::Failover;

/// Builds a [`Failover`] over a list of members, each an `(endpoint, service)` pair, so
/// that it can sit in a [`tower::ServiceBuilder`] under a retry layer.
///
/// ```
/// use std::time::Duration;
/// use etcd_core::layer::{FailoverLayer, RetryLayer, RetryPolicy};
/// use etcd_core::grpc::GrpcKv;
///
/// # fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let members = ["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"]
///     .into_iter()
///     .map(|url| {
///         let channel = tonic::transport::Endpoint::from_static(url).connect_lazy();
///         (url.to_owned(), GrpcKv::new(channel))
///     })
///     .collect::<Vec<_>>();
/// let service = tower::ServiceBuilder::new()
///     .layer(RetryLayer::new(RetryPolicy::default(), Some(Duration::from_secs(5))))
///     .layer(FailoverLayer::new())
///     .service(members);
/// let kv = etcd_core::Kv::new(service);
/// # let _ = kv; Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FailoverLayer {
    start: Option<usize>,
}

impl FailoverLayer {
    /// Failover whose first call goes to a member chosen at random.
    pub fn new() -> Self {
        Self::default()
    }

    /// Failover whose first call goes to the member at `index` (see
    /// [`Failover::starting_at`]).
    pub fn starting_at(index: usize) -> Self {
        Self { start: Some(index) }
    }
}

impl<S> tower::Layer<Vec<(String, S)>> for FailoverLayer {
    type Service = Failover<S>;

    /// # Panics
    /// When `members` is empty, as [`Failover::new`].
    fn layer(&self, members: Vec<(String, S)>) -> Failover<S> {
        let failover = Failover::new(members);
        match self.start {
            Some(index) => failover.starting_at(index),
            None => failover,
        }
    }
}
