//! One error classification across stacks.
//!
//! Every stack reports failures its own way: embedded-nal's [`TcpErrorKind`],
//! embedded-io's [`embedded_io::ErrorKind`], `std::io::ErrorKind`, a backend's own
//! error type (netpool-lwip classifies lwIP's `err_t`). netpool maps them all onto one
//! [`ErrorClass`], and every class has exactly one [`Disposition`]: what the pool does
//! about it.
//!
//! | disposition | classes | what the pool does |
//! |---|---|---|
//! | [`Retry`](Disposition::Retry) | `WouldBlock`, `Timeout` | nothing; not an error, try again later |
//! | [`PeerGone`](Disposition::PeerGone) | `Reset`, `Closed`, `ConnectionLost`, `ConnectionTimedOut`, `Aborted` | slot → `OtherEndClosed`; received data stays readable |
//! | [`Fatal`](Disposition::Fatal) | everything else | stack socket released, slot → `Aborted` |
//!
//! ```
//! use netpool::{Classify, Disposition, ErrorClass};
//! // A reset from any stack, as embedded-io says it: the peer is gone.
//! let class = embedded_io::ErrorKind::ConnectionReset.class();
//! assert_eq!(class, ErrorClass::Reset);
//! assert_eq!(class.disposition(), Disposition::PeerGone);
//! // A read timeout is not an error at all.
//! assert!(embedded_io::ErrorKind::TimedOut.class().is_retry());
//! ```
//!
//! The pool's own errors ([`ConnError`], [`ConnectError`], [`ListenError`], and the
//! async driver's `AcceptError`) say which class they belong to the way
//! embedded-hal's errors give their `kind()`: with one method, `class()` (also
//! through [`Classify`]), so code can act on the class without matching every
//! variant:
//!
//! ```
//! use netpool::{ConnError, ConnectError, ErrorClass};
//! assert_eq!(ConnectError::PoolFull.class(), ErrorClass::OutOfResources);
//! assert!(ConnError::PeerGone(ErrorClass::Reset).class().is_peer_gone());
//! assert!(ConnError::TimedOut.class().is_retry());
//! ```

use core::fmt;
use embedded_nal::TcpErrorKind;

pub use crate::class::{Disposition, ErrorClass};

/// Anything that can say which [`ErrorClass`] it belongs to.
///
/// A stack used with the pool implements it for its error type (the pool requires
/// `Stack::Error: Classify`). Implementations exist for the standard error kinds, so
/// a stack error usually forwards to one of them:
///
/// ```
/// use netpool::{Classify, ErrorClass};
/// #[derive(Debug)]
/// struct MyError(embedded_io::ErrorKind);
/// impl Classify for MyError {
///     fn class(&self) -> ErrorClass { self.0.class() }
/// }
/// assert_eq!(MyError(embedded_io::ErrorKind::ConnectionReset).class(), ErrorClass::Reset);
/// ```
pub trait Classify {
    /// The class of this error.
    fn class(&self) -> ErrorClass;
}

impl Classify for ErrorClass {
    fn class(&self) -> ErrorClass {
        *self
    }
}

/// embedded-nal 0.9 knows only "pipe closed" and "other".
impl Classify for TcpErrorKind {
    fn class(&self) -> ErrorClass {
        match self {
            TcpErrorKind::PipeClosed => ErrorClass::Closed,
            _ => ErrorClass::Fatal,
        }
    }
}

impl Classify for embedded_io::ErrorKind {
    fn class(&self) -> ErrorClass {
        use embedded_io::ErrorKind as K;
        match self {
            K::Interrupted => ErrorClass::WouldBlock,
            K::TimedOut => ErrorClass::Timeout,
            K::ConnectionReset => ErrorClass::Reset,
            K::BrokenPipe | K::WriteZero => ErrorClass::Closed,
            K::NotConnected => ErrorClass::ConnectionLost,
            K::ConnectionAborted => ErrorClass::Aborted,
            K::ConnectionRefused => ErrorClass::Refused,
            K::AddrNotAvailable => ErrorClass::NoRoute,
            K::OutOfMemory => ErrorClass::OutOfResources,
            K::AddrInUse => ErrorClass::AddressInUse,
            K::InvalidInput | K::Unsupported => ErrorClass::InvalidInput,
            _ => ErrorClass::Fatal,
        }
    }
}

