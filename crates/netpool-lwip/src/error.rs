//! The backend's error: lwIP's `err_t` (classified by netpool's [`LwipErr`]) plus the
//! few failures the backend itself detects.

use core::fmt;

use embedded_nal::{TcpError, TcpErrorKind};
use netpool::{Classify, ErrorClass, LwipErr};

/// Why an [`LwipStack`](crate::LwipStack) operation failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LwipError {
    /// lwIP returned this `err_t`, or reported it in the err callback when it freed the
    /// connection (`ERR_RST`: reset by the peer; `ERR_ABRT`: aborted by lwIP itself,
    /// e.g. `tcp_kill_prio` reclaiming the PCB or retransmissions exhausted). Class:
    /// [`LwipErr`]'s table (`ERR_MEM` → out of resources, `ERR_RST` → reset,
    /// `ERR_ABRT` → aborted...).
    Lwip(LwipErr),
    /// A connect was answered with RST (nothing listening). Class
    /// [`Refused`](ErrorClass::Refused).
    Refused,
    /// A connect was given up by lwIP (SYN retransmissions exhausted). Class
    /// [`Timeout`](ErrorClass::Timeout).
    ConnectTimedOut,
    /// The handle's socket was given back (closed, aborted) and may belong to someone
    /// else now; nothing was done. Class [`InvalidInput`](ErrorClass::InvalidInput).
    Stale,
    /// The operation does not apply to the socket in its state (send on a listener,
    /// bind twice...). Class [`InvalidInput`](ErrorClass::InvalidInput).
    InvalidState,
    /// The backend's socket table is full ([`MAX_SOCKETS`](crate::MAX_SOCKETS)). Class
    /// [`OutOfResources`](ErrorClass::OutOfResources).
    NoSlot,
    /// IPv6 or an unspecified address: this backend speaks IPv4. Class
    /// [`NoRoute`](ErrorClass::NoRoute).
    Unaddressable,
    /// Another [`LwipStack`](crate::LwipStack) is alive in this process (lwIP is global
    /// state). Class [`InvalidInput`](ErrorClass::InvalidInput).
    InUse,
}

impl LwipError {
    /// The lwIP code, if the error came from lwIP.
    pub const fn code(self) -> Option<LwipErr> {
        match self {
            LwipError::Lwip(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for LwipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LwipError::Lwip(e) => write!(f, "lwIP: {e}"),
            LwipError::Refused => f.write_str("connection refused"),
            LwipError::ConnectTimedOut => f.write_str("connect timed out (SYN retries exhausted)"),
            LwipError::Stale => f.write_str("stale socket handle"),
            LwipError::InvalidState => f.write_str("invalid socket state for this operation"),
            LwipError::NoSlot => f.write_str("socket table full"),
            LwipError::Unaddressable => f.write_str("unaddressable endpoint (IPv4 only)"),
            LwipError::InUse => f.write_str("another LwipStack is alive in this process"),
        }
    }
}

impl core::error::Error for LwipError {}

/// See each variant for its class.
impl Classify for LwipError {
    fn class(&self) -> ErrorClass {
        match self {
            LwipError::Lwip(e) => e.class(),
            LwipError::Refused => ErrorClass::Refused,
            LwipError::ConnectTimedOut => ErrorClass::Timeout,
            LwipError::Stale | LwipError::InvalidState | LwipError::InUse => ErrorClass::InvalidInput,
            LwipError::NoSlot => ErrorClass::OutOfResources,
            LwipError::Unaddressable => ErrorClass::NoRoute,
        }
    }
}

/// Errors that mean the peer is gone (reset, closed, lost, aborted) are
/// [`TcpErrorKind::PipeClosed`]; everything else is [`TcpErrorKind::Other`].
impl TcpError for LwipError {
    fn kind(&self) -> TcpErrorKind {
        if self.class().is_peer_gone() {
            TcpErrorKind::PipeClosed
        } else {
            TcpErrorKind::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lwip_codes_keep_netpool_classes() {
        assert_eq!(LwipError::Lwip(LwipErr(-14)).class(), ErrorClass::Reset);
        assert_eq!(LwipError::Lwip(LwipErr(-13)).class(), ErrorClass::Aborted);
        assert_eq!(LwipError::Lwip(LwipErr(-1)).class(), ErrorClass::OutOfResources);
        assert_eq!(LwipError::Lwip(LwipErr(-14)).kind(), TcpErrorKind::PipeClosed);
        assert_eq!(LwipError::Lwip(LwipErr(-1)).kind(), TcpErrorKind::Other);
        assert_eq!(LwipError::Refused.class(), ErrorClass::Refused);
        assert!(LwipError::ConnectTimedOut.class().is_retry());
        assert_eq!(LwipError::Stale.code(), None);
        assert_eq!(LwipError::Lwip(LwipErr(-8)).code(), Some(LwipErr(-8)));
        for e in [
            LwipError::Lwip(LwipErr(-15)),
            LwipError::Refused,
            LwipError::ConnectTimedOut,
            LwipError::Stale,
            LwipError::InvalidState,
            LwipError::NoSlot,
            LwipError::Unaddressable,
            LwipError::InUse,
        ] {
            assert!(!std::format!("{e}").is_empty());
        }
    }
}
