//! One error classification across stacks.
//!
//! Every stack reports failures its own way: embedded-nal's [`TcpErrorKind`],
//! embedded-io's [`embedded_io::ErrorKind`], `std::io::ErrorKind`, lwIP's `err_t`.
//! netpool maps them all onto one [`ErrorClass`], and every class has exactly one
//! [`Disposition`]: what the pool does about it.
//!
//! | disposition | classes | what the pool does |
//! |---|---|---|
//! | [`Retry`](Disposition::Retry) | `WouldBlock`, `Timeout` | nothing; not an error, try again later |
//! | [`PeerGone`](Disposition::PeerGone) | `Reset`, `Closed`, `ConnectionLost`, `ConnectionTimedOut`, `Aborted` | slot → `OtherEndClosed`; received data stays readable |
//! | [`Fatal`](Disposition::Fatal) | everything else | stack socket released, slot → `Aborted` |
//!
//! ```
//! use netpool::{Classify, Disposition, ErrorClass, LwipErr};
//! // lwIP killed the connection to reclaim its PCB (ERR_ABRT): the peer is gone.
//! assert_eq!(LwipErr(-13).class(), ErrorClass::Aborted);
//! assert_eq!(LwipErr(-13).class().disposition(), Disposition::PeerGone);
//! // ERR_WOULDBLOCK is not an error at all.
//! assert!(LwipErr(-7).class().is_retry());
//! ```

use core::fmt;
use embedded_nal::TcpErrorKind;

/// What a stack error means for a connection, whatever stack produced it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorClass {
    /// Nothing can be done right now (buffer full, nothing received). Retry.
    WouldBlock,
    /// A stack-internal wait expired (a read or write timeout). Retry.
    Timeout,
    /// The stack gave up on the connection for good: the handshake or the
    /// retransmissions timed out (smoltcp `TimedOut`, `ETIMEDOUT`). During a connect
    /// this fails the connect at once; on an open connection the peer is gone.
    ConnectionTimedOut,
    /// The peer reset the connection (RST).
    Reset,
    /// The connection is closed in this direction (FIN seen, broken pipe).
    Closed,
    /// The connection is gone without a reason the stack could tell (not connected).
    ConnectionLost,
    /// The stack aborted the connection itself (e.g. lwIP reclaiming a PCB).
    Aborted,
    /// The remote host refused the connection.
    Refused,
    /// No route to the host, or the link / interface is down.
    NoRoute,
    /// The stack is out of memory, sockets or PCBs.
    OutOfResources,
    /// The local address or port is already in use.
    AddressInUse,
    /// An argument or socket state the stack rejected (programming error).
    InvalidInput,
    /// Anything else. The connection cannot be trusted any more.
    Fatal,
}

/// What the pool does about an error of a given class.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Disposition {
    /// Not an error: no progress now, try again later.
    Retry,
    /// The peer is gone: the slot becomes [`ConnState::OtherEndClosed`].
    PeerGone,
    /// The connection is unusable: the slot becomes [`ConnState::Aborted`].
    Fatal,
}

impl ErrorClass {
    /// The one thing the pool does about this class.
    pub const fn disposition(self) -> Disposition {
        match self {
            ErrorClass::WouldBlock | ErrorClass::Timeout => Disposition::Retry,
            ErrorClass::Reset
            | ErrorClass::Closed
            | ErrorClass::ConnectionLost
            | ErrorClass::ConnectionTimedOut
            | ErrorClass::Aborted => Disposition::PeerGone,
            ErrorClass::Refused
            | ErrorClass::NoRoute
            | ErrorClass::OutOfResources
            | ErrorClass::AddressInUse
            | ErrorClass::InvalidInput
            | ErrorClass::Fatal => Disposition::Fatal,
        }
    }

    /// `true` for would-block and timeout: not an error.
    pub const fn is_retry(self) -> bool {
        matches!(self.disposition(), Disposition::Retry)
    }

    /// `true` when the peer is gone (reset, closed, lost, aborted).
    pub const fn is_peer_gone(self) -> bool {
        matches!(self.disposition(), Disposition::PeerGone)
    }

