//! The embedded-nal traits (`TcpClientStack`, `TcpFullStack`) and netpool's
//! extension traits over the bookkeeping.

use core::net::SocketAddr;

use ::smoltcp::socket::tcp::{self, State};
use ::smoltcp::wire::IpEndpoint;
use embedded_nal::{nb, TcpClientStack, TcpFullStack};

use super::{
    dead, elapsed, gone, tcp_mut, tcp_ref, Kind, Listener, Role, SmolError, SmolSocket, SmoltcpStack,
};
use crate::error::Classify;
use crate::stack::{
    LinkStatus, PcbCounters, PcbDiagnostics, PeerStatus, TcpAbort, TcpBacklog, TcpPeerStatus, TcpPush,
    TcpSendFlags, TcpSendQueue,
};
use crate::LinkState;

impl<'a, const M: usize> SmoltcpStack<'a, M> {
    /// Where the connect of socket `i` stands: `Ok(true)` established, `Ok(false)`
    /// still under way, `Err` failed (sticky) or not a connection.
    pub(super) fn progress(&mut self, i: usize) -> Result<bool, SmolError> {
        match self.entries[i].role {
            Role::Connected { .. } => Ok(true),
            Role::Connecting { remote, since } => {
                let socket = tcp_ref(&self.sockets, self.entries[i].handle);
                match socket.state() {
                    State::SynSent | State::SynReceived => Ok(false),
                    State::Closed | State::Listen => {
                        // A reset comes back within a round trip; the timeout needs
                        // at least its own duration since the SYN went out.
                        let timed_out = socket.timeout().is_some_and(|t| elapsed(since, self.now) >= t);
                        let e = if timed_out {
                            SmolError::TimedOut
                        } else {
                            SmolError::Refused
                        };
                        self.entries[i].role = Role::Failed(e);
                        Err(e)
                    }
                    _ => {
                        self.entries[i].role = Role::Connected { remote };
                        Ok(true)
                    }
                }
            }
            Role::Failed(e) => Err(e),
            _ => Err(SmolError::InvalidState),
        }
    }
}

