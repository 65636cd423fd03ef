//! The client's member endpoints: the connection to each, and every failover service over
//! them, kept in step when the list changes (by the caller, or by following the cluster's
//! member list).

use std::sync::{Arc, Mutex, MutexGuard};

use etcd_core::{Error, InvalidRequest, Result};

use crate::member_transport::AuthedTransport;
use etcd_core::layer::Failover;

type Connect = dyn Fn(&str) -> Result<AuthedTransport> + Send + Sync;
type Update = dyn Fn(&[(String, AuthedTransport)]) + Send + Sync;

/// The endpoints and their connections, shared by every clone of a client.
#[derive(Clone)]
pub(crate) struct Endpoints {
    inner: Arc<Inner>,
}

struct Inner {
    connect: Box<Connect>,
    state: Mutex<State>,
}

struct State {
    current: Vec<(String, AuthedTransport)>,
    updates: Vec<Box<Update>>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Endpoints").field(&self.list()).finish()
    }
}

fn no_endpoints() -> Error {
    Error::InvalidRequest(InvalidRequest::Other(
        "no endpoints given: name at least one member, such as http://127.0.0.1:2379".into(),
    ))
}

impl Endpoints {
    /// Connections (made lazily) to `addresses`.
    pub(crate) fn new(
        addresses: Vec<String>,
        connect: impl Fn(&str) -> Result<AuthedTransport> + Send + Sync + 'static,
    ) -> Result<Self> {
        let current = addresses
            .into_iter()
            .map(|address| connect(&address).map(|t| (address, t)))
            .collect::<Result<Vec<_>>>()?;
        if current.is_empty() {
            return Err(no_endpoints());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                connect: Box::new(connect),
                state: Mutex::new(State {
                    current,
                    updates: Vec::new(),
                }),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A failover service over `make(transport)` for every endpoint, kept in step with
    /// later changes of the list.
    pub(crate) fn failover<S: Send + Sync + 'static>(
        &self,
        make: impl Fn(AuthedTransport) -> S + Send + Sync + 'static,
    ) -> Failover<S> {
        let mut state = self.state();
        let build = move |members: &[(String, AuthedTransport)]| {
            members
                .iter()
                .map(|(address, transport)| (address.clone(), make(transport.clone())))
                .collect::<Vec<_>>()
        };
        let failover = Failover::new(build(&state.current));
        let handle = failover.clone();
        state.updates.push(Box::new(move |members| {
            handle.set_members(build(members));
        }));
        failover
    }

    /// The endpoints, in order.
    pub(crate) fn list(&self) -> Vec<String> {
        self.state()
            .current
            .iter()
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Replaces the endpoints. Connections to endpoints that stay are kept; new ones are
    /// made lazily. An empty or invalid list fails with [`Error::InvalidRequest`] and
    /// changes nothing.
    pub(crate) fn set(&self, addresses: impl IntoIterator<Item = String>) -> Result<()> {
        let mut state = self.state();
        let next = addresses
            .into_iter()
            .map(|address| {
                let address = address.trim().to_owned();
                match state.current.iter().find(|(a, _)| *a == address) {
                    Some((_, transport)) => Ok((address, transport.clone())),
                    None => (self.inner.connect)(&address).map(|t| (address, t)),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if next.is_empty() {
            return Err(no_endpoints());
        }
        if next
            .iter()
            .map(|(a, _)| a)
            .eq(state.current.iter().map(|(a, _)| a))
        {
            return Ok(());
        }
        tracing::debug!(endpoints = ?next.iter().map(|(a, _)| a).collect::<Vec<_>>(), "endpoints changed");
        state.current = next;
        let state = &*state;
        for update in &state.updates {
            update(&state.current);
        }
        Ok(())
    }
}
