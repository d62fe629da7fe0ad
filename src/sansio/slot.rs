//! One connection slot: the bookkeeping behind a [`ConnHandle`], with no socket and
//! no buffer (the drivers keep those beside the table).

use core::net::{IpAddr, SocketAddr};

use crate::handle::{CloseReason, ConnHandle};
use crate::reaper::SendProgress;
use crate::sansio::Stamp;
use crate::state::ConnState;
use crate::time::{Duration, Instant};

/// A remote address in 20 bytes instead of `SocketAddr`'s 32 (IPv6 flow info and
/// scope id are not kept: a pool only reports the address).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Remote {
    None,
    V4([u8; 4], u16),
    V6([u8; 16], u16),
}

impl Remote {
    pub const fn of(addr: SocketAddr) -> Remote {
        match addr {
            SocketAddr::V4(a) => Remote::V4(a.ip().octets(), a.port()),
            SocketAddr::V6(a) => Remote::V6(a.ip().octets(), a.port()),
        }
    }

    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Remote::None => None,
            Remote::V4(ip, port) => Some(SocketAddr::new(IpAddr::from(ip), port)),
            Remote::V6(ip, port) => Some(SocketAddr::new(IpAddr::from(ip), port)),
        }
    }
}

/// Per-connection events, kept as bits in the slot until drained (no queue to
/// overflow; see [`Event`](crate::Event)).
pub(crate) mod event_bits {
    pub const ACCEPTED: u8 = 1 << 0;
    pub const CONNECTED: u8 = 1 << 1;
    pub const CONNECT_FAILED: u8 = 1 << 2;
    pub const PEER_CLOSED: u8 = 1 << 3;
    pub const REAPED: u8 = 1 << 4;
    pub const ABORTED: u8 = 1 << 5;
}

/// The send side's timers: stall watch and the coalescing deadline.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxTimers {
    pub progress: SendProgress,
    /// When bytes in netpool's coalescing buffer must be handed to the stack.
    pub flush_due: Option<Stamp>,
}

#[derive(Copy, Clone, Debug)]
pub(crate) struct Slot {
    pub generation: u32,
    pub state: ConnState,
    pub protocol: u8,
    /// Event bits not yet drained ([`event_bits`]).
    pub events: u8,
    /// Writes are still possible (false after reset, loss or a fatal error).
    pub can_send: bool,
    /// Opened by `connect` (else accepted on `port`).
    pub outgoing: bool,
    pub close_reason: Option<CloseReason>,
    /// Local port of an accepted connection (0 for outgoing ones).
    pub port: u16,
    pub remote: Remote,
    pub opened_at: Stamp,
    pub state_since: Stamp,
    pub last_activity: Stamp,
    /// Connect deadline (outgoing connections while `Connecting`).
    pub connect_deadline: Stamp,
    pub tx: TxTimers,
    pub bytes_in: u32,
    pub bytes_out: u32,
}

impl Slot {
    pub const fn new() -> Self {
        Slot {
            generation: 0,
            state: ConnState::Free,
            protocol: 0,
            events: 0,
            can_send: false,
            outgoing: false,
            close_reason: None,
            port: 0,
            remote: Remote::None,
            opened_at: Stamp::ZERO,
            state_since: Stamp::ZERO,
            last_activity: Stamp::ZERO,
            connect_deadline: Stamp::ZERO,
            tx: TxTimers {
                progress: SendProgress::new(Instant::ZERO),
                flush_due: None,
            },
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    pub fn handle(&self, index: usize) -> ConnHandle {
        ConnHandle {
            slot: index as u8,
            generation: self.generation,
        }
    }

    pub fn set_state(&mut self, state: ConnState, now: Instant) {
        if self.state != state {
            self.state = state;
            self.state_since = Stamp::of(now);
        }
    }

    /// Record the first reason only: later ones are consequences.
    pub fn note_reason(&mut self, reason: CloseReason) {
        if self.close_reason.is_none() {
            self.close_reason = Some(reason);
        }
    }

    /// Nothing more can be sent: no writes, and nothing left to flush.
    pub fn stop_sending(&mut self) {
        self.can_send = false;
        self.tx.flush_due = None;
    }

    pub fn touch(&mut self, now: Instant) {
        self.last_activity = Stamp::of(now);
    }

    /// Whether this slot is an open connection accepted on `port` (counts against its cap).
    pub fn counts_against(&self, port: u16) -> bool {
        self.state.is_in_use() && !self.outgoing && self.port == port
    }

    /// Open and able to carry data (possibly half-closed by the peer).
    pub fn is_open(&self) -> bool {
        matches!(self.state, ConnState::Connected | ConnState::OtherEndClosed)
    }

    pub fn age(&self, now: Instant) -> Duration {
        if self.state.is_in_use() {
            self.opened_at.elapsed(now)
        } else {
            Duration::ZERO
        }
    }
}