impl<const M: usize> TcpClientStack for SmoltcpStack<'_, M> {
    type TcpSocket = SmolSocket;
    type Error = SmolError;

    /// A free socket, or [`SmolError::NoSocket`]. Nothing happens on the wire.
    fn socket(&mut self) -> Result<SmolSocket, SmolError> {
        // Nothing free or reclaimable: an idle socket of an accept queue will do.
        let i = self
            .take_socket()
            .or_else(|| self.take_idle_queue_socket())
            .ok_or(SmolError::NoSocket)?;
        self.entries[i].role = Role::Fresh;
        Ok(self.handle_of(i))
    }

    /// The first call picks an ephemeral port and queues the SYN (sent at the next
    /// [`poll`](SmoltcpStack::poll)); every call returns `WouldBlock` until the
    /// handshake completes, then `Ok`. Failures ([`Refused`](SmolError::Refused),
    /// [`TimedOut`](SmolError::TimedOut)) are reported by this and every later call
    /// until the socket is closed. `Ok` again on a connected socket to the same
    /// `remote`; [`InvalidState`](SmolError::InvalidState) for another remote, a bound
    /// socket or a listener; [`Unaddressable`](SmolError::Unaddressable) for IPv6.
    fn connect(&mut self, socket: &mut SmolSocket, remote: SocketAddr) -> nb::Result<(), SmolError> {
        let i = self.resolve(socket)?;
        match self.entries[i].role {
            Role::Fresh => {
                let SocketAddr::V4(v4) = remote else {
                    return Err(nb::Error::Other(SmolError::Unaddressable));
                };
                let port = self.ephemeral_port()?;
                let tcp = tcp_mut(&mut self.sockets, self.entries[i].handle);
                tcp.connect(self.iface.context(), IpEndpoint::from(v4), port)
                    .map_err(|e| match e {
                        tcp::ConnectError::InvalidState => SmolError::InvalidState,
                        tcp::ConnectError::Unaddressable => SmolError::Unaddressable,
                    })?;
                self.entries[i].role = Role::Connecting {
                    remote,
                    since: self.now,
                };
                Err(nb::Error::WouldBlock)
            }
            Role::Connecting { remote: r, .. } | Role::Connected { remote: r } if r != remote => {
                Err(nb::Error::Other(SmolError::InvalidState))
            }
            Role::Connecting { .. } | Role::Connected { .. } | Role::Failed(_) => match self.progress(i)? {
                true => Ok(()),
                false => Err(nb::Error::WouldBlock),
            },
            _ => Err(nb::Error::Other(SmolError::InvalidState)),
        }
    }

    /// Copy into the transmit buffer; `WouldBlock` when it is full (or the connect is
    /// still under way). Empty `buffer`: `Ok(0)` while sending is possible. A dead
    /// connection is [`Reset`](SmolError::Reset) (or
    /// [`ConnectionLost`](SmolError::ConnectionLost)).
    fn send(&mut self, socket: &mut SmolSocket, buffer: &[u8]) -> nb::Result<usize, SmolError> {
        let i = self.resolve(socket)?;
        if !self.progress(i)? {
            return Err(nb::Error::WouldBlock);
        }
        let tcp = tcp_mut(&mut self.sockets, self.entries[i].handle);
        match tcp.send_slice(buffer) {
            Ok(0) if !buffer.is_empty() => Err(nb::Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::SendError::InvalidState) => Err(nb::Error::Other(dead(tcp))),
        }
    }

    /// Copy out of the receive buffer; `WouldBlock` when it is empty (or the connect is
    /// still under way). `Ok(0)` for a non-empty `buffer` means the peer sent FIN and
    /// every byte has been read; an empty `buffer` returns `Ok(0)` without looking.
    /// After a reset the data received before it is returned first, then the error.
    fn receive(&mut self, socket: &mut SmolSocket, buffer: &mut [u8]) -> nb::Result<usize, SmolError> {
        let i = self.resolve(socket)?;
        if !self.progress(i)? {
            return Err(nb::Error::WouldBlock);
        }
        if buffer.is_empty() {
            return Ok(0);
        }
        let tcp = tcp_mut(&mut self.sockets, self.entries[i].handle);
        match tcp.recv_slice(buffer) {
            Ok(0) => Err(nb::Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::RecvError::Finished) => Ok(0),
            Err(tcp::RecvError::InvalidState) => Err(nb::Error::Other(dead(tcp))),
        }
    }

    /// Graceful close: FIN after the queued data. The handle (and every copy) is stale
    /// at once; the socket is free when smoltcp is done (see the [module docs](super)).
    /// A listener handle closes the listener. [`Stale`](SmolError::Stale) for a stale
    /// handle, which closes nothing.
    fn close(&mut self, socket: SmolSocket) -> Result<(), SmolError> {
        if socket.is_listener() {
            return self.close_listener(&socket);
        }
        let i = self.resolve(&socket)?;
        tcp_mut(&mut self.sockets, self.entries[i].handle).close();
        self.release(i);
        Ok(())
    }
}

