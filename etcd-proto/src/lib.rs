//! Protobuf messages and gRPC clients of the etcd v3 API.
