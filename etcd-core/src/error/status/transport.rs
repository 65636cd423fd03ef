//! Transport failures: telling a failure below gRPC from a status etcd sent, and whether
//! the request may have reached the server. Our transports say so with the type
//! [`NeverSent`](crate::transport::NeverSent); foreign errors (tonic, hyper, rustls) are
//! diagnosed by their causes' types and, where they have no other, their wording.

use std::error::Error as StdError;

use crate::error::Applied;

/// Whether a tower timeout layer below the gRPC client gave up on the call.
pub(super) fn timed_out(status: &tonic::Status) -> bool {
    let mut cause: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(err) = cause {
        if err.is::<tower::timeout::error::Elapsed>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// What failed TLS handshakes report (rustls' and tonic's messages), and what to tell
/// the caller. The first match in the chain of causes wins.
const TLS_FAILURES: &[(&str, &str)] = &[
    (
        "invalid peer certificate",
        "the server's certificate was not accepted: check that the CA given signed it and \
         that it names the server (or set a server name override)",
    ),
    (
        "certificate not valid for name",
        "the server's certificate does not name the server: set a server name override or \
         use a name it lists",
    ),
    (
        "received fatal alert: CertificateRequired",
        "the server requires a client certificate and none was given",
    ),
    (
        "received fatal alert: BadCertificate",
        "the server refused the client certificate (none given, or not signed by a CA it \
         trusts)",
    ),
    (
        "received fatal alert: CertificateExpired",
        "the server refused the client certificate: it has expired",
    ),
    (
        "received fatal alert: UnknownCA",
        "the server refused the client certificate: it does not trust the CA that signed it",
    ),
    (
        "received fatal alert",
        "the server refused the TLS handshake",
    ),
    (
        "peer sent no certificates",
        "the server sent no certificate",
    ),
    (
        "received corrupt message",
        "the server does not speak TLS on this port (use http:// for it?)",
    ),
    (
        "peer is incompatible",
        "the server's TLS versions or ciphers are incompatible",
    ),
    (
        "HTTP/2 was not negotiated",
        "the server did not offer HTTP/2 over TLS",
    ),
];

/// A connection that failed in its TLS handshake for a reason that trying again will not
/// fix: an untrusted certificate, a refused client certificate, a server without TLS.
#[derive(Debug)]
pub(crate) struct TlsFailure {
    pub(super) status: tonic::Status,
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TLS handshake failed")
    }
}

impl StdError for TlsFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.status)
    }
}

/// Recognises a failed TLS handshake among the causes of a status, and says what failed.
pub(super) fn tls_failure(status: &tonic::Status) -> Option<String> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(status.source()?);
    while let Some(err) = cause {
        let text = err.to_string();
        if let Some((_, meaning)) = TLS_FAILURES.iter().find(|(m, _)| text.contains(m)) {
            return Some(format!("TLS handshake failed: {meaning} ({text})"));
        }
        cause = err.source();
    }
    None
}

/// Tells a transport failure from a server status, and whether the request left the client:
/// a refused or failed connection means it never did. Some failures come with a clearer
/// message than the status's.
pub(super) fn transport_failure(status: &tonic::Status) -> Option<(Applied, Option<String>)> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(status.source()?);
    let mut applied = Applied::Unknown;
    let mut explained = None;
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            ) {
                applied = Applied::No;
            }
        }
        let text = err.to_string();
        // A transport of ours (or anyone's) that knows its request was never sent says so
        // with the type, and its message explains.
        if crate::transport::is_never_sent(err) {
            applied = Applied::No;
            explained.get_or_insert_with(|| text.clone());
        }
        // Diagnosis of foreign errors, by their wording: hyper and tonic connect errors,
        // and hyper's cancel of a request still queued when its connection closed (it was
        // never written).
        if text.contains("tcp connect error")
            || text.contains("TLS handshake timeout")
            || text.contains("operation was canceled")
            || text.contains("error trying to connect")
            || text.contains("dns error")
        {
            applied = Applied::No;
        }
        // A server that hangs up on a TLS handshake: a plain-text port, or a server or
        // proxy going away. Nothing was sent.
        if text.contains("tls handshake eof") {
            applied = Applied::No;
            explained.get_or_insert_with(|| {
                format!(
                    "TLS handshake failed: the server closed the connection during the \
                     handshake; if this port does not serve TLS, use an http:// endpoint \
                     ({text})"
                )
            });
        }
        cause = err.source();
    }
    Some((applied, explained))
}

#[cfg(test)]
mod tests {
    use crate::ServerErrorKind;
    use crate::error::{Applied, Error};
    use std::error::Error as StdError;
    use tonic::Code;

