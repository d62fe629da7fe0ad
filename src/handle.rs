//! Generation-tagged handles, and why a connection ended.

use core::fmt;

use crate::class::ErrorClass;

/// A connection: (slot, generation).
///
/// The generation changes every time the slot is given to a new connection, so a
/// handle kept after its connection ended can never touch the next one: it gets
/// [`ConnError::Stale`](crate::ConnError::Stale) instead.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnHandle {
    pub(crate) slot: u8,
    pub(crate) generation: u32,
}

impl ConnHandle {
    /// The slot number (0..N): the socket number of wire protocols.
    pub const fn slot(self) -> usize {
        self.slot as usize
    }

    /// The generation of the slot this handle was issued for.
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Display for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn {}#{}", self.slot, self.generation)
    }
}

/// A listener: (index, generation), like [`ConnHandle`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListenerId {
    pub(crate) index: u8,
    pub(crate) generation: u16,
}

impl ListenerId {
    /// The listener table index (0..L).
    pub const fn index(self) -> usize {
        self.index as usize
    }
}

/// Why a connection ended (or is ending). Kept in the slot until it is reused, so
/// diagnostics and late handle users can see it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CloseReason {
    /// The application closed it.
    Closed,
    /// The application aborted it.
    Aborted,
    /// The peer closed (FIN) or went away; the class says how.
    PeerGone(ErrorClass),
    /// The stack failed the connection (a fatal error).
    Failed(ErrorClass),
    /// The outgoing connection failed.
    ConnectFailed(ErrorClass),
    /// The outgoing connection did not complete by its deadline.
    ConnectTimeout,
    /// Reaped: bytes queued, no send progress for the stall grace.
    Stalled,
    /// Closed by the idle timeout.
    Idle,
    /// Freed after the application left it `Aborted`/`OtherEndClosed` too long.
    Abandoned,
}

impl CloseReason {
    /// Short name for logs and reports.
    pub const fn name(self) -> &'static str {
        match self {
            CloseReason::Closed => "closed",
            CloseReason::Aborted => "aborted",
            CloseReason::PeerGone(_) => "peer-gone",
            CloseReason::Failed(_) => "failed",
            CloseReason::ConnectFailed(_) => "connect-failed",
            CloseReason::ConnectTimeout => "connect-timeout",
            CloseReason::Stalled => "stalled",
            CloseReason::Idle => "idle",
            CloseReason::Abandoned => "abandoned",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerGone(c) | CloseReason::Failed(c) | CloseReason::ConnectFailed(c) => {
                write!(f, "{}({})", self.name(), c)
            }
            _ => f.write_str(self.name()),
        }
    }
}
