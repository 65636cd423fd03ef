//! The future returned when a request builder is awaited: no allocation of its own.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::time::Duration;

use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;

use crate::error::{BoxError, Error, Result};

/// Turns a wire response into the typed response of a builder.
pub trait FromResponse<R>: Sized {
    /// Converts, failing with [`Error::Protocol`] when the response is malformed.
    fn from_response(response: R) -> Result<Self>;
}

pin_project! {
    /// A call in flight: the service's future mapped to a typed response, or an error
    /// found while validating the request (in which case nothing was sent).
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, T> {
        #[pin]
        state: State<F, T>,
        _response: PhantomData<fn() -> T>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, T> {
        Rejected { error: Option<Error> },
        Sent { #[pin] call: F },
        Timed { call: BoxFuture<'static, Result<T>> },
    }
}

impl<F, T> std::fmt::Debug for State<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Rejected { error } => f.debug_struct("Rejected").field("error", error).finish(),
            State::Sent { .. } => f.write_str("Sent"),
            State::Timed { .. } => f.write_str("Timed"),
        }
    }
}

impl<F, T> ResponseFuture<F, T> {
    /// A future that resolves to the validation error at once.
    pub fn rejected(error: Error) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
            _response: PhantomData,
        }
    }

    /// A future driving a call.
    pub fn sent(call: F) -> Self {
        Self {
            state: State::Sent { call },
            _response: PhantomData,
        }
    }

    /// A future driving a call with its own deadline (see [`crate::deadline`]).
    pub fn timed<R, E>(timeout: Duration, call: F) -> Self
    where
        F: Future<Output = Result<R, E>> + Send + 'static,
        E: Into<BoxError>,
        T: FromResponse<R> + Send + 'static,
    {
        let call = crate::deadline::scoped(timeout, async move {
            match call.await {
                Ok(response) => T::from_response(response),
                Err(e) => Err(Error::from_boxed(e.into())),
            }
        });
        Self {
            state: State::Timed {
                call: Box::pin(call),
            },
            _response: PhantomData,
        }
    }
}

impl<F, R, E, T> Future for ResponseFuture<F, T>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    T: FromResponse<R>,
{
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Rejected { error } => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                Error::Protocol("response future polled after completion".into())
            }))),
            StateProj::Sent { call } => call.poll(cx).map(|result| match result {
                Ok(response) => T::from_response(response),
                Err(e) => Err(Error::from_boxed(e.into())),
            }),
            StateProj::Timed { call } => call.as_mut().poll(cx),
        }
    }
}
