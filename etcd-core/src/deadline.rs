//! Per-request timeouts: a deadline set on one call, visible to the layers below it.
//!
//! Awaiting a request builder with `.timeout(d)` bounds that call by `d` and makes `d`
//! visible to the tower layers it passes through during the call ([`current`]), so a layer
//! that applies a default deadline (the facade's retry layer) uses the call's own instead.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};

tokio::task_local! {
    static CALL_TIMEOUT: Duration;
}

/// The timeout of the call being made, when it set one.
pub fn current() -> Option<Duration> {
    CALL_TIMEOUT.try_with(|timeout| *timeout).ok()
}

/// Runs `call` with `timeout` as its deadline, visible through [`current`].
pub(crate) async fn scoped<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    CALL_TIMEOUT
        .scope(timeout, async move {
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or(Err(Error::timeout("the call (its own timeout)", timeout)))
        })
        .await
}