#[cfg(feature = "std")]
impl Classify for std::io::ErrorKind {
    fn class(&self) -> ErrorClass {
        use std::io::ErrorKind as K;
        match self {
            K::WouldBlock | K::Interrupted => ErrorClass::WouldBlock,
            // Non-blocking sockets report ETIMEDOUT only when the connection timed out.
            K::TimedOut => ErrorClass::ConnectionTimedOut,
            K::ConnectionReset => ErrorClass::Reset,
            K::BrokenPipe | K::UnexpectedEof | K::WriteZero => ErrorClass::Closed,
            K::NotConnected => ErrorClass::ConnectionLost,
            K::ConnectionAborted => ErrorClass::Aborted,
            K::ConnectionRefused => ErrorClass::Refused,
            K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown | K::AddrNotAvailable => {
                ErrorClass::NoRoute
            }
            K::OutOfMemory => ErrorClass::OutOfResources,
            K::AddrInUse => ErrorClass::AddressInUse,
            K::InvalidInput | K::Unsupported => ErrorClass::InvalidInput,
            _ => ErrorClass::Fatal,
        }
    }
}

#[cfg(feature = "std")]
impl Classify for std::io::Error {
    fn class(&self) -> ErrorClass {
        self.kind().class()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_nal_and_embedded_io_kinds() {
        assert_eq!(TcpErrorKind::PipeClosed.class(), ErrorClass::Closed);
        assert_eq!(TcpErrorKind::Other.class(), ErrorClass::Fatal);
        use embedded_io::ErrorKind as K;
        assert_eq!(K::ConnectionReset.class(), ErrorClass::Reset);
        assert_eq!(K::ConnectionAborted.class(), ErrorClass::Aborted);
        assert_eq!(K::NotConnected.class(), ErrorClass::ConnectionLost);
        assert_eq!(K::BrokenPipe.class(), ErrorClass::Closed);
        assert_eq!(K::TimedOut.class(), ErrorClass::Timeout);
        assert_eq!(K::ConnectionRefused.class(), ErrorClass::Refused);
        assert_eq!(K::OutOfMemory.class(), ErrorClass::OutOfResources);
        assert_eq!(K::Other.class(), ErrorClass::Fatal);
    }

    #[cfg(feature = "std")]
    #[test]
    fn std_io_kinds() {
        use std::io::ErrorKind as K;
        assert!(K::WouldBlock.class().is_retry());
        // ETIMEDOUT: the connection failed for good, never "try again".
        assert_eq!(K::TimedOut.class(), ErrorClass::ConnectionTimedOut);
        assert!(!K::TimedOut.class().is_retry());
        for k in [
            K::ConnectionReset,
            K::ConnectionAborted,
            K::BrokenPipe,
            K::NotConnected,
        ] {
            assert!(k.class().is_peer_gone(), "{k:?}");
        }
        assert_eq!(K::ConnectionRefused.class(), ErrorClass::Refused);
        assert_eq!(K::NetworkUnreachable.class(), ErrorClass::NoRoute);
        assert_eq!(K::PermissionDenied.class(), ErrorClass::Fatal);
    }
}

// ---------------------------------------------------------------------------------
// Per-operation errors (one small `Copy` enum per operation, smoltcp style).
// ---------------------------------------------------------------------------------

use crate::handle::CloseReason;
use crate::state::ConnState;

/// Why a read, write, close or query on a connection handle failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConnError {
    /// The handle's slot now belongs to another connection (or the slot number is
    /// out of range).
    Stale,
    /// The connection has ended and its slot is free; the reason is recorded.
    Closed(CloseReason),
    /// The peer is gone (FIN after all data was read, reset, lost, aborted by the
    /// stack). The slot is `OtherEndClosed` until the application closes it.
    PeerGone(ErrorClass),
    /// The connection failed; the slot is `Aborted` until the application closes it.
    Aborted(ErrorClass),
    /// The operation does not apply in the connection's current state.
    InvalidState(ConnState),
    /// The deadline passed first (async driver). The connection is unchanged.
    TimedOut,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Stale => f.write_str("stale connection handle"),
            ConnError::Closed(r) => write!(f, "connection closed ({r})"),
            ConnError::PeerGone(c) => write!(f, "peer gone ({c})"),
            ConnError::Aborted(c) => write!(f, "connection aborted ({c})"),
            ConnError::InvalidState(s) => write!(f, "not possible in state {s}"),
            ConnError::TimedOut => f.write_str("deadline passed"),
        }
    }
}

