//! The etcd v3 client facade.
