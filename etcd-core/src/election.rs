//! The server-side Election service (`v3election`): etcd runs the election recipe
//! itself; the client campaigns, proclaims, resigns, reads and observes the leader.
//!
//! The facade's client-side `concurrency::Election` gives the same elections (same keys,
//! `{name}/{lease:x}`) with fencing helpers and cancel-safety; this is the thin second
//! way. Proclaim and resign are fenced by the server on the leader key's revision.

use etcd_proto::v3electionpb as pb;

use crate::error::{InvalidRequest, Result};
use crate::key::IntoBytes;
use crate::lock::call;
use crate::namespace::{Prefix, PrefixKeys};
use crate::stream::ResponseStream;

/// The request of `Observe`: the same message as `Leader`'s, under its own type so that
/// one service can answer both (`Leader` with one response, `Observe` with a stream).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObserveRequest(pub pb::LeaderRequest);

impl PrefixKeys for ObserveRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        self.0.prefix_keys(prefix);
    }
}

crate::service::service_alias! {
    /// etcd's Election service as tower services of its request messages (`Observe` as
    /// [`ObserveRequest`], answered with a stream). [`GrpcElection`](crate::grpc::GrpcElection)
    /// implements it.
    ElectionService {
        pb::CampaignRequest => pb::CampaignResponse,
        pb::ProclaimRequest => pb::ProclaimResponse,
        pb::LeaderRequest => pb::LeaderResponse,
        pb::ResignRequest => pb::ResignResponse,
        ObserveRequest => ResponseStream<pb::LeaderResponse>,
    }
}

/// A handle on etcd's server-side Election service. Cheap to clone.
///
/// ```no_run
/// # async fn example<S: etcd_core::election::ElectionService>(elections: etcd_core::election::ElectionHandle<S>, lease: i64) -> etcd_core::Result<()> {
/// let won = elections.campaign("elections/leader", lease, "node-1").await?;
/// let leader = won.leader.unwrap_or_default();
/// elections.proclaim(leader.clone(), "node-1:v2").await?;
/// elections.resign(leader).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ElectionHandle<S> {
    service: S,
}

impl<S: ElectionService> ElectionHandle<S> {
    /// A handle over `service`.
    pub fn new(service: S) -> Self {
        Self { service }
    }

    /// Campaigns in election `name` with `lease` (kept alive by the caller) and `value`;
    /// resolves when elected, with the leader key to proclaim and resign with.
    pub async fn campaign(
        &self,
        name: impl IntoBytes,
        lease: i64,
        value: impl IntoBytes,
    ) -> Result<pb::CampaignResponse> {
        let name = non_empty(name)?;
        let request = pb::CampaignRequest {
            name,
            lease,
            value: value.into_bytes(),
        };
        call(self.service.clone(), request).await
    }

    /// Publishes a new value as the leader `leader` (fails with the server's
    /// `election: not leader` when it no longer leads).
    pub async fn proclaim(
        &self,
        leader: pb::LeaderKey,
        value: impl IntoBytes,
    ) -> Result<pb::ProclaimResponse> {
        let request = pb::ProclaimRequest {
            leader: Some(leader),
            value: value.into_bytes(),
        };
        call(self.service.clone(), request).await
    }

    /// The current leader of election `name` (fails when there is none).
    pub async fn leader(&self, name: impl IntoBytes) -> Result<pb::LeaderResponse> {
        let name = non_empty(name)?;
        call(self.service.clone(), pb::LeaderRequest { name }).await
    }

    /// Steps down as `leader`.
    pub async fn resign(&self, leader: pb::LeaderKey) -> Result<pb::ResignResponse> {
        let request = pb::ResignRequest {
            leader: Some(leader),
        };
        call(self.service.clone(), request).await
    }

    /// The leader of election `name` each time it changes, as a stream.
    pub async fn observe(
        &self,
        name: impl IntoBytes,
    ) -> Result<ResponseStream<pb::LeaderResponse>> {
        let name = non_empty(name)?;
        call(
            self.service.clone(),
            ObserveRequest(pb::LeaderRequest { name }),
        )
        .await
    }
}

fn non_empty(name: impl IntoBytes) -> Result<bytes::Bytes> {
    let name = name.into_bytes();
    if name.is_empty() {
        return Err(InvalidRequest::EmptyKey.into());
    }
    Ok(name)
}
