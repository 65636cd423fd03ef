//! What a gRPC response's head and trailers say: its HTTP status, its content type, and
//! the gRPC status.

use http::header::{CONTENT_TYPE, HeaderValue};
use tonic::{Code, Status};

use crate::{Error, Result};

/// The header or trailer with a call's gRPC status code.
const GRPC_STATUS: &str = "grpc-status";

/// Checks a response's head before its body is read, as gRPC does: an HTTP status other
/// than 200 is the call's status whatever else the head says (a proxy's error page), then
/// a `content-type` that is not gRPC's is a protocol error. What it returns is the gRPC
/// status in the head, if any: a trailers-only response, whose body carries nothing.
pub(super) fn check(
    head: &http::response::Parts,
) -> Result<Option<std::result::Result<(), Status>>> {
    if head.status != http::StatusCode::OK {
        return Err(http_status(head.status).into());
    }
    let content_type = head.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
    let grpc = content_type.is_some_and(|t| {
        t.strip_prefix(b"application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
    });
    if !grpc {
        let shown = content_type.map_or("none".into(), String::from_utf8_lossy);
        return Err(Error::Protocol(
            format!("the response is not gRPC (content-type: {shown})").into(),
        ));
    }
    Ok(grpc_status(&head.headers))
}

/// The gRPC status in `headers` (the trailers, or the headers of a trailers-only response):
/// `None` without one. Success is told by its code alone; tonic's full parse (message,
/// details, a copy of the other headers) is kept for failures.
pub(super) fn grpc_status(headers: &http::HeaderMap) -> Option<std::result::Result<(), Status>> {
    let code = headers.get(GRPC_STATUS)?;
    if code.as_bytes() == b"0" {
        return Some(Ok(()));
    }
    match Status::from_header_map(headers) {
        Some(status) if status.code() == Code::Ok => Some(Ok(())),
        Some(status) => Some(Err(status)),
        None => Some(Err(Status::unknown("a malformed grpc-status"))),
    }
}

/// The status of a response whose HTTP status is not 200, as gRPC maps it.
fn http_status(status: http::StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("HTTP status {status} (not a gRPC answer)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&'static str, &'static str)]) -> http::response::Parts {
        let mut response = http::Response::builder().status(status);
        for &(name, value) in headers {
            response = response.header(name, value);
        }
        response.body(()).unwrap().into_parts().0
    }

    #[test]
    fn heads_are_checked_as_grpc_does() {
        const GRPC: (&str, &str) = ("content-type", "application/grpc");
        assert!(matches!(check(&head(200, &[GRPC])), Ok(None)));
        let plus = ("content-type", "application/grpc+proto");
        assert!(matches!(check(&head(200, &[plus])), Ok(None)));
        // A non-200 status wins over a gRPC status in the same head.
        let error = check(&head(503, &[GRPC, ("grpc-status", "0")])).unwrap_err();
        assert!(error.to_string().contains("503"), "{error}");
        assert!(!matches!(error, Error::Protocol(_)), "{error:?}");
        assert_eq!(
            http_status(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        // Not gRPC at all: a web page, or no content-type.
        for headers in [&[("content-type", "text/html")][..], &[][..]] {
            let error = check(&head(200, headers)).unwrap_err();
            assert!(matches!(error, Error::Protocol(_)), "{error:?}");
            assert!(error.to_string().contains("not gRPC"), "{error}");
        }
        let error = check(&head(200, &[("content-type", "application/grpcx")])).unwrap_err();
        assert!(matches!(error, Error::Protocol(_)), "{error:?}");
        // A trailers-only answer.
        let failed = check(&head(200, &[GRPC, ("grpc-status", "14")])).unwrap();
        assert_eq!(failed.unwrap().unwrap_err().code(), Code::Unavailable);
        let ended = check(&head(200, &[GRPC, ("grpc-status", "0")])).unwrap();
        assert!(matches!(ended, Some(Ok(()))));
    }
}