    /// Short name for logs and reports.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorClass::WouldBlock => "would-block",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Reset => "reset",
            ErrorClass::Closed => "closed",
            ErrorClass::ConnectionLost => "connection-lost",
            ErrorClass::ConnectionTimedOut => "connection-timed-out",
            ErrorClass::Aborted => "aborted",
            ErrorClass::Refused => "refused",
            ErrorClass::NoRoute => "no-route",
            ErrorClass::OutOfResources => "out-of-resources",
            ErrorClass::AddressInUse => "address-in-use",
            ErrorClass::InvalidInput => "invalid-input",
            ErrorClass::Fatal => "fatal",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

/// An lwIP `err_t` code (a signed byte; 0 is `ERR_OK`).
///
/// | code | name | class |
/// |---|---|---|
/// | 0 | `ERR_OK` | — (not an error; [`LwipErr::class_of`] returns `None`) |
/// | −1 | `ERR_MEM` | `OutOfResources` |
/// | −2 | `ERR_BUF` | `OutOfResources` |
/// | −3 | `ERR_TIMEOUT` | `Timeout` |
/// | −4 | `ERR_RTE` | `NoRoute` |
/// | −5 | `ERR_INPROGRESS` | `WouldBlock` |
/// | −6 | `ERR_VAL` | `InvalidInput` |
/// | −7 | `ERR_WOULDBLOCK` | `WouldBlock` |
/// | −8 | `ERR_USE` | `AddressInUse` |
/// | −9 | `ERR_ALREADY` | `WouldBlock` (a connect is already under way) |
/// | −10 | `ERR_ISCONN` | `InvalidInput` (a backend answers a repeated `connect` on an established connection with `Ok`, not with this) |
/// | −11 | `ERR_CONN` | `ConnectionLost` |
/// | −12 | `ERR_IF` | `NoRoute` |
/// | −13 | `ERR_ABRT` | `Aborted` |
/// | −14 | `ERR_RST` | `Reset` |
/// | −15 | `ERR_CLSD` | `Closed` |
/// | −16 | `ERR_ARG` | `InvalidInput` |
/// | other | — | `Fatal` |
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LwipErr(pub i8);

impl LwipErr {
    /// `ERR_OK`
    pub const OK: LwipErr = LwipErr(0);

    /// The class of an lwIP return code, or `None` for `ERR_OK`.
    pub const fn class_of(code: i8) -> Option<ErrorClass> {
        Some(match code {
            0 => return None,
            -1 | -2 => ErrorClass::OutOfResources,
            -3 => ErrorClass::Timeout,
            -4 | -12 => ErrorClass::NoRoute,
            -5 | -7 | -9 => ErrorClass::WouldBlock,
            -6 | -10 | -16 => ErrorClass::InvalidInput,
            -8 => ErrorClass::AddressInUse,
            -11 => ErrorClass::ConnectionLost,
            -13 => ErrorClass::Aborted,
            -14 => ErrorClass::Reset,
            -15 => ErrorClass::Closed,
            _ => ErrorClass::Fatal,
        })
    }

    /// The lwIP name of the code (`"ERR_RST"`), or `"ERR_?"` for an unknown one.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "ERR_OK",
            -1 => "ERR_MEM",
            -2 => "ERR_BUF",
            -3 => "ERR_TIMEOUT",
            -4 => "ERR_RTE",
            -5 => "ERR_INPROGRESS",
            -6 => "ERR_VAL",
            -7 => "ERR_WOULDBLOCK",
            -8 => "ERR_USE",
            -9 => "ERR_ALREADY",
            -10 => "ERR_ISCONN",
            -11 => "ERR_CONN",
            -12 => "ERR_IF",
            -13 => "ERR_ABRT",
            -14 => "ERR_RST",
            -15 => "ERR_CLSD",
            -16 => "ERR_ARG",
            _ => "ERR_?",
        }
    }
}

/// `ERR_OK` classifies as `Fatal` here: a caller that has an `LwipErr` in hand as an
/// error has already checked it is not `ERR_OK`. Use [`LwipErr::class_of`] on raw codes.
impl Classify for LwipErr {
    fn class(&self) -> ErrorClass {
        match Self::class_of(self.0) {
            Some(c) => c,
            None => ErrorClass::Fatal,
        }
    }
}

impl fmt::Display for LwipErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The incident's `Poll()` fix: these four lwIP codes mean the peer is gone,
    /// WOULDBLOCK and TIMEOUT are not errors, everything else is fatal.
    #[test]
    fn lwip_codes_classify_as_the_incident_fix_requires() {
        for code in [-11, -13, -14, -15] {
            assert_eq!(
                LwipErr(code).class().disposition(),
                Disposition::PeerGone,
                "{}",
                LwipErr(code)
            );
        }
        for code in [-3, -5, -7, -9] {
            assert!(LwipErr(code).class().is_retry(), "{}", LwipErr(code));
        }
        for code in [-1, -2, -4, -6, -8, -10, -12, -16, -17, -100, 5] {
            assert_eq!(
                LwipErr(code).class().disposition(),
                Disposition::Fatal,
                "{}",
                LwipErr(code)
            );
        }
        assert_eq!(LwipErr::class_of(0), None);
    }

    #[test]
    fn every_lwip_code_has_a_name_and_never_panics() {
        for code in i8::MIN..=i8::MAX {
            let e = LwipErr(code);
            let _ = e.class();
            let known = (-16..=0).contains(&code);
            assert_eq!(e.name() != "ERR_?", known, "{code}");
        }
    }

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
    /// The operation does not apply in this state (e.g. writing to a slot that is
    /// still `Allocated`).
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

/// Why [`Pool::connect`](crate::Pool::connect) refused to start a connection.
/// Nothing was allocated when it returns an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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

/// Why [`Pool::listen`](crate::Pool::listen) failed. The listener table is unchanged.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
