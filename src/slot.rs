//! One connection slot: the bookkeeping behind a [`ConnHandle`] (sans-IO).

use core::net::SocketAddr;

use crate::handle::{CloseReason, ConnHandle};
use crate::report::SlotReport;
use crate::state::ConnState;
use crate::time::Instant;
use crate::write::TxSide;

/// How a connection came to be.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Accepted on a listener's port (the port number, never a reference).
    Accepted { port: u16 },
    /// Opened by [`Pool::connect`](crate::Pool::connect); fails at `deadline`.
    Outgoing { deadline: Instant },
}

/// What a slot is given when a connection moves in.
pub(crate) struct NewConn<Sock> {
    pub socket: Sock,
    pub state: ConnState,
    pub origin: Origin,
    pub remote: SocketAddr,
    pub protocol: u8,
}

#[derive(Debug)]
pub(crate) struct Slot<Sock, const TX: usize> {
    pub generation: u32,
    pub state: ConnState,
    /// The stack socket; `None` once released (the slot may still be `Aborted`).
    pub socket: Option<Sock>,
    pub origin: Origin,
    pub remote: Option<SocketAddr>,
    pub protocol: u8,
    pub opened_at: Instant,
    pub state_since: Instant,
    pub last_activity: Instant,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub tx: TxSide<TX>,
    /// Writes are still possible (false after reset, loss or a fatal error).
    pub can_send: bool,
    /// Accepted, not yet handed out by `accept_next`.
    pub unclaimed: bool,
    pub close_reason: Option<CloseReason>,
}

impl<Sock, const TX: usize> Slot<Sock, TX> {
    pub const fn new() -> Self {
        Slot {
            generation: 0,
            state: ConnState::Free,
            socket: None,
            origin: Origin::Accepted { port: 0 },
            remote: None,
            protocol: 0,
            opened_at: Instant::ZERO,
            state_since: Instant::ZERO,
            last_activity: Instant::ZERO,
            bytes_in: 0,
            bytes_out: 0,
            tx: TxSide::new(Instant::ZERO),
            can_send: false,
            unclaimed: false,
            close_reason: None,
        }
    }

    /// Give the (free) slot to a new connection; returns its handle.
    pub fn occupy(&mut self, index: usize, new: NewConn<Sock>, now: Instant) -> ConnHandle {
        let NewConn {
            socket,
            state,
            origin,
            remote,
            protocol,
        } = new;
        self.generation = self.generation.wrapping_add(1);
        self.state = state;
        self.socket = Some(socket);
        self.origin = origin;
        self.remote = Some(remote);
        self.protocol = protocol;
        self.opened_at = now;
        self.state_since = now;
        self.last_activity = now;
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.tx = TxSide::new(now);
        self.can_send = true;
        self.unclaimed = matches!(origin, Origin::Accepted { .. });
        self.close_reason = None;
        self.handle(index)
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
            self.state_since = now;
        }
    }

    /// Record the first reason only: later ones are consequences.
    pub fn note_reason(&mut self, reason: CloseReason) {
        if self.close_reason.is_none() {
            self.close_reason = Some(reason);
        }
    }

    /// Mark the slot free. The caller has released the socket.
    ///
    /// An application close keeps the reason the connection already had (why it
    /// failed, or that the peer left); the pool's own decisions (stalled, idle,
    /// abandoned) replace it, so the report says why the pool freed the slot.
    pub fn free(&mut self, reason: CloseReason, now: Instant) {
        match reason {
            CloseReason::Closed | CloseReason::Aborted => self.note_reason(reason),
            _ => self.close_reason = Some(reason),
        }
        self.socket = None;
        self.tx.coalescer.clear();
        self.can_send = false;
        self.unclaimed = false;
        self.set_state(ConnState::Free, now);
    }

    pub fn local_port(&self) -> u16 {
        match self.origin {
            Origin::Accepted { port } => port,
            Origin::Outgoing { .. } => 0,
        }
    }

    /// Whether this slot is an open connection accepted on `port` (counts against its cap).
    pub fn counts_against(&self, port: u16) -> bool {
        self.state.is_in_use() && self.origin == (Origin::Accepted { port })
    }

    pub fn report(&self, index: usize, now: Instant) -> SlotReport {
        let live = self.state.is_in_use();
        SlotReport {
            slot: index as u8,
            generation: self.generation,
            state: self.state,
            local_port: self.local_port(),
            remote: self.remote,
            protocol: self.protocol,
            age: if live {
                now.saturating_since(self.opened_at)
            } else {
                crate::Duration::ZERO
            },
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            idle: now.saturating_since(self.last_activity),
            buffered: self.tx.coalescer.len().min(u16::MAX as usize) as u16,
            close_reason: self.close_reason,
        }
    }
}
