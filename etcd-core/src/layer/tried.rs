//! The members a call was sent to, recorded by failover for the retry layer above it, so
//! that a call that times out can say where it waited.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

tokio::task_local! {
    /// The endpoints the current call was sent to, in order, each once.
    static TRIED: RefCell<Vec<Arc<str>>>;
}

/// Runs `call` for at most `limit`, with a record of the members it is sent to visible to
/// the layers below (see [`record`]). When the limit passes first, the call is dropped
/// and the members it was sent to are the error.
pub(crate) async fn within<F: Future>(
    limit: Duration,
    call: F,
) -> Result<F::Output, Box<[String]>> {
    let scoped = TRIED.scope(RefCell::new(Vec::new()), call);
    tokio::pin!(scoped);
    match tokio::time::timeout(limit, &mut scoped).await {
        Ok(output) => Ok(output),
        Err(_) => Err(scoped
            .as_mut()
            .take_value()
            .map(|tried| tried.into_inner().iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()),
    }
}

/// Notes that the current call is being sent to `endpoint`; nothing outside
/// [`within`].
pub(crate) fn record(endpoint: &Arc<str>) {
    let _ = TRIED.try_with(|tried| {
        let mut list = tried.borrow_mut();
        if !list.iter().any(|e| e == endpoint) {
            list.push(Arc::clone(endpoint));
        }
    });
}
