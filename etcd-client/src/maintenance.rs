//! Maintenance: status, alarms, defragmentation, hashes, leadership transfer and snapshots,
//! for the cluster or aimed at one chosen member.
//!
//! [`Maintenance`] (from [`Client::maintenance`](crate::Client::maintenance)) dereferences
//! to the `etcd-core` handle, whose calls go to any member with failover. Calls about one
//! member in particular go through [`Maintenance::member`] or the `*_of` shorthands:
//!
//! ```no_run
//! # async fn example(client: etcd3::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let m = client.maintenance();
//! for endpoint in client.endpoints() {
//!     let status = m.status_of(&endpoint).await?;
//!     println!("{endpoint}: leader {:x}, db {} bytes", status.leader(), status.db_size());
//! }
//! m.defragment_of("http://127.0.0.1:2379").await?;
//! let mut backup = Vec::new();
//! m.snapshot_to(&mut backup).await?; // any member; sha256 trailer verified
//! # Ok(()) }
//! ```

use std::ops::Deref;

use etcd_core::call::Call;
use etcd_core::grpc::GrpcMaintenance;
use etcd_core::proto::etcdserverpb as pb;
use etcd_core::{Error, InvalidRequest, Result};

pub use etcd_core::maintenance::*;

use crate::auth_session::{AuthSession, Reauth};
use crate::member_transport::AuthedTransport;
use crate::services::{MaintenanceStack, MemberMaintenanceStack};
use etcd_core::layer::Failover;

/// The maintenance handle of one member: every call goes to that member, without failover.
pub type MemberMaintenance = etcd_core::Maintenance<MemberMaintenanceStack>;

/// A maintenance call aimed at one member.
pub type MemberCall<R, T> = Call<MemberMaintenanceStack, R, T>;

/// The maintenance handle of a [`Client`](crate::Client).
///
/// It dereferences to an `etcd_core::Maintenance` whose calls are spread over the members
/// with failover: right for alarms, hash and snapshots of any member. Status,
/// defragment and hash-kv of a chosen member, and moving the leadership (which must be
/// sent to the leader), go through [`member`](Self::member) or the `*_of` methods.
#[derive(Clone, Debug)]
pub struct Maintenance {
    any: etcd_core::Maintenance<MaintenanceStack>,
    members: Failover<GrpcMaintenance<AuthedTransport>>,
    session: AuthSession,
}

impl Deref for Maintenance {
    type Target = etcd_core::Maintenance<MaintenanceStack>;

    fn deref(&self) -> &Self::Target {
        &self.any
    }
}

impl Maintenance {
    pub(crate) fn new(
        members: Failover<GrpcMaintenance<AuthedTransport>>,
        session: AuthSession,
    ) -> Self {
        Self {
            any: etcd_core::Maintenance::new(MaintenanceStack(Reauth::new(
                members.clone(),
                session.clone(),
            ))),
            members,
            session,
        }
    }

    /// One member's service, with re-authentication.
    fn one(&self, service: &GrpcMaintenance<AuthedTransport>) -> MemberMaintenanceStack {
        MemberMaintenanceStack(Reauth::new(service.clone(), self.session.clone()))
    }

    /// The maintenance handle of the member at `endpoint`, one of the client's endpoints
    /// (with or without `http://`). An endpoint the client was not given fails with
    /// [`Error::InvalidRequest`].
    pub fn member(&self, endpoint: &str) -> Result<MemberMaintenance> {
        self.members
            .member(endpoint)
            .map(|service| etcd_core::Maintenance::new(self.one(&service)))
            .ok_or_else(|| unknown_endpoint(endpoint, &self.members))
    }

    /// The status of the member at `endpoint`.
    pub fn status_of(&self, endpoint: &str) -> MemberCall<pb::StatusRequest, StatusResponse> {
        self.aim(endpoint, |m| m.status())
    }

    /// Defragments the backend of the member at `endpoint` (it serves nothing else
    /// meanwhile).
    pub fn defragment_of(&self, endpoint: &str) -> MemberCall<pb::DefragmentRequest, AckResponse> {
        self.aim(endpoint, |m| m.defragment())
    }

    /// The hash of the key-value history up to `revision` (0 for the latest) on the
    /// member at `endpoint`.
    pub fn hash_kv_of(
        &self,
        endpoint: &str,
        revision: i64,
    ) -> MemberCall<pb::HashKvRequest, HashKvResponse> {
        self.aim(endpoint, |m| m.hash_kv(revision))
    }

    /// Makes a call on the member at `endpoint`, or one that fails with the unknown
    /// endpoint when awaited.
    fn aim<R, T>(
        &self,
        endpoint: &str,
        call: impl FnOnce(&MemberMaintenance) -> MemberCall<R, T>,
    ) -> MemberCall<R, T> {
        match self.member(endpoint) {
            Ok(member) => call(&member),
            Err(error) => {
                // Never sent: any member's service stands in.
                let (_, service) = self.members.members().swap_remove(0);
                Call::new(self.one(&service), Err(error))
            }
        }
    }
}

fn unknown_endpoint(endpoint: &str, members: &Failover<GrpcMaintenance<AuthedTransport>>) -> Error {
    let known = members.endpoints();
    Error::InvalidRequest(InvalidRequest::Other(
        format!("{endpoint} is not one of the client's endpoints {known:?}").into(),
    ))
}
