//! The server-side Election service (`v3electionpb.Election`) over gRPC.

use etcd_proto::v3electionpb as pb;
use futures_util::StreamExt;
use pb::election_client::ElectionClient;

use super::{DEFAULT_MAX_RESPONSE_SIZE, max_response_size, unary_service};
use crate::election::ObserveRequest;
use crate::stream::ResponseStream;
use crate::transport::GrpcTransport;

/// etcd's Election service over a gRPC transport: `Service<CampaignRequest>`,
/// `Service<ProclaimRequest>`, `Service<LeaderRequest>`, `Service<ResignRequest>`, and
/// `Service<`[`ObserveRequest`]`>` answering with the stream of leader changes. It
/// implements [`ElectionService`](crate::election::ElectionService).
#[derive(Clone, Debug)]
pub struct GrpcElection<T> {
    inner: ElectionClient<T>,
}

impl<T: GrpcTransport> GrpcElection<T> {
    /// Wraps a transport, accepting responses up to [`DEFAULT_MAX_RESPONSE_SIZE`] bytes
    /// (see `max_response_size`).
    pub fn new(transport: T) -> Self {
        Self {
            inner: ElectionClient::new(transport)
                .max_decoding_message_size(DEFAULT_MAX_RESPONSE_SIZE),
        }
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &ElectionClient<T> {
        &self.inner
    }
}

max_response_size!(GrpcElection);

unary_service!(
    GrpcElection,
    pb::CampaignRequest,
    pb::CampaignResponse,
    campaign
);
unary_service!(
    GrpcElection,
    pb::ProclaimRequest,
    pb::ProclaimResponse,
    proclaim
);
unary_service!(GrpcElection, pb::LeaderRequest, pb::LeaderResponse, leader);
unary_service!(GrpcElection, pb::ResignRequest, pb::ResignResponse, resign);

impl<T: GrpcTransport> tower::Service<ObserveRequest> for GrpcElection<T> {
    type Response = ResponseStream<pb::LeaderResponse>;
    type Error = crate::Error;
    type Future = futures_util::future::BoxFuture<'static, crate::Result<Self::Response>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<crate::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ObserveRequest) -> Self::Future {
        let mut client = self.inner.clone();
        Box::pin(async move {
            let responses = client
                .observe(request.0)
                .await
                .map_err(crate::Error::from)?
                .into_inner();
            Ok(responses
                .map(|item| item.map_err(crate::Error::from))
                .boxed())
        })
    }
}