    /// Asserts `error` is a transport failure with the outcome `applied`.
    #[track_caller]
    fn assert_transport(error: Error, applied: Applied) {
        assert!(
            matches!(&error, Error::Transport { applied: a, .. } if *a == applied),
            "expected a transport error ({applied:?}), got {error:?}"
        );
    }

    #[test]
    fn a_client_side_deadline_is_a_timeout() {
        let e = Error::from(tonic::Status::deadline_exceeded("Timeout expired"));
        assert!(matches!(e, Error::Timeout { .. }));
        assert!(e.is_outcome_unknown());
    }

    #[test]
    fn a_refused_connection_never_applied() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = tonic::Status::from_error(Box::new(io));
        let e = Error::from(status);
        assert_transport(e, Applied::No);
    }

    #[test]
    fn a_request_canceled_before_sending_never_applied() {
        #[derive(Debug)]
        struct Canceled;
        impl std::fmt::Display for Canceled {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("operation was canceled: connection closed")
            }
        }
        impl StdError for Canceled {}
        let status = tonic::Status::from_error(Box::new(Canceled));
        let e = Error::from(status);
        assert_transport(e, Applied::No);
    }

    #[test]
    fn a_broken_connection_leaves_the_outcome_open() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let e = Error::from(tonic::Status::from_error(Box::new(io)));
        assert_transport(e, Applied::Unknown);
    }

    #[test]
    fn tls_handshake_failures_are_typed_and_never_applied() {
        for (text, says) in [
            (
                "invalid peer certificate: UnknownIssuer",
                "CA given signed it",
            ),
            (
                "received fatal alert: CertificateRequired",
                "requires a client certificate",
            ),
            ("received fatal alert: BadCertificate", "client certificate"),
            (
                "received corrupt message of type InvalidContentType",
                "does not speak TLS",
            ),
        ] {
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, text);
            let e = Error::from(tonic::Status::from_error(Box::new(io)));
            assert!(e.is_tls(), "{text}: {e:?}");
            match &e {
                Error::Transport {
                    message,
                    applied: Applied::No,
                    ..
                } => {
                    assert!(message.starts_with("TLS handshake failed"), "{message}");
                    assert!(message.contains(says), "{message}");
                    assert!(message.contains(text), "{message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_tls_handshake_timeout_is_a_retriable_transport_error() {
        let e = Error::from(tonic::Status::from_error("TLS handshake timeout.".into()));
        assert!(!e.is_tls(), "{e:?}");
        assert_transport(e, Applied::No);
    }

    #[test]
    fn a_connection_closed_before_the_server_spoke_never_applied() {
        use crate::transport::NeverSent;
        let marked = |text: &str| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, NeverSent::new(text))
        };
        for (text, io) in [
            // Our connector marks it: the type decides, whatever the words.
            (
                "the server closed the connection early",
                marked("the server closed the connection early"),
            ),
            // rustls' words for a server hanging up on the handshake (a foreign error).
            (
                "tls handshake eof",
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof"),
            ),
        ] {
            let e = Error::from(tonic::Status::from_error(Box::new(io)));
            assert!(!e.is_tls(), "{text}: {e:?}");
            match &e {
                Error::Transport {
                    message,
                    applied: Applied::No,
                    ..
                } => assert!(message.contains(text), "{message}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn our_own_words_without_the_mark_leave_the_outcome_open() {
        // The classification of our transports' errors reads the type: the same words
        // without the mark say nothing about whether the request was sent.
        for text in [
            "the request was not sent: GOAWAY",
            "the server closed the connection before sending a byte",
        ] {
            let io = std::io::Error::other(text);
            let e = Error::from(tonic::Status::from_error(Box::new(io)));
            assert_eq!(e.applied(), Applied::Unknown, "{text}: {e:?}");
        }
        let marked = crate::transport::NeverSent::new("stream refused");
        let e = Error::from(tonic::Status::from_error(Box::new(marked)));
        assert_eq!(e.applied(), Applied::No, "{e:?}");
    }

    #[test]
    fn boxed_errors_are_recovered() {
        let e = Error::from_boxed(Box::new(Error::Timeout {
            call: None,
            limit: None,
            endpoints: Box::default(),
        }));
        assert!(matches!(e, Error::Timeout { .. }));
        let e = Error::from_boxed(Box::new(tonic::Status::new(
            Code::NotFound,
            "etcdserver: requested lease not found",
        )));
        assert_eq!(e.server_kind(), Some(ServerErrorKind::LeaseNotFound));
        let e = Error::from_boxed(Box::new(tower::timeout::error::Elapsed::new()));
        assert!(matches!(e, Error::Timeout { .. }));
        let e = Error::from_boxed(Box::new(crate::transport::NeverSent::new("refused")));
        assert_eq!(e.applied(), Applied::No, "{e:?}");
        let e = Error::from_boxed("something broke".into());
        assert_eq!(e.applied(), Applied::Unknown, "{e:?}");
    }
}
