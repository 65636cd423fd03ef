//! etcd v3 watchs.