impl core::error::Error for ConnError {}

impl ConnError {
    /// The [`ErrorClass`] of this error, as embedded-hal errors give their `kind()`:
    /// act on the class (retry? peer gone?) without matching every variant.
    ///
    /// | variant | class |
    /// |---|---|
    /// | `Stale`, `InvalidState` | `InvalidInput` (the handle or the call is wrong) |
    /// | `Closed` | `Closed` (the reason says who closed it and why) |
    /// | `PeerGone(c)`, `Aborted(c)` | `c` |
    /// | `TimedOut` | `Timeout` (a retry class: the connection is unchanged) |
    ///
    /// ```
    /// use netpool::{CloseReason, ConnError, ErrorClass};
    /// assert_eq!(ConnError::PeerGone(ErrorClass::Reset).class(), ErrorClass::Reset);
    /// assert_eq!(ConnError::Closed(CloseReason::Idle).class(), ErrorClass::Closed);
    /// assert!(ConnError::TimedOut.class().is_retry());
    /// assert!(!ConnError::Stale.class().is_retry());
    /// ```
    pub const fn class(&self) -> ErrorClass {
        match self {
            ConnError::Stale | ConnError::InvalidState(_) => ErrorClass::InvalidInput,
            ConnError::Closed(_) => ErrorClass::Closed,
            ConnError::PeerGone(c) | ConnError::Aborted(c) => *c,
            ConnError::TimedOut => ErrorClass::Timeout,
        }
    }
}

/// [`ConnError::class`].
impl Classify for ConnError {
    fn class(&self) -> ErrorClass {
        ConnError::class(self)
    }
}

/// Why [`Pool::connect`](crate::Pool::connect) refused to start a connection.
/// Nothing was allocated when it returns an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConnectError {
    /// The link gate says the link is down. Nothing was sent.
    LinkDown,
    /// Every slot is in use (counted as `exhausted`).
    PoolFull,
    /// The stack refused (no socket/PCB, bad address...).
    Stack(ErrorClass),
    /// [`Pool::connect_at`](crate::Pool::connect_at): the chosen slot is in use.
    SlotInUse,
    /// [`Pool::connect_at`](crate::Pool::connect_at): there is no slot with that number.
    NoSuchSlot,
    /// An IPv6 address while the `ipv6` feature is off. Nothing was sent.
    UnsupportedAddress,
    /// Remote port 0: no TCP peer listens there (and a slot's report uses port 0 for
    /// "no remote"). Nothing was sent.
    PortZero,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::LinkDown => f.write_str("link down"),
            ConnectError::PoolFull => f.write_str("connection pool full"),
            ConnectError::Stack(c) => write!(f, "stack refused the connection ({c})"),
            ConnectError::SlotInUse => f.write_str("the chosen slot is in use"),
            ConnectError::NoSuchSlot => f.write_str("no slot with that number"),
            ConnectError::UnsupportedAddress => f.write_str("IPv6 address without the `ipv6` feature"),
            ConnectError::PortZero => f.write_str("remote port 0"),
        }
    }
}

impl core::error::Error for ConnectError {}

impl ConnectError {
    /// The [`ErrorClass`] of this error (see [`ConnError::class`]).
    ///
    /// | variant | class |
    /// |---|---|
    /// | `LinkDown` | `NoRoute` |
    /// | `PoolFull` | `OutOfResources` |
    /// | `Stack(c)` | `c` |
    /// | `UnsupportedAddress` | `NoRoute` (this build cannot reach IPv6 peers) |
    /// | `SlotInUse`, `NoSuchSlot`, `PortZero` | `InvalidInput` |
    ///
    /// ```
    /// use netpool::{ConnectError, ErrorClass};
    /// assert_eq!(ConnectError::LinkDown.class(), ErrorClass::NoRoute);
    /// assert_eq!(ConnectError::Stack(ErrorClass::Refused).class(), ErrorClass::Refused);
    /// ```
    pub const fn class(&self) -> ErrorClass {
        match self {
            ConnectError::LinkDown | ConnectError::UnsupportedAddress => ErrorClass::NoRoute,
            ConnectError::PoolFull => ErrorClass::OutOfResources,
            ConnectError::Stack(c) => *c,
            ConnectError::SlotInUse | ConnectError::NoSuchSlot | ConnectError::PortZero => {
                ErrorClass::InvalidInput
            }
        }
    }
}

