//! Cluster membership: list, add (as a voter or a learner), remove, update and promote
//! members.
//!
//! [`Cluster`] is a cheap-to-clone handle over any [`ClusterService`]. Each method returns a
//! [`Call`]; await it to send it. Membership changes need a quorum and go through the
//! leader (any member forwards them).
//!
//! ```no_run
//! # async fn example<S: etcd_core::cluster::ClusterService>(cluster: etcd_core::cluster::Cluster<S>) -> etcd_core::Result<()> {
//! for member in cluster.members().await?.members() {
//!     println!("{:x} {} {:?}", member.id(), member.name(), member.client_urls());
//! }
//! let added = cluster.add_learner(["http://10.0.0.4:2380"]).await?;
//! let id = added.member().id();
//! // ... start the new member with --initial-cluster-state=existing, let it catch up ...
//! cluster.promote(id).await?;
//! # Ok(()) }
//! ```

use etcd_proto::etcdserverpb as pb;

use crate::call::{Call, invalid};
use crate::error::{Error, Result};
use crate::future::FromResponse;
use crate::kv::ResponseHeader;

crate::service::service_alias! {
    /// etcd's Cluster service as tower services of its request messages: `MemberList`,
    /// `MemberAdd`, `MemberRemove`, `MemberUpdate` and `MemberPromote`.
    /// [`GrpcCluster`](crate::grpc::GrpcCluster) implements it, and so does any stack of
    /// tower layers over it whose error converts into a boxed error.
    ClusterService {
        pb::MemberListRequest => pb::MemberListResponse,
        pb::MemberAddRequest => pb::MemberAddResponse,
        pb::MemberRemoveRequest => pb::MemberRemoveResponse,
        pb::MemberUpdateRequest => pb::MemberUpdateResponse,
        pb::MemberPromoteRequest => pb::MemberPromoteResponse,
    }
}

/// Lists the members; add [`linearizable`](Call::linearizable) for a list that reflects
/// every committed change.
pub type MemberList<S> = Call<S, pb::MemberListRequest, MembersResponse>;

/// Adds a member; add [`as_learner`](Call::as_learner) for a non-voting learner.
pub type MemberAdd<S> = Call<S, pb::MemberAddRequest, MemberAddResponse>;

impl<S> Call<S, pb::MemberListRequest, MembersResponse> {
    /// Makes the member answer only after it has caught up with the leader, so the list
    /// reflects every committed membership change. etcd 3.5 and later; etcd 3.4 ignores it
    /// and answers from the member's local view.
    pub fn linearizable(self) -> Self {
        self.map_request(|r| r.linearizable = true)
    }
}

impl<S> Call<S, pb::MemberAddRequest, MemberAddResponse> {
    /// Adds the member as a learner: it receives the log but does not vote, and does not
    /// count towards the quorum, until it is [promoted](Cluster::promote).
    pub fn as_learner(self) -> Self {
        self.map_request(|r| r.is_learner = true)
    }
}

/// A handle on etcd's Cluster service. Cheap to clone; every method takes `&self`.
#[derive(Clone, Debug)]
pub struct Cluster<S> {
    service: S,
}

impl<S: ClusterService> Cluster<S> {
    /// A handle over `service`.
    pub fn new(service: S) -> Self {
        Self { service }
    }

    /// Lists the members, learners included (see [`Member::is_learner`]).
    pub fn members(&self) -> MemberList<S> {
        Call::new(
            self.service.clone(),
            Ok(pb::MemberListRequest {
                linearizable: false,
            }),
        )
    }

    /// Adds a voting member that will be reached at `peer_urls`. The new member must then
    /// be started with `--initial-cluster-state=existing`. Until it is, the cluster's
    /// quorum counts it: add a [learner](Self::add_learner) to stay safe.
    ///
    /// An empty list, or a URL that is not `scheme://host:port`, fails with
    /// [`Error::InvalidRequest`] before anything is sent.
    pub fn add<I>(&self, peer_urls: I) -> MemberAdd<S>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let request = peer_urls_checked(peer_urls).map(|peer_ur_ls| pb::MemberAddRequest {
            peer_ur_ls,
            is_learner: false,
        });
        Call::new(self.service.clone(), request)
    }

    /// Adds a learner: a member that receives the log without voting, and can be
    /// [promoted](Self::promote) once it has caught up.
    pub fn add_learner<I>(&self, peer_urls: I) -> MemberAdd<S>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.add(peer_urls).as_learner()
    }

    /// Removes the member with ID `id`.
    pub fn remove(&self, id: u64) -> Call<S, pb::MemberRemoveRequest, MembersResponse> {
        let request = member_id(id).map(|id| pb::MemberRemoveRequest { id });
        Call::new(self.service.clone(), request)
    }

    /// Changes the peer URLs of the member with ID `id`.
    pub fn update<I>(
        &self,
        id: u64,
        peer_urls: I,
    ) -> Call<S, pb::MemberUpdateRequest, MembersResponse>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let request = member_id(id).and_then(|id| {
            peer_urls_checked(peer_urls)
                .map(|peer_ur_ls| pb::MemberUpdateRequest { id, peer_ur_ls })
        });
        Call::new(self.service.clone(), request)
    }

    /// Promotes the learner with ID `id` to a voting member. etcd refuses (with
    /// [`ServerErrorKind::Membership`](crate::ServerErrorKind::Membership)) to promote a
    /// learner that has not caught up with the leader, or a member that is not a learner.
    pub fn promote(&self, id: u64) -> Call<S, pb::MemberPromoteRequest, MembersResponse> {
        let request = member_id(id).map(|id| pb::MemberPromoteRequest { id });
        Call::new(self.service.clone(), request)
    }
}

