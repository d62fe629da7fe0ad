//! Error classes: what a stack error means for a connection, whatever stack produced
//! it, and the one disposition that follows from each. Depends on nothing else in the
//! crate, so every module may name a class.

use core::fmt;

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
#[non_exhaustive]
pub enum Disposition {
    /// Not an error: no progress now, try again later.
    Retry,
    /// The peer is gone: the slot becomes [`ConnState::OtherEndClosed`](crate::ConnState::OtherEndClosed).
    PeerGone,
    /// The connection is unusable: the slot becomes [`ConnState::Aborted`](crate::ConnState::Aborted).
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
