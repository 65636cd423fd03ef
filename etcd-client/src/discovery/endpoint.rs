//! What a registration stores: an address and metadata, as JSON in the shape of the Go
//! client's `naming/endpoints` (`{"Op":0,"Addr":"10.0.0.1:50051","Metadata":…}`), so that
//! Go and Rust services can find each other.

use serde_json::{Map, Value};

/// Go's `endpoints.Operation`: the value of a key that is (still) registered.
const OP_ADD: u64 = 0;
/// Go's `endpoints.Operation` of a removal (written by older Go resolvers).
const OP_DELETE: u64 = 1;

/// One instance of a service: where to reach it, and what it says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The address to connect to, as the instance registered it (`host:port`, or a URL).
    pub addr: String,
    /// Anything else the instance publishes (weights, zones, versions); `Null` for none.
    pub metadata: Value,
}

impl Endpoint {
    /// An endpoint at `addr` without metadata.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            metadata: Value::Null,
        }
    }

    /// The same endpoint with `metadata`.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// The value stored in etcd: `{"Op":0,"Addr":…,"Metadata":…}`, as Go's
    /// `endpoints.Manager` writes it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut object = Map::new();
        object.insert("Op".into(), Value::from(OP_ADD));
        object.insert("Addr".into(), Value::from(self.addr.clone()));
        object.insert("Metadata".into(), self.metadata.clone());
        Value::Object(object).to_string().into_bytes()
    }

    /// Reads a stored value: the JSON of Go's `endpoints.Update` (or of the older
    /// `naming.Update`): an object with a string `Addr`, optional `Metadata`, and an
    /// optional `Op` that, when present, must be 0 (added). A value that says `Op: 1`
    /// (deleted) names no endpoint and is [`ParseError::Deleted`].
    pub fn parse(value: &[u8]) -> Result<Self, ParseError> {
        let value: Value =
            serde_json::from_slice(value).map_err(|e| ParseError::Json(e.to_string()))?;
        let Value::Object(mut object) = value else {
            return Err(ParseError::NotAnObject);
        };
        match object.get("Op") {
            None => {}
            Some(op) => match op.as_u64() {
                Some(OP_ADD) => {}
                Some(OP_DELETE) => return Err(ParseError::Deleted),
                _ => return Err(ParseError::UnknownOp(op.to_string())),
            },
        }
        let addr = match object.remove("Addr") {
            Some(Value::String(addr)) if !addr.is_empty() => addr,
            _ => return Err(ParseError::NoAddr),
        };
        let metadata = object.remove("Metadata").unwrap_or(Value::Null);
        Ok(Self { addr, metadata })
    }
}

/// Why a stored value names no endpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The value is not JSON.
    #[error("the value is not JSON: {0}")]
    Json(String),
    /// The value is JSON but not an object.
    #[error("the value is not a JSON object")]
    NotAnObject,
    /// The object has no non-empty string `Addr`.
    #[error("the value has no address (a non-empty string `Addr`)")]
    NoAddr,
    /// The object's `Op` says the endpoint was deleted.
    #[error("the value records a deletion (`Op`: 1)")]
    Deleted,
    /// The object's `Op` is neither 0 (add) nor 1 (delete).
    #[error("unknown `Op` {0}: expected 0 (add) or 1 (delete)")]
    UnknownOp(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_written_by_go_are_read() {
        // What Go's endpoints.Manager.AddEndpoint stores for Endpoint{Addr: "..."}.
        let plain = br#"{"Op":0,"Addr":"127.0.0.1:50051","Metadata":null}"#;
        assert_eq!(
            Endpoint::parse(plain).unwrap(),
            Endpoint::new("127.0.0.1:50051")
        );
        let with_metadata =
            br#"{"Op":0,"Addr":"10.0.0.7:8080","Metadata":{"weight":2,"zone":"eu-1"}}"#;
        let endpoint = Endpoint::parse(with_metadata).unwrap();
        assert_eq!(endpoint.addr, "10.0.0.7:8080");
        assert_eq!(endpoint.metadata["weight"], 2);
        assert_eq!(endpoint.metadata["zone"], "eu-1");
        // Without Op or Metadata (hand-written, or older writers).
        assert_eq!(
            Endpoint::parse(br#"{"Addr":"h:1"}"#).unwrap(),
            Endpoint::new("h:1")
        );
    }

    #[test]
    fn what_we_write_is_what_go_reads() {
        let endpoint =
            Endpoint::new("10.0.0.1:50051").with_metadata(serde_json::json!({"version": "1.2"}));
        let json: Value = serde_json::from_slice(&endpoint.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Op": 0, "Addr": "10.0.0.1:50051", "Metadata": {"version": "1.2"}})
        );
        assert_eq!(Endpoint::parse(&endpoint.to_json()).unwrap(), endpoint);
    }

    #[test]
    fn values_naming_no_endpoint_are_typed_errors() {
        for (value, error) in [
            (&b"not json"[..], None),
            (b"[1,2]", Some(ParseError::NotAnObject)),
            (b"{\"Op\":0}", Some(ParseError::NoAddr)),
            (b"{\"Op\":0,\"Addr\":\"\"}", Some(ParseError::NoAddr)),
            (b"{\"Op\":0,\"Addr\":7}", Some(ParseError::NoAddr)),
            (b"{\"Op\":1,\"Addr\":\"a:1\"}", Some(ParseError::Deleted)),
            (
                b"{\"Op\":9,\"Addr\":\"a:1\"}",
                Some(ParseError::UnknownOp("9".into())),
            ),
        ] {
            let got = Endpoint::parse(value).unwrap_err();
            match error {
                Some(error) => assert_eq!(got, error),
                None => assert!(matches!(got, ParseError::Json(_)), "{got:?}"),
            }
        }
    }
}