/// Member IDs are never 0.
fn member_id(id: u64) -> Result<u64> {
    if id == 0 {
        return Err(invalid(
            "member ID 0 is invalid: etcd member IDs are never 0",
        ));
    }
    Ok(id)
}

/// Checks a list of peer URLs: at least one, each `scheme://host:port` with no path.
fn peer_urls_checked<I>(urls: I) -> Result<Vec<String>>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
    if urls.is_empty() {
        return Err(invalid("no peer URLs given: a member needs at least one"));
    }
    for url in &urls {
        let bad = |why: &str| invalid(format!("peer URL {url:?} is invalid: {why}"));
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http" | "https" | "unix" | "unixs") => {}
            _ => return Err(bad("the scheme must be http or https")),
        }
        let Some(authority) = uri.authority() else {
            return Err(bad("no host"));
        };
        if authority.port().is_none() {
            return Err(bad("no port"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("a peer URL has no path"));
        }
    }
    Ok(urls)
}

/// A member of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Member {
    id: u64,
    name: String,
    peer_urls: Vec<String>,
    client_urls: Vec<String>,
    is_learner: bool,
}

impl Member {
    /// The member's ID (etcd prints it in hexadecimal).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The member's name; empty for a member that was added but has not started yet.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URLs the other members reach it at.
    pub fn peer_urls(&self) -> &[String] {
        &self.peer_urls
    }

    /// The URLs clients reach it at; empty for a member that has not started yet.
    pub fn client_urls(&self) -> &[String] {
        &self.client_urls
    }

    /// True for a learner: a non-voting member.
    pub fn is_learner(&self) -> bool {
        self.is_learner
    }

    /// True once the member has started and published its name and client URLs.
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Self {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_ur_ls,
            client_urls: m.client_ur_ls,
            is_learner: m.is_learner,
        }
    }
}

/// The member list, as answered by a list, remove, update or promote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembersResponse {
    header: ResponseHeader,
    members: Vec<Member>,
}

impl MembersResponse {
    /// The response header; `header().member_id` is the member that answered.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The members after the call, learners included.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Takes the members.
    pub fn into_members(self) -> Vec<Member> {
        self.members
    }

    /// The member with ID `id`, if it is in the list.
    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
}

macro_rules! members_from {
    ($($pb:ty),*) => {$(
        impl FromResponse<$pb> for MembersResponse {
            fn from_response(r: $pb) -> Result<Self> {
                Ok(Self {
                    header: r.header.into(),
                    members: r.members.into_iter().map(Member::from).collect(),
                })
            }
        }
    )*};
}
members_from!(
    pb::MemberListResponse,
    pb::MemberRemoveResponse,
    pb::MemberUpdateResponse,
    pb::MemberPromoteResponse
);

/// The answer to adding a member: the new member and the list after the change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberAddResponse {
    header: ResponseHeader,
    member: Member,
    members: Vec<Member>,
}

impl MemberAddResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The member added, with its new ID.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// The members after the change, the new one included.
    pub fn members(&self) -> &[Member] {
        &self.members
    }
}

impl FromResponse<pb::MemberAddResponse> for MemberAddResponse {
    fn from_response(r: pb::MemberAddResponse) -> Result<Self> {
        let member = r
            .member
            .ok_or_else(|| Error::Protocol("member add response without the member".into()))?;
        Ok(Self {
            header: r.header.into(),
            member: member.into(),
            members: r.members.into_iter().map(Member::from).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked() {
        assert!(peer_urls_checked(["http://127.0.0.1:2380"]).is_ok());
        assert!(peer_urls_checked(["https://node-1:2380", "http://[::1]:2380"]).is_ok());
        for bad in [
            "",
            "127.0.0.1:2380",
            "http://host",
            "ftp://h:1",
            "http://h:1/x",
        ] {
            assert!(peer_urls_checked([bad]).is_err(), "{bad}");
        }
        assert!(peer_urls_checked(Vec::<String>::new()).is_err());
        assert!(member_id(0).is_err());
    }
}
