//! The members a call was sent to, recorded by failover for the retry layer above it, so
//! that a call that times out can say where it waited.

use std::sync::{Arc, Mutex};

tokio::task_local! {
    static TRIED: Tried;
}

/// The endpoints one call was sent to, in order, each once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tried(Arc<Mutex<Vec<String>>>);

impl Tried {
    /// Runs `call` with this record visible to the layers below (see [`record`]).
    pub(crate) async fn scope<F: std::future::Future>(&self, call: F) -> F::Output {
        TRIED.scope(self.clone(), call).await
    }

    /// The endpoints recorded so far.
    pub(crate) fn endpoints(&self) -> Box<[String]> {
        lock(&self.0).clone().into_boxed_slice()
    }
}

/// Notes that the current call is being sent to `endpoint`; nothing outside a
/// [`Tried::scope`].
pub(crate) fn record(endpoint: &str) {
    let _ = TRIED.try_with(|tried| {
        let mut list = lock(&tried.0);
        if !list.iter().any(|e| e == endpoint) {
            list.push(endpoint.to_owned());
        }
    });
}

fn lock(list: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    list.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