/// [`ConnectError::class`].
impl Classify for ConnectError {
    fn class(&self) -> ErrorClass {
        ConnectError::class(self)
    }
}

/// Why [`Pool::listen`](crate::Pool::listen) failed. The listener table is unchanged.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ListenError {
    /// All `L` listener slots are in use.
    TableFull,
    /// The stack refused to create, bind or listen on the socket.
    Stack(ErrorClass),
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::TableFull => f.write_str("listener table full"),
            ListenError::Stack(c) => write!(f, "stack refused to listen ({c})"),
        }
    }
}

impl core::error::Error for ListenError {}

impl ListenError {
    /// The [`ErrorClass`] of this error (see [`ConnError::class`]): `TableFull` is
    /// `OutOfResources`, `Stack(c)` is `c`.
    ///
    /// ```
    /// use netpool::{ErrorClass, ListenError};
    /// assert_eq!(ListenError::TableFull.class(), ErrorClass::OutOfResources);
    /// assert_eq!(ListenError::Stack(ErrorClass::AddressInUse).class(), ErrorClass::AddressInUse);
    /// ```
    pub const fn class(&self) -> ErrorClass {
        match self {
            ListenError::TableFull => ErrorClass::OutOfResources,
            ListenError::Stack(c) => *c,
        }
    }
}

/// [`ListenError::class`].
impl Classify for ListenError {
    fn class(&self) -> ErrorClass {
        ListenError::class(self)
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;

    /// Every variant's class, and `Classify` says the same as the method.
    #[test]
    fn conn_error_class() {
        let cases = [
            (ConnError::Stale, ErrorClass::InvalidInput),
            (
                ConnError::InvalidState(ConnState::Connecting),
                ErrorClass::InvalidInput,
            ),
            (ConnError::Closed(CloseReason::Closed), ErrorClass::Closed),
            (ConnError::Closed(CloseReason::Stalled), ErrorClass::Closed),
            (ConnError::PeerGone(ErrorClass::Reset), ErrorClass::Reset),
            (
                ConnError::Aborted(ErrorClass::OutOfResources),
                ErrorClass::OutOfResources,
            ),
            (ConnError::TimedOut, ErrorClass::Timeout),
        ];
        for (e, class) in cases {
            assert_eq!(e.class(), class, "{e}");
            assert_eq!(Classify::class(&e), class, "{e}");
        }
        assert!(ConnError::TimedOut.class().is_retry());
        assert!(ConnError::PeerGone(ErrorClass::Closed).class().is_peer_gone());
    }

    #[test]
    fn connect_error_class() {
        let cases = [
            (ConnectError::LinkDown, ErrorClass::NoRoute),
            (ConnectError::PoolFull, ErrorClass::OutOfResources),
            (ConnectError::Stack(ErrorClass::Refused), ErrorClass::Refused),
            (ConnectError::SlotInUse, ErrorClass::InvalidInput),
            (ConnectError::NoSuchSlot, ErrorClass::InvalidInput),
            (ConnectError::UnsupportedAddress, ErrorClass::NoRoute),
            (ConnectError::PortZero, ErrorClass::InvalidInput),
        ];
        for (e, class) in cases {
            assert_eq!(e.class(), class, "{e}");
            assert_eq!(Classify::class(&e), class, "{e}");
            // A refused connect is never "try again later".
            assert!(!e.class().is_retry(), "{e}");
        }
    }

    #[test]
    fn listen_error_class() {
        let cases = [
            (ListenError::TableFull, ErrorClass::OutOfResources),
            (
                ListenError::Stack(ErrorClass::AddressInUse),
                ErrorClass::AddressInUse,
            ),
        ];
        for (e, class) in cases {
            assert_eq!(e.class(), class, "{e}");
            assert_eq!(Classify::class(&e), class, "{e}");
        }
    }
}
