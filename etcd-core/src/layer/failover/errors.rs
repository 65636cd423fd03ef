//! What a failed call says: whether it may go to another member, whether its member should
//! be skipped, and the error of a call every member failed.

use std::sync::Arc;

use crate::{Applied, Error};

/// Whether a failed call may be sent to another member: it never reached a server, or it
/// is a read, or the member refused it before doing anything for a reason of its own (a
/// learner refusing what only voters serve).
pub(super) fn may_resend(error: &Error, read_only: bool) -> bool {
    match error {
        Error::Transport { applied, .. } => read_only || *applied == Applied::No,
        Error::Server(e) => e.kind().is_refused_by_member(),
        // Another member may be current.
        Error::StaleRead { .. } => read_only,
        _ => false,
    }
}

/// A member's transport failure with the member's endpoint in its message.
pub(super) fn naming(error: Error, endpoint: &str) -> Error {
    match error {
        Error::Transport {
            message,
            applied,
            source,
        } => Error::Transport {
            message: format!("{endpoint}: {message}").into(),
            applied,
            source,
        },
        other => other,
    }
}

/// The error of a call that every member it was sent to failed: with one member, that
/// member's error; with several and all transport failures, one that names each member and
/// its cause (the request may have applied if any attempt's outcome is unknown). Otherwise
/// the last error.
pub(super) fn every_member_failed(mut failures: Vec<(Arc<str>, Error)>) -> Error {
    let all_transport = failures
        .iter()
        .all(|(_, e)| matches!(e, Error::Transport { .. }));
    let Some((endpoint, last)) = failures.pop() else {
        return Error::Protocol("no member to send the request to".into());
    };
    match last {
        Error::Transport {
            message: last_message,
            applied,
            source,
        } if all_transport && !failures.is_empty() => {
            let applied = if failures
                .iter()
                .any(|(_, e)| e.applied() == Applied::Unknown)
            {
                Applied::Unknown
            } else {
                applied
            };
            let mut message = format!("all {} members failed:", failures.len() + 1);
            for (endpoint, error) in &failures {
                if let Error::Transport { message: cause, .. } = error {
                    message.push_str(&format!(" {endpoint}: {cause};"));
                }
            }
            message.push_str(&format!(" {endpoint}: {last_message}"));
            Error::Transport {
                message: message.into(),
                applied,
                source,
            }
        }
        other => naming(other, &endpoint),
    }
}

/// Whether a failed call shows that the member should be skipped for a while: it could
/// not be reached, or it is a learner (which refuses every stream and every call but
/// serializable reads and a few maintenance calls).
pub(super) fn should_skip(error: &Error) -> bool {
    match error {
        Error::Transport { .. } | Error::StaleRead { .. } => true,
        Error::Server(e) => e.kind().is_refused_by_member(),
        _ => false,
    }
}