impl<const M: usize> TcpFullStack for SmoltcpStack<'_, M> {
    /// Reserve `local_port` for a later [`listen`](embedded_nal::TcpFullStack::listen) (port 0 picks an
    /// ephemeral port; read it with [`SmoltcpStack::local_port`]). Only on a fresh
    /// socket; [`AddressInUse`](SmolError::AddressInUse) when another socket of this
    /// stack is bound to or listens on the port (connections using the port, e.g. in
    /// TIME-WAIT after the previous listener closed, do not count, as with
    /// `SO_REUSEADDR`).
    fn bind(&mut self, socket: &mut SmolSocket, local_port: u16) -> Result<(), SmolError> {
        let i = self.resolve(socket)?;
        if self.entries[i].role != Role::Fresh {
            return Err(SmolError::InvalidState);
        }
        let port = if local_port == 0 {
            self.ephemeral_port()?
        } else if self.port_reserved(local_port) {
            return Err(SmolError::AddressInUse);
        } else {
            local_port
        };
        self.entries[i].role = Role::Bound { port };
        Ok(())
    }

    /// Start listening: the socket becomes the first armed socket of the port and
    /// `socket` becomes a listener handle; free sockets are armed up to the backlog.
    /// `Ok` again on a listener handle.
    fn listen(&mut self, socket: &mut SmolSocket) -> Result<(), SmolError> {
        if socket.is_listener() {
            return self.resolve_listener(socket).map(|_| ());
        }
        let i = self.resolve(socket)?;
        let Role::Bound { port } = self.entries[i].role else {
            return Err(SmolError::InvalidState);
        };
        let li = self
            .listeners
            .iter()
            .position(|l| !l.open)
            .ok_or(SmolError::NoListenerSlot)?;
        tcp_mut(&mut self.sockets, self.entries[i].handle)
            .listen(port)
            .map_err(|e| match e {
                tcp::ListenError::InvalidState => SmolError::InvalidState,
                tcp::ListenError::Unaddressable => SmolError::Unaddressable,
            })?;
        let l = &mut self.listeners[li];
        *l = Listener {
            port,
            generation: l.generation.wrapping_add(1),
            open: true,
            backlog: self.backlog,
            sized: false,
        };
        let e = &mut self.entries[i];
        e.generation = e.generation.wrapping_add(1);
        e.role = Role::armed(li);
        *socket = SmolSocket {
            index: li as u16,
            generation: self.listeners[li].generation,
            kind: Kind::Listener,
        };
        self.refresh_listener(li);
        Ok(())
    }

    /// Hand out an armed socket whose connection is established (ESTABLISHED, or
    /// CLOSE-WAIT if the peer already sent FIN), and re-arm the port from free sockets.
    /// `WouldBlock` when none is ready. Only on a listener handle.
    fn accept(&mut self, socket: &mut SmolSocket) -> nb::Result<(SmolSocket, SocketAddr), SmolError> {
        let li = self.resolve_listener(socket)?;
        self.refresh_listener(li);
        let ready = (0..self.entries.len()).find_map(|i| {
            if !self.entries[i].role.armed_for(li) {
                return None;
            }
            let tcp = tcp_ref(&self.sockets, self.entries[i].handle);
            match tcp.state() {
                State::Established | State::CloseWait => tcp.remote_endpoint().map(|ep| (i, ep)),
                _ => None,
            }
        });
        let Some((i, remote)) = ready else {
            return Err(nb::Error::WouldBlock);
        };
        let l = &mut self.listeners[li];
        if l.sized {
            // Beyond the pool's room a connection waits in the accept queue.
            if l.backlog == 0 {
                return Err(nb::Error::WouldBlock);
            }
            l.backlog -= 1;
        }
        let remote = SocketAddr::from(remote);
        self.entries[i].role = Role::Connected { remote };
        self.refresh_listener(li);
        Ok((self.handle_of(i), remote))
    }
}

/// Native: `tcp::Socket::abort` moves the socket to CLOSED; the next
/// [`poll`](SmoltcpStack::poll) sends one RST, after which the socket is free. A socket
/// without a connection is free at once. A listener handle is closed as by `close`.
impl<const M: usize> TcpAbort for SmoltcpStack<'_, M> {
    const NATIVE_ABORT: bool = true;

    fn abort(&mut self, socket: SmolSocket) -> Result<(), SmolError> {
        if socket.is_listener() {
            return self.close_listener(&socket);
        }
        let i = self.resolve(&socket)?;
        tcp_mut(&mut self.sockets, self.entries[i].handle).abort();
        self.release(i);
        Ok(())
    }
}

