//! [`SmolError`], the backend's error, classified onto netpool's [`ErrorClass`], and
//! what a dead socket's error is (smoltcp does not say why a connection closed).

use core::fmt;

use ::smoltcp::socket::tcp::{self, State};
use embedded_nal::{TcpError, TcpErrorKind};

use crate::error::{Classify, ErrorClass};

/// Why a [`SmoltcpStack`](super::SmoltcpStack) operation failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SmolError {
    /// No free socket: every adopted socket is in use, armed for a listener or still
    /// closing. Class [`OutOfResources`](ErrorClass::OutOfResources).
    NoSocket,
    /// Every listener slot is in use (there are `M`). Class
    /// [`OutOfResources`](ErrorClass::OutOfResources).
    NoListenerSlot,
    /// No ephemeral port is free. Class [`OutOfResources`](ErrorClass::OutOfResources).
    NoPort,
    /// The handle's socket was given back (closed, aborted, turned into a listener) and
    /// may belong to someone else now; nothing was done. Class
    /// [`InvalidInput`](ErrorClass::InvalidInput).
    Stale,
    /// The operation does not apply to this handle in its state (sending on a listener,
    /// binding twice, connecting to another address...). Class
    /// [`InvalidInput`](ErrorClass::InvalidInput).
    InvalidState,
    /// The address cannot be used: IPv6, unspecified, port 0, or the interface has no
    /// source address for it. Class [`NoRoute`](ErrorClass::NoRoute).
    Unaddressable,
    /// Another socket of this stack is bound to or listens on the port. Class
    /// [`AddressInUse`](ErrorClass::AddressInUse).
    AddressInUse,
    /// Connect failed: the remote answered with RST (nothing listening). Class
    /// [`Refused`](ErrorClass::Refused).
    Refused,
    /// Connect failed: the socket's smoltcp timeout expired before the handshake
    /// completed. Class [`ConnectionTimedOut`](ErrorClass::ConnectionTimedOut): the
    /// connection failed for good.
    TimedOut,
    /// The connection was reset by the peer. Class [`Reset`](ErrorClass::Reset).
    Reset,
    /// smoltcp closed the connection and cannot tell why: a reset or its socket
    /// timeout (only when a timeout is set). Class
    /// [`ConnectionLost`](ErrorClass::ConnectionLost).
    ConnectionLost,
    /// Our sending direction is already closed (FIN sent). Class
    /// [`Closed`](ErrorClass::Closed).
    Closed,
}

impl SmolError {
    /// Short description.
    pub const fn as_str(self) -> &'static str {
        match self {
            SmolError::NoSocket => "no free socket",
            SmolError::NoListenerSlot => "no free listener slot",
            SmolError::NoPort => "no free ephemeral port",
            SmolError::Stale => "stale socket handle",
            SmolError::InvalidState => "invalid socket state for this operation",
            SmolError::Unaddressable => "unaddressable endpoint",
            SmolError::AddressInUse => "port already in use",
            SmolError::Refused => "connection refused",
            SmolError::TimedOut => "connection timed out",
            SmolError::Reset => "connection reset",
            SmolError::ConnectionLost => "connection lost (reset or timeout)",
            SmolError::Closed => "connection closed for sending",
        }
    }
}

impl fmt::Display for SmolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for SmolError {}

/// A reset, a lost connection and a closed sending direction are
/// [`TcpErrorKind::PipeClosed`]; everything else is [`TcpErrorKind::Other`].
impl TcpError for SmolError {
    fn kind(&self) -> TcpErrorKind {
        match self {
            SmolError::Reset | SmolError::ConnectionLost | SmolError::Closed => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

/// See each variant for its class.
impl Classify for SmolError {
    fn class(&self) -> ErrorClass {
        match self {
            SmolError::NoSocket | SmolError::NoListenerSlot | SmolError::NoPort => ErrorClass::OutOfResources,
            SmolError::Stale | SmolError::InvalidState => ErrorClass::InvalidInput,
            SmolError::Unaddressable => ErrorClass::NoRoute,
            SmolError::AddressInUse => ErrorClass::AddressInUse,
            SmolError::Refused => ErrorClass::Refused,
            SmolError::TimedOut => ErrorClass::ConnectionTimedOut,
            SmolError::Reset => ErrorClass::Reset,
            SmolError::ConnectionLost => ErrorClass::ConnectionLost,
            SmolError::Closed => ErrorClass::Closed,
        }
    }
}

/// Why an established connection is in CLOSED: smoltcp does not say. Without a socket
/// timeout only a reset (or the interface losing the local address) gets it there.
pub(super) fn gone(socket: &tcp::Socket<'_>) -> SmolError {
    if socket.timeout().is_some() {
        SmolError::ConnectionLost
    } else {
        SmolError::Reset
    }
}

/// The error of a connected socket smoltcp refused to send or receive on.
pub(super) fn dead(socket: &tcp::Socket<'_>) -> SmolError {
    match socket.state() {
        State::Closed => gone(socket),
        State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck | State::TimeWait => {
            SmolError::Closed
        }
        _ => SmolError::InvalidState,
    }
}
