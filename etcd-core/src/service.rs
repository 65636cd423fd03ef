//! The macro behind the service trait aliases (`KvService`, `LeaseService`, ...).

/// Declares a trait alias for "a cloneable tower service of each of these request messages,
/// answering with these responses", and implements it for every type that qualifies.
macro_rules! service_alias {
    ($(#[$meta:meta])* $name:ident { $($request:ty => $response:ty),+ $(,)? }) => {
        $(#[$meta])*
        ///
        /// This is a trait alias: every type with the right bounds implements it.
        pub trait $name:
            $(tower::Service<$request, Response = $response, Error: Into<$crate::BoxError>, Future: Send> +)+
            Clone + Send + Sync + 'static
        {
        }

        impl<S> $name for S where
            S: $(tower::Service<$request, Response = $response, Error: Into<$crate::BoxError>, Future: Send> +)+
                Clone + Send + Sync + 'static
        {
        }
    };
}
pub(crate) use service_alias;