/// Fallback: smoltcp has no per-write PSH or MORE control (it sets no PSH at all and
/// sends whatever the window allows), so netpool coalesces `More` writes itself.
impl<const M: usize> TcpSendFlags for SmoltcpStack<'_, M> {}

/// Nothing to push: smoltcp sends whatever its window allows at the next poll.
impl<const M: usize> TcpPush for SmoltcpStack<'_, M> {}

/// Native: `tcp::Socket::send_queue`. smoltcp removes bytes from the transmit buffer
/// only when they are acknowledged, so its length is exactly "taken but not yet
/// acknowledged" (unsent plus in flight). `None` for sockets that are neither
/// connecting nor connected.
impl<const M: usize> TcpSendQueue for SmoltcpStack<'_, M> {
    fn send_queue(&mut self, socket: &SmolSocket) -> Option<usize> {
        let i = self.resolve(socket).ok()?;
        match self.entries[i].role {
            Role::Connecting { .. } | Role::Connected { .. } => {
                Some(tcp_ref(&self.sockets, self.entries[i].handle).send_queue())
            }
            _ => None,
        }
    }
}

/// Native, from the TCP state without reading: a peer FIN (CLOSE-WAIT and later) with
/// an empty receive queue is [`PeerStatus::Closed`]; an established connection smoltcp
/// moved to CLOSED is `Gone(Reset)` (`Gone(ConnectionLost)` when the socket has a
/// timeout, see the [module docs](super)); a failed connect is `Gone` with its class;
/// anything else connecting or connected is `Open`. `Unknown` for listeners, stale
/// handles and sockets without a connection.
impl<const M: usize> TcpPeerStatus for SmoltcpStack<'_, M> {
    fn peer_status(&mut self, socket: &SmolSocket) -> PeerStatus {
        let Ok(i) = self.resolve(socket) else {
            return PeerStatus::Unknown;
        };
        match self.entries[i].role {
            Role::Connecting { .. } | Role::Failed(_) => match self.progress(i) {
                Ok(_) => PeerStatus::Open,
                Err(e) => PeerStatus::Gone(e.class()),
            },
            Role::Connected { .. } => {
                let tcp = tcp_ref(&self.sockets, self.entries[i].handle);
                match tcp.state() {
                    State::CloseWait | State::LastAck | State::Closing | State::TimeWait => {
                        if tcp.recv_queue() == 0 {
                            PeerStatus::Closed
                        } else {
                            PeerStatus::Open
                        }
                    }
                    State::Closed => PeerStatus::Gone(gone(tcp).class()),
                    _ => PeerStatus::Open,
                }
            }
            _ => PeerStatus::Unknown,
        }
    }
}

/// The state last set with [`SmoltcpStack::set_link`] (initially `Unknown`).
/// Native: the listener keeps `connections` sockets armed (listening, or holding a
/// connection not yet accepted), taking free sockets first, then reclaiming closing
/// ones ([`Reclaim`](super::Reclaim)); idle listening sockets beyond the number are freed. A stale or
/// non-listener handle is ignored.
impl<const M: usize> TcpBacklog for SmoltcpStack<'_, M> {
    const NATIVE_BACKLOG: bool = true;

    fn set_backlog(&mut self, listener: &mut SmolSocket, connections: usize) {
        if let Ok(li) = self.resolve_listener(listener) {
            let l = &mut self.listeners[li];
            l.backlog = connections;
            l.sized = true;
            self.refresh_listener(li);
        }
    }

    fn set_handshake_deadline(&mut self, deadline: crate::time::Duration) {
        self.handshake_deadline = deadline;
    }
}

/// Native: [`SmoltcpStack::pcb_counters`].
impl<const M: usize> PcbDiagnostics for SmoltcpStack<'_, M> {
    fn pcb_counters(&self) -> PcbCounters {
        self.counters
    }
}

impl<const M: usize> LinkStatus for SmoltcpStack<'_, M> {
    fn link_state(&self) -> LinkState {
        self.link
    }
}
