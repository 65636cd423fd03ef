//! etcd v3 leases.
