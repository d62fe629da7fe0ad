//! The error rule, decided once for both drivers: what a stack error does to a live
//! connection, and what an operation on a connection that has ended reports.

use crate::class::{Disposition, ErrorClass};
use crate::error::ConnError;
use crate::handle::CloseReason;
use crate::state::ConnState;

/// The one rule both drivers apply to a stack error: the state a live connection
/// moves to and the reason recorded, or `None` for retry classes (not an error).
pub(crate) const fn after_error(class: ErrorClass) -> Option<(ConnState, CloseReason)> {
    match class.disposition() {
        Disposition::Retry => None,
        Disposition::PeerGone => Some((ConnState::OtherEndClosed, CloseReason::PeerGone(class))),
        Disposition::Fatal => Some((ConnState::Aborted, CloseReason::Failed(class))),
    }
}

/// The error an operation on a connection that is no longer live reports, from its
/// state and close reason (both drivers).
pub(crate) fn ended_error(state: ConnState, reason: Option<CloseReason>) -> ConnError {
    let class = match reason {
        Some(CloseReason::PeerGone(c) | CloseReason::Failed(c) | CloseReason::ConnectFailed(c)) => c,
        Some(CloseReason::ConnectTimeout) => ErrorClass::Timeout,
        _ => ErrorClass::Fatal,
    };
    match (state, reason) {
        (ConnState::Free, r) => ConnError::Closed(r.unwrap_or(CloseReason::Closed)),
        (ConnState::OtherEndClosed, _) => ConnError::PeerGone(class),
        // The pool gave up on it (async reaper): say why, like a freed slot does.
        (ConnState::Aborted, Some(r @ (CloseReason::Stalled | CloseReason::Idle))) => ConnError::Closed(r),
        (ConnState::Aborted, _) => ConnError::Aborted(class),
        (other, _) => ConnError::InvalidState(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_connection_reports_the_class_its_first_reason_names() {
        let class = |reason| match ended_error(ConnState::Aborted, Some(reason)) {
            ConnError::Aborted(class) => class,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            class(CloseReason::Failed(ErrorClass::OutOfResources)),
            ErrorClass::OutOfResources
        );
        assert_eq!(
            class(CloseReason::ConnectFailed(ErrorClass::Refused)),
            ErrorClass::Refused
        );
        assert_eq!(class(CloseReason::PeerGone(ErrorClass::Reset)), ErrorClass::Reset);
        // A connect that ran out of time says so.
        assert_eq!(class(CloseReason::ConnectTimeout), ErrorClass::Timeout);
        // The rest name no class: the connection cannot be trusted.
        assert_eq!(class(CloseReason::Abandoned), ErrorClass::Fatal);
        assert_eq!(class(CloseReason::Aborted), ErrorClass::Fatal);
        assert_eq!(
            ended_error(
                ConnState::OtherEndClosed,
                Some(CloseReason::PeerGone(ErrorClass::Reset))
            ),
            ConnError::PeerGone(ErrorClass::Reset)
        );
    }
}
