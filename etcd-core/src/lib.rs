//! Transport-agnostic core of the etcd v3 client.
