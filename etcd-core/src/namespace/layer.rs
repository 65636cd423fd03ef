//! [`NamespaceLayer`]: a tower layer wrapping services in a [`Namespace`].

use super::Namespace;
use super::keys::Prefix;
use crate::key::IntoBytes;

/// A tower [`Layer`](tower::Layer) that puts every key of the services it wraps under one
/// prefix; see the [module documentation](super) for an example.
#[derive(Clone, Debug)]
pub struct NamespaceLayer {
    prefix: Prefix,
}

impl NamespaceLayer {
    /// A layer for the namespace of keys starting with `prefix`.
    pub fn new(prefix: impl IntoBytes) -> Self {
        Self {
            prefix: Prefix::new(prefix),
        }
    }

    /// The namespace's prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }
}

impl<S> tower::Layer<S> for NamespaceLayer {
    type Service = Namespace<S>;

    fn layer(&self, inner: S) -> Namespace<S> {
        Namespace::with_prefix(inner, self.prefix.clone())
    }
}
