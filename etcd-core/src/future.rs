//! The future returned when a request builder is awaited: no allocation of its own.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

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
        state: State<F>,
        _response: PhantomData<fn() -> T>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F> {
        Rejected { error: Option<Error> },
        Sent { #[pin] call: F },
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
        }
    }
}
