//! The handles the stack gives out ([`SmolSocket`]: an adopted socket or a listener,
//! generation-checked) and how a handle is resolved to its socket; [`SocketCounts`].

use core::fmt;

use super::{Role, SmolError, SmoltcpStack};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(super) enum Kind {
    /// `index` is an adopted socket.
    Socket,
    /// `index` is a listener slot.
    Listener,
}

/// A socket of [`SmoltcpStack`]: a generation-tagged token, `Copy` like smoltcp's
/// [`SocketHandle`](::smoltcp::iface::SocketHandle).
///
/// It names either one adopted TCP socket (from [`socket`](embedded_nal::TcpClientStack::socket) or
/// [`accept`](embedded_nal::TcpFullStack::accept)) or, after [`listen`](embedded_nal::TcpFullStack::listen), a
/// listener (a port with its armed sockets). Once its owner gives it back, every copy
/// is stale ([`SmolError::Stale`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SmolSocket {
    pub(super) index: u16,
    pub(super) generation: u32,
    pub(super) kind: Kind,
}

impl SmolSocket {
    /// The adopted socket's index (in adoption order), or the listener slot for a
    /// listener handle.
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// The generation the handle was issued for.
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// `true` for a listener handle (after a successful `listen`).
    pub const fn is_listener(self) -> bool {
        matches!(self.kind, Kind::Listener)
    }
}

impl fmt::Display for SmolSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            Kind::Socket => "tcp",
            Kind::Listener => "listener",
        };
        write!(f, "{what} {}#{}", self.index, self.generation)
    }
}

/// How many adopted sockets are in each role ([`SmoltcpStack::counts`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SocketCounts {
    /// Free: [`socket`](embedded_nal::TcpClientStack::socket) or a listener can take them.
    pub free: usize,
    /// Handed out, not connecting, connected or listening (fresh, bound, or a failed
    /// connect not yet closed).
    pub idle: usize,
    /// Armed for a listener, in LISTEN or SYN-RECEIVED (or CLOSED for a moment: a
    /// connection that died before it was accepted, listening again at the next poll).
    pub listening: usize,
    /// Armed for a listener, holding an established connection not yet accepted.
    pub pending: usize,
    /// Connecting (SYN sent).
    pub connecting: usize,
    /// Connected (by `connect` or `accept`), until the application closes them.
    pub connected: usize,
    /// Given back by the application (close or abort), waiting for smoltcp to finish
    /// (FIN handshake, TIME-WAIT, RST to send).
    pub closing: usize,
}

impl SocketCounts {
    /// All adopted sockets.
    pub const fn total(&self) -> usize {
        self.free
            + self.idle
            + self.listening
            + self.pending
            + self.connecting
            + self.connected
            + self.closing
    }
}

impl<'a, const M: usize> SmoltcpStack<'a, M> {
    /// The entry of a live socket handle.
    pub(super) fn resolve(&self, s: &SmolSocket) -> Result<usize, SmolError> {
        if s.kind != Kind::Socket {
            return Err(SmolError::InvalidState);
        }
        let i = s.index as usize;
        let e = self.entries.get(i).ok_or(SmolError::Stale)?;
        if e.generation != s.generation {
            return Err(SmolError::Stale);
        }
        if matches!(e.role, Role::Free | Role::Armed { .. } | Role::Closing { .. }) {
            return Err(SmolError::Stale);
        }
        Ok(i)
    }

    /// The slot of a live listener handle.
    pub(super) fn resolve_listener(&self, s: &SmolSocket) -> Result<usize, SmolError> {
        if s.kind != Kind::Listener {
            return Err(SmolError::InvalidState);
        }
        let li = s.index as usize;
        match self.listeners.get(li) {
            Some(l) if l.open && l.generation == s.generation => Ok(li),
            _ => Err(SmolError::Stale),
        }
    }

    pub(super) fn handle_of(&self, i: usize) -> SmolSocket {
        SmolSocket {
            index: i as u16,
            generation: self.entries[i].generation,
            kind: Kind::Socket,
        }
    }
}
