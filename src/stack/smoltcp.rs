//! smoltcp backend: [`SmoltcpStack`], an embedded-nal [`TcpFullStack`] over a smoltcp
//! 0.14 [`Interface`] and a fixed [`SocketSet`] of TCP sockets, for bare metal (e.g. an
//! ESP32-C3 with esp-radio's smoltcp device) and host simulators.
//!
//! No allocation, no `unsafe`, no panics: every socket and buffer comes from the caller,
//! before construction.
//!
//! # The model
//!
//! smoltcp has no socket allocator and no accept queue: a TCP socket is a fixed object
//! in a [`SocketSet`], with its buffers, and one socket carries one connection. The
//! stack therefore works like lwIP over a fixed PCB pool:
//!
//! * **Adoption.** [`SmoltcpStack::new`] adopts the TCP sockets already in the set (at
//!   most `M`) and never adds or removes a socket afterwards, so smoltcp's panic on a
//!   full set can never be reached. Each adopted socket has a role: *free*, *in use*
//!   (handed out by [`socket`](TcpClientStack::socket) or [`accept`](TcpFullStack::accept)),
//!   *armed* (listening for a listener) or *closing*. [`SmoltcpStack::counts`] counts
//!   them.
//! * **Close keeps the socket busy until it is needed.** [`close`](TcpClientStack::close)
//!   queues FIN (smoltcp sends it after the queued data); the socket stays *closing*
//!   until smoltcp reaches CLOSED, then becomes free. An active closer passes through
//!   TIME-WAIT, which smoltcp holds for 10 s. The stack notes when each closing socket
//!   entered its TCP state.
//! * **Reclaim on demand, as lwIP's `tcp_alloc`.** When a socket is needed — by
//!   [`socket`](TcpClientStack::socket), or to keep a listener armed — and none is
//!   free, the stack takes a closing one ([`Reclaim`], default
//!   [`Reclaim::Closing`]): the oldest in TIME-WAIT, else LAST-ACK, else CLOSING, else
//!   FIN-WAIT-1/2 held past a bound ([`with_fin_wait_bound`](SmoltcpStack::with_fin_wait_bound),
//!   default 20 s). Never an open connection. Each reclaim is counted by state
//!   ([`SmoltcpStack::pcb_counters`], and the pool's [`Report`](crate::Report)). Only
//!   with nothing to reclaim does `socket` fail, with [`SmolError::NoSocket`] (class
//!   [`OutOfResources`](ErrorClass::OutOfResources)), like lwIP's `tcp_new` returning
//!   `NULL`.
//! * **Listening = armed sockets, as many as the pool can serve.** smoltcp has no SYN
//!   queue: a socket in LISTEN takes one SYN. [`bind`](TcpFullStack::bind) +
//!   [`listen`](TcpFullStack::listen) turn the handle into a *listener* handle and put
//!   sockets in LISTEN on the port, the handle's own socket first: at first
//!   [`backlog`](SmoltcpStack::with_backlog) of them (default [`DEFAULT_BACKLOG`]), then
//!   as many as [`TcpBacklog::set_backlog`] says — netpool's [`Pool`](crate::Pool)
//!   says its room on the port (the port's cap minus its open connections, at most the
//!   free slots), so a burst as large as that room is taken, not refused. Each armed
//!   socket takes one connection, which stays armed until
//!   [`accept`](TcpFullStack::accept) hands it out (once ESTABLISHED, or CLOSE-WAIT when
//!   the peer already sent FIN). `accept`, `set_backlog` and
//!   [`poll`](SmoltcpStack::poll) re-arm the port from free or reclaimed sockets; idle
//!   listening sockets beyond the number are freed; an armed connection that dies
//!   before it is accepted is put back in LISTEN. A poll that leaves a listener wanting
//!   sockets with none listening is counted (`unarmed_passes`). Closing the listener
//!   handle closes its listening sockets and resets (RST) connections it had not handed
//!   out.
//! * **The accept queue.** A listener the pool sizes keeps at least
//!   [`with_accept_queue`](SmoltcpStack::with_accept_queue) sockets armed (default
//!   [`DEFAULT_ACCEPT_QUEUE`]) even when the pool's room is smaller: a burst larger than
//!   the room completes its handshakes and waits, and `accept` hands out no more than
//!   the room the pool last told (counted down by each accept), so the pool takes the
//!   waiting connections as slots free instead of refusing them. While the pool has no
//!   room at all, a connection waits at most the handshake deadline, then is reset
//!   (`accept_queue_expired`). A [`socket`](TcpClientStack::socket) that finds nothing
//!   free or reclaimable takes an idle queue socket.
//! * **Half-open handshakes: the handshake lease** ([`super::handshake`]). A
//!   SYN takes a listening socket into SYN-RECEIVED; a peer that never sends the final
//!   ACK would hold it while smoltcp retransmits its SYN-ACK. Half-open sockets are kept
//!   apart from the room: the listener keeps its room listening (or holding connections
//!   not yet accepted) from free or reclaimed sockets; a half-open socket is reset and
//!   listens again after the handshake deadline
//!   ([`Config::handshake_deadline`](crate::Config::handshake_deadline), told by the pool
//!   through [`TcpBacklog::set_handshake_deadline`]); when no socket is left to cover the
//!   room, or for a [`socket`](TcpClientStack::socket) that finds none, the half-open
//!   socket past its round trip that has waited longest is reset at once. One younger
//!   than the round trip is never taken. Counted in [`PcbCounters`] as
//!   `half_open_expired` and `half_open_evicted`.
//! * **Generation-tagged handles.** A [`SmolSocket`] is a `Copy` token (socket index +
//!   generation), like smoltcp's own [`SocketHandle`]. The generation changes when the
//!   handle's owner gives the socket back (`close`, `abort`, or `listen` turning it into
//!   a listener handle), so a kept copy gets [`SmolError::Stale`] and never touches the
//!   socket's next user. Generations are 32-bit, like the pool's own handles.
//! * **Driving.** Nothing happens on the wire between calls to
//!   [`SmoltcpStack::poll`], which polls the interface, then frees finished closing
//!   sockets and re-arms listeners. Call it from the main loop (before
//!   [`Pool::poll`](crate::Pool::poll)); [`SmoltcpStack::poll_at`] says when it is due.
//! * **Connect.** [`connect`](TcpClientStack::connect) picks an ephemeral local port
//!   (49152–65535, an own counter that skips ports in use; see
//!   [`SmoltcpStack::with_port_seed`]) and returns `WouldBlock` until the handshake
//!   completes. A refused connect (RST) is [`SmolError::Refused`]; one that ran into
//!   the socket's smoltcp [`timeout`](tcp::Socket::set_timeout) is
//!   [`SmolError::TimedOut`]. A failed connect is sticky: the socket reports the same
//!   error until it is closed. IPv4 only.
//! * **Receive** returns `Ok(0)` once the peer sent FIN and every byte was read (the
//!   embedded-nal EOF convention netpool uses); data received before a reset stays
//!   readable, then the reset is reported.
//!
//! Adopted sockets get Nagle's algorithm turned off (netpool decides itself when data
//! goes out); every other setting the caller gave them (timeout, keep-alive, ACK delay,
//! buffers) is kept across reuses.
//!
//! # Extension traits: native or fallback
//!
//! | trait | here | how |
//! |---|---|---|
//! | [`TcpAbort`] | native | `tcp::Socket::abort`: one RST at the next poll, then the socket is free |
//! | [`TcpSendFlags`] | fallback | smoltcp has no per-write PSH/MORE control; netpool coalesces (give the pool a `TX` buffer) |
//! | [`TcpSendQueue`] | native | `tcp::Socket::send_queue`: the transmit buffer holds exactly the bytes not yet acknowledged |
//! | [`TcpPeerStatus`] | native | from the TCP state and the receive queue, without reading |
//! | [`LinkStatus`] | set by the application | [`SmoltcpStack::set_link`] from the WiFi/PHY driver (initially unknown) |
//! | [`TcpBacklog`] | native | the listener's armed sockets follow the pool's room on the port |
//! | [`PcbDiagnostics`] | native | reclaims by state, passes with no socket listening |
//!
//! # smoltcp limits
//!
//! * smoltcp does not say why a connection went to CLOSED. Without a socket timeout a
//!   connection can only end that way by a reset, reported as [`SmolError::Reset`];
//!   with a timeout set it is [`SmolError::ConnectionLost`] (reset or timeout). For a
//!   connect, a failure after less than the timeout must be a reset
//!   ([`Refused`](SmolError::Refused)), one after it is reported as
//!   [`TimedOut`](SmolError::TimedOut).
//! * A SYN-RECEIVED socket whose handshake never completes would be retransmitted
//!   forever by smoltcp (unless the socket has a
//!   [`timeout`](tcp::Socket::set_timeout)); the handshake lease bounds it instead (see
//!   *Half-open handshakes* above). (A closing socket whose peer vanished is reclaimed
//!   when needed.)
//! * `bind` conflicts only with this stack's bound ports and listeners (like
//!   `SO_REUSEADDR`); ephemeral ports skip every port a socket of the set uses, TIME-WAIT
//!   included. smoltcp hands a SYN to the first socket in the set that accepts it.
//!
//! # Setting it up
//!
//! ```
//! use netpool::stack::smoltcp::SmoltcpStack;
//! use netpool::{Config, Pool};
//! use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
//! use smoltcp::phy::Device;
//! use smoltcp::socket::tcp;
//! use smoltcp::time::Instant;
//! use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
//!
//! /// Four TCP sockets with 1 KiB buffers each way, all from caller storage (on bare
//! /// metal: `static` storage, e.g. through `static_cell`).
//! fn make_stack<'a, D: Device>(
//!     device: &mut D,
//!     storage: &'a mut [SocketStorage<'a>; 4],
//!     buffers: &'a mut [[u8; 1024]; 8],
//! ) -> SmoltcpStack<'a, 4> {
//!     let mac = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
//!     let mut config = IfaceConfig::new(HardwareAddress::Ethernet(mac));
//!     config.random_seed = 0x5eed; // from the hardware RNG
//!     let mut iface = Interface::new(config, device, Instant::ZERO);
//!     iface.update_ip_addrs(|addrs| {
//!         let _ = addrs.push(IpCidr::new(IpAddress::v4(192, 168, 1, 10), 24));
//!     });
//!     let mut sockets = SocketSet::new(&mut storage[..]);
//!     let mut bufs = buffers.iter_mut();
//!     while let (Some(rx), Some(tx)) = (bufs.next(), bufs.next()) {
//!         let rx = tcp::SocketBuffer::new(&mut rx[..]);
//!         let tx = tcp::SocketBuffer::new(&mut tx[..]);
//!         sockets.add(tcp::Socket::new(rx, tx));
//!     }
//!     SmoltcpStack::new(iface, sockets).with_backlog(2).with_port_seed(0x5eed)
//! }
//!
//! /// One pass of the main loop: the network first, then the pool.
//! fn service<D: Device>(pool: &mut Pool<SmoltcpStack<'_, 4>, 2, 1, 256>, device: &mut D, now_ms: u64) {
//!     pool.stack_mut().poll(Instant::from_millis(now_ms as i64), device);
//!     pool.poll(netpool::Instant::from_millis(now_ms));
//!     // ... accept_next / read / write / close ...
//! }
//! # fn demo<D: Device>(device: &mut D) {
//! #     let storage = Box::leak(Box::new([const { SocketStorage::EMPTY }; 4]));
//! #     let buffers = Box::leak(Box::new([[0u8; 1024]; 8]));
//! #     let stack = make_stack(device, storage, buffers);
//! #     let mut pool: Pool<_, 2, 1, 256> = Pool::new(stack, Config::new());
//! #     service(&mut pool, device, 0);
//! # }
//! ```

use core::fmt;
use core::net::SocketAddr;

use ::smoltcp::iface::{Interface, PollResult, SocketHandle, SocketSet};
use ::smoltcp::phy::Device;
use ::smoltcp::socket::tcp::{self, State};
use ::smoltcp::socket::AnySocket;
use ::smoltcp::time::{Duration, Instant};
use ::smoltcp::wire::IpEndpoint;
use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};

use super::{
    LinkState, LinkStatus, PcbCounters, PcbDiagnostics, PeerStatus, TcpAbort, TcpBacklog, TcpPeerStatus,
    TcpPush, TcpSendFlags, TcpSendQueue,
};
use crate::error::{Classify, ErrorClass};
use crate::sansio::handshake;

/// Sockets armed for a new listener until [`TcpBacklog::set_backlog`] sizes it, unless
/// [`SmoltcpStack::with_backlog`] sets another number.
pub const DEFAULT_BACKLOG: usize = 2;

/// The accept queue's depth, unless [`SmoltcpStack::with_accept_queue`] sets another:
/// a listener the pool sizes keeps at least this many sockets armed, connections
/// beyond the pool's room waiting in them.
pub const DEFAULT_ACCEPT_QUEUE: usize = 4;

/// How long a closing socket stays in FIN-WAIT before [`Reclaim::Closing`] may take
/// it: lwIP's `TCP_FIN_WAIT_TIMEOUT`, 20 s.
pub const DEFAULT_FIN_WAIT_BOUND: Duration = Duration::from_secs(20);

/// Which closing sockets (given back by the application, still finishing their close
/// in smoltcp) may be taken for a new connection or a listener when no socket is free.
///
/// A candidate is taken oldest first (by when it entered its state) within the first
/// state that has one. An open connection is never taken.
///
/// ```
/// use netpool::stack::smoltcp::Reclaim;
/// assert_eq!(Reclaim::default(), Reclaim::Closing);
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Reclaim {
    /// lwIP 2's `tcp_alloc` order: TIME-WAIT, then LAST-ACK, then CLOSING, then
    /// FIN-WAIT-1/FIN-WAIT-2 held past the
    /// [FIN-WAIT bound](SmoltcpStack::with_fin_wait_bound). The default.
    #[default]
    Closing,
    /// TIME-WAIT only (lwIP 1.4's first step).
    TimeWait,
    /// Never: a closing socket holds its socket until smoltcp is done with it (10 s of
    /// TIME-WAIT for an active closer), and a listener with no free socket refuses SYNs.
    Never,
}

/// First port of the ephemeral range (IANA dynamic ports).
const EPHEMERAL_FIRST: u16 = 49152;
/// Number of ports in the ephemeral range (49152..=65535).
const EPHEMERAL_COUNT: u16 = 16384;

// ---------------------------------------------------------------------------------
// Error
// ---------------------------------------------------------------------------------

/// Why a [`SmoltcpStack`] operation failed.
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

// ---------------------------------------------------------------------------------
// Handles and bookkeeping
// ---------------------------------------------------------------------------------

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Kind {
    /// `index` is an adopted socket.
    Socket,
    /// `index` is a listener slot.
    Listener,
}

/// A socket of [`SmoltcpStack`]: a generation-tagged token, `Copy` like smoltcp's
/// [`SocketHandle`].
///
/// It names either one adopted TCP socket (from [`socket`](TcpClientStack::socket) or
/// [`accept`](TcpFullStack::accept)) or, after [`listen`](TcpFullStack::listen), a
/// listener (a port with its armed sockets). Once its owner gives it back, every copy
/// is stale ([`SmolError::Stale`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SmolSocket {
    index: u16,
    generation: u32,
    kind: Kind,
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
    /// Free: [`socket`](TcpClientStack::socket) or a listener can take them.
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

#[derive(Copy, Clone, Debug, PartialEq)]
enum Role {
    Free,
    /// From `socket()`, nothing done yet.
    Fresh,
    /// `bind()` done, `listen()` not yet.
    Bound {
        port: u16,
    },
    /// Listening (or holding a not yet accepted connection) for listener slot `listener`.
    Armed {
        listener: u16,
        /// When the stack first saw it half-open (SYN-RECEIVED): its handshake lease
        /// counts from then. `None` while it listens or holds a connection.
        half_open_since: Option<Instant>,
        /// When the stack first saw it holding a connection waiting for `accept`.
        ready_since: Option<Instant>,
    },
    /// `connect()` started at `since` (time of the last poll).
    Connecting {
        remote: SocketAddr,
        since: Instant,
    },
    /// Established (by connect or accept), owned by the application.
    Connected {
        remote: SocketAddr,
    },
    /// The connect failed; reported until the socket is closed.
    Failed(SmolError),
    /// Given back by the application; freed when smoltcp is done with it, or
    /// reclaimed before that when a socket is needed.
    Closing {
        /// The TCP state last seen ...
        state: State,
        /// ... and since when (the stack's clock: the last poll).
        since: Instant,
    },
}

impl Role {
    /// A socket armed for listener slot `li`, listening or holding a connection.
    fn armed_for(self, li: usize) -> bool {
        matches!(self, Role::Armed { listener, .. } if usize::from(listener) == li)
    }

    /// Armed for listener slot `li` and listening.
    const fn armed(li: usize) -> Role {
        Role::Armed {
            listener: li as u16,
            half_open_since: None,
            ready_since: None,
        }
    }
}

#[derive(Copy, Clone, Debug)]
struct Entry {
    handle: SocketHandle,
    generation: u32,
    role: Role,
}

#[derive(Copy, Clone, Debug)]
struct Listener {
    port: u16,
    generation: u32,
    open: bool,
    /// Connections to be ready for: sockets kept armed (listening or holding a
    /// connection not yet accepted).
    backlog: usize,
    /// Whether the pool sizes it ([`TcpBacklog::set_backlog`]): then `backlog` is the
    /// pool's room, counted down by each `accept`, and the accept queue applies.
    sized: bool,
}

/// The TCP socket behind an adopted handle.
///
/// `SocketSet::get_mut` panics only for a handle of another set, a removed socket or a
/// socket of another type. Adopted handles come from this set's own iteration, were
/// TCP sockets when adopted, and the set is never given out mutably (sockets cannot be
/// removed or replaced), so it cannot panic here.
fn tcp_mut<'s, 'a>(sockets: &'s mut SocketSet<'a>, handle: SocketHandle) -> &'s mut tcp::Socket<'a> {
    sockets.get_mut::<tcp::Socket<'a>>(handle)
}

fn tcp_ref<'s, 'a>(sockets: &'s SocketSet<'a>, handle: SocketHandle) -> &'s tcp::Socket<'a> {
    sockets.get::<tcp::Socket<'a>>(handle)
}

/// A smoltcp instant on netpool's clock (milliseconds; before zero is zero).
fn netpool_instant(t: Instant) -> crate::time::Instant {
    crate::time::Instant::from_millis(u64::try_from(t.total_millis()).unwrap_or(0))
}

/// Time from `since` to `now`, zero if the clock went backwards.
fn elapsed(since: Instant, now: Instant) -> Duration {
    if now > since {
        now - since
    } else {
        Duration::ZERO
    }
}

/// Why an established connection is in CLOSED: smoltcp does not say. Without a socket
/// timeout only a reset (or the interface losing the local address) gets it there.
fn gone(socket: &tcp::Socket<'_>) -> SmolError {
    if socket.timeout().is_some() {
        SmolError::ConnectionLost
    } else {
        SmolError::Reset
    }
}

/// The error of a connected socket smoltcp refused to send or receive on.
fn dead(socket: &tcp::Socket<'_>) -> SmolError {
    match socket.state() {
        State::Closed => gone(socket),
        State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck | State::TimeWait => {
            SmolError::Closed
        }
        _ => SmolError::InvalidState,
    }
}

// ---------------------------------------------------------------------------------
// Stack
// ---------------------------------------------------------------------------------

/// smoltcp as an embedded-nal stack with netpool's extension traits (see the
/// [module docs](self) for the model).
///
/// `M` is the most TCP sockets it adopts from the set (and the size of its listener
/// table); at most 65 535.
pub struct SmoltcpStack<'a, const M: usize> {
    iface: Interface,
    sockets: SocketSet<'a>,
    entries: heapless::Vec<Entry, M>,
    listeners: [Listener; M],
    backlog: usize,
    accept_queue: usize,
    reclaim: Reclaim,
    fin_wait_bound: Duration,
    counters: PcbCounters,
    /// How long a half-open armed socket may hold its place ([`TcpBacklog`]).
    handshake_deadline: crate::time::Duration,
    next_port: u16,
    now: Instant,
    link: LinkState,
}

impl<'a, const M: usize> SmoltcpStack<'a, M> {
    const CAPACITY_FITS: () = assert!(M <= u16::MAX as usize, "at most 65535 sockets");

    /// A stack over `iface`, adopting the TCP sockets in `sockets` (at most `M`, in the
    /// set's order; further TCP sockets and sockets of other types are left alone, see
    /// [`socket_mut`](Self::socket_mut)).
    ///
    /// Adopted sockets get Nagle's algorithm turned off. A socket that is not closed is
    /// closed (FIN) and counts as closing until smoltcp is done with it.
    pub fn new(iface: Interface, mut sockets: SocketSet<'a>) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CAPACITY_FITS;
        let mut entries: heapless::Vec<Entry, M> = heapless::Vec::new();
        for (handle, socket) in sockets.iter_mut() {
            if entries.is_full() {
                break;
            }
            let Some(socket) = tcp::Socket::downcast_mut(socket) else {
                continue;
            };
            socket.set_nagle_enabled(false);
            let role = if socket.state() == State::Closed && socket.remote_endpoint().is_none() {
                Role::Free
            } else {
                socket.close();
                Role::Closing {
                    state: socket.state(),
                    since: Instant::ZERO,
                }
            };
            let _ = entries.push(Entry {
                handle,
                generation: 0,
                role,
            });
        }
        SmoltcpStack {
            iface,
            sockets,
            entries,
            listeners: [Listener {
                port: 0,
                generation: 0,
                open: false,
                backlog: 0,
                sized: false,
            }; M],
            backlog: DEFAULT_BACKLOG,
            accept_queue: DEFAULT_ACCEPT_QUEUE,
            reclaim: Reclaim::Closing,
            fin_wait_bound: DEFAULT_FIN_WAIT_BOUND,
            counters: PcbCounters {
                reclaimed_time_wait: 0,
                reclaimed_last_ack: 0,
                reclaimed_closing: 0,
                reclaimed_fin_wait: 0,
                unarmed_passes: 0,
                half_open_expired: 0,
                half_open_evicted: 0,
                accept_queue_expired: 0,
            },
            handshake_deadline: crate::Config::new().handshake_deadline,
            next_port: EPHEMERAL_FIRST,
            now: Instant::ZERO,
            link: LinkState::Unknown,
        }
    }

    /// Arm `backlog` sockets for a new listener (at least 1; default
    /// [`DEFAULT_BACKLOG`]) until [`TcpBacklog::set_backlog`] sizes it — netpool's
    /// [`Pool`](crate::Pool) does, to its room on the port, at its next poll.
    #[must_use]
    pub fn with_backlog(mut self, backlog: usize) -> Self {
        self.backlog = backlog.max(1);
        self
    }

    /// Which closing sockets may be reclaimed when a socket is needed and none is free
    /// (default [`Reclaim::Closing`], lwIP 2's order).
    #[must_use]
    pub fn with_reclaim(mut self, reclaim: Reclaim) -> Self {
        self.reclaim = reclaim;
        self
    }

    /// The accept queue's depth (default [`DEFAULT_ACCEPT_QUEUE`]): each listener the
    /// pool sizes keeps at least `depth` sockets armed (listening, or holding a
    /// connection), even when the pool's room is smaller. A burst larger than the room
    /// is then taken, not refused: the connections beyond the room complete their
    /// handshake and wait in their socket, not handed out by
    /// [`accept`](TcpFullStack::accept) until the pool has room for them — while the
    /// pool has none at all, for at most the handshake deadline
    /// ([`Config::handshake_deadline`](crate::Config::handshake_deadline)), then they are
    /// reset (counted as `accept_queue_expired`). Set it to the listener's cap to let
    /// every connection the cap allows wait rather than be refused while slots are
    /// busy. Queue sockets come only from free or reclaimable sockets, and a
    /// [`socket`](TcpClientStack::socket) that finds none takes an idle one. 0: the
    /// room alone, a SYN beyond it is refused.
    #[must_use]
    pub fn with_accept_queue(mut self, queue: usize) -> Self {
        self.accept_queue = queue;
        self
    }

    /// The accept queue's depth ([`with_accept_queue`](Self::with_accept_queue)).
    pub fn accept_queue(&self) -> usize {
        self.accept_queue
    }

    /// How long a closing socket stays in FIN-WAIT-1 or FIN-WAIT-2 before
    /// [`Reclaim::Closing`] may take it (default [`DEFAULT_FIN_WAIT_BOUND`], lwIP's
    /// `TCP_FIN_WAIT_TIMEOUT`): a peer that never acknowledges or answers our FIN.
    #[must_use]
    pub fn with_fin_wait_bound(mut self, bound: Duration) -> Self {
        self.fin_wait_bound = bound;
        self
    }

    /// Start the ephemeral port counter at `49152 + seed % 16384` instead of 49152.
    /// Pass a random value (e.g. the interface's `random_seed`) so a device that
    /// reboots does not reuse the ports of its previous connections.
    #[must_use]
    pub fn with_port_seed(mut self, seed: u32) -> Self {
        self.next_port = EPHEMERAL_FIRST + (seed % u32::from(EPHEMERAL_COUNT)) as u16;
        self
    }

    /// Sockets armed for a new listener ([`with_backlog`](Self::with_backlog)).
    pub fn backlog(&self) -> usize {
        self.backlog
    }

    /// The reclaim policy ([`with_reclaim`](Self::with_reclaim)).
    pub fn reclaim(&self) -> Reclaim {
        self.reclaim
    }

    /// Closing sockets reclaimed so far, by state, and passes with a listener that
    /// wanted sockets and had none listening.
    pub fn pcb_counters(&self) -> PcbCounters {
        self.counters
    }

    /// Set the link state reported by [`LinkStatus::link_state`] (initially
    /// [`LinkState::Unknown`]), e.g. from the WiFi driver's connection events.
    pub fn set_link(&mut self, link: LinkState) {
        self.link = link;
    }

    /// How many TCP sockets were adopted.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The interface.
    pub fn iface(&self) -> &Interface {
        &self.iface
    }

    /// The interface, mutably (addresses, routes, hardware address).
    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    /// The socket set (read-only: adopted sockets belong to the stack).
    pub fn sockets(&self) -> &SocketSet<'a> {
        &self.sockets
    }

    /// A socket of the set the stack did not adopt (a DHCP or DNS socket, TCP sockets
    /// beyond `M`), by its smoltcp handle. `None` for an adopted socket, a handle not
    /// in the set, or a socket of another type. O(sockets in the set).
    pub fn socket_mut<T: AnySocket<'a>>(&mut self, handle: SocketHandle) -> Option<&mut T> {
        if self.entries.iter().any(|e| e.handle == handle) {
            return None;
        }
        let (_, socket) = self.sockets.iter_mut().find(|(h, _)| *h == handle)?;
        T::downcast_mut(socket)
    }

    /// Take the interface and the socket set back.
    pub fn into_parts(self) -> (Interface, SocketSet<'a>) {
        (self.iface, self.sockets)
    }

    /// The time of the last [`poll`](Self::poll).
    pub fn now(&self) -> Instant {
        self.now
    }

    // ------------------------------------------------------------ driving

    /// Poll the interface at `now` (receive and send everything due), then free the
    /// closing sockets smoltcp is done with and re-arm listeners. Returns smoltcp's
    /// verdict on whether socket states may have changed.
    pub fn poll<D: Device>(&mut self, now: Instant, device: &mut D) -> PollResult {
        self.now = now;
        let result = self.iface.poll(now, device, &mut self.sockets);
        self.maintain();
        result
    }

    /// When [`poll`](Self::poll) is next due: smoltcp's timers (retransmission, delayed
    /// ACK, TIME-WAIT...). `None`: only when a packet arrives. (Reclaiming needs no
    /// timer: it happens when a socket is needed.)
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface.poll_at(now, &self.sockets)
    }

    /// How long from `now` until [`poll`](Self::poll) is due (zero: now).
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        self.poll_at(now).map(|at| elapsed(now, at))
    }

    // ------------------------------------------------------------ diagnostics

    /// How many adopted sockets are in each role. O(M).
    pub fn counts(&self) -> SocketCounts {
        let mut c = SocketCounts::default();
        for e in &self.entries {
            match e.role {
                Role::Free => c.free += 1,
                Role::Fresh | Role::Bound { .. } | Role::Failed(_) => c.idle += 1,
                Role::Armed { .. } => match tcp_ref(&self.sockets, e.handle).state() {
                    State::Listen | State::SynReceived | State::Closed => c.listening += 1,
                    _ => c.pending += 1,
                },
                Role::Connecting { .. } => c.connecting += 1,
                Role::Connected { .. } => c.connected += 1,
                Role::Closing { .. } => c.closing += 1,
            }
        }
        c
    }

    /// The smoltcp TCP state of a socket handle (`None` for a stale or listener handle).
    pub fn tcp_state(&self, socket: &SmolSocket) -> Option<State> {
        let i = self.resolve(socket).ok()?;
        Some(tcp_ref(&self.sockets, self.entries[i].handle).state())
    }

    /// The local port: the listener's port, the bound port, or the local end of a
    /// connection. `None` for a stale handle or a socket without one.
    pub fn local_port(&self, socket: &SmolSocket) -> Option<u16> {
        if socket.is_listener() {
            return self
                .resolve_listener(socket)
                .ok()
                .map(|li| self.listeners[li].port);
        }
        let i = self.resolve(socket).ok()?;
        match self.entries[i].role {
            Role::Bound { port } => Some(port),
            _ => tcp_ref(&self.sockets, self.entries[i].handle)
                .local_endpoint()
                .map(|ep| ep.port),
        }
    }

    /// Bytes received and not yet read on a socket handle (`None` for a stale or
    /// listener handle).
    pub fn recv_queue(&self, socket: &SmolSocket) -> Option<usize> {
        let i = self.resolve(socket).ok()?;
        Some(tcp_ref(&self.sockets, self.entries[i].handle).recv_queue())
    }

    /// The remote end of a connecting or connected socket.
    pub fn remote_addr(&self, socket: &SmolSocket) -> Option<SocketAddr> {
        let i = self.resolve(socket).ok()?;
        match self.entries[i].role {
            Role::Connecting { remote, .. } | Role::Connected { remote } => Some(remote),
            _ => None,
        }
    }

    // ------------------------------------------------------------ internals

    /// The entry of a live socket handle.
    fn resolve(&self, s: &SmolSocket) -> Result<usize, SmolError> {
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
    fn resolve_listener(&self, s: &SmolSocket) -> Result<usize, SmolError> {
        if s.kind != Kind::Listener {
            return Err(SmolError::InvalidState);
        }
        let li = s.index as usize;
        match self.listeners.get(li) {
            Some(l) if l.open && l.generation == s.generation => Ok(li),
            _ => Err(SmolError::Stale),
        }
    }

    fn handle_of(&self, i: usize) -> SmolSocket {
        SmolSocket {
            index: i as u16,
            generation: self.entries[i].generation,
            kind: Kind::Socket,
        }
    }

    /// The application gives socket `i` back: every copy of its handle goes stale; it
    /// is free once smoltcp is done with it (at once if it already is).
    fn release(&mut self, i: usize) {
        let state = tcp_ref(&self.sockets, self.entries[i].handle).state();
        let e = &mut self.entries[i];
        e.generation = e.generation.wrapping_add(1);
        e.role = Role::Closing {
            state,
            since: self.now,
        };
        self.note_closing(i);
    }

    /// Follow a closing socket: note when it enters a new TCP state, and free it once
    /// smoltcp is done with it (CLOSED with nothing left to send: an abort's RST goes
    /// out at the next poll).
    fn note_closing(&mut self, i: usize) {
        let Role::Closing { state, .. } = self.entries[i].role else {
            return;
        };
        let socket = tcp_ref(&self.sockets, self.entries[i].handle);
        let now_state = socket.state();
        if now_state == State::Closed && socket.remote_endpoint().is_none() {
            self.entries[i].role = Role::Free;
        } else if now_state != state {
            self.entries[i].role = Role::Closing {
                state: now_state,
                since: self.now,
            };
        }
    }

    /// When a closing socket in `state` since `since` may be reclaimed, its rank in
    /// lwIP's `tcp_alloc` order (lower first); `None`: not under this policy.
    fn reclaim_rank(&self, state: State, since: Instant) -> Option<u8> {
        match (self.reclaim, state) {
            (Reclaim::Never, _) => None,
            (_, State::TimeWait) => Some(0),
            (Reclaim::TimeWait, _) => None,
            (_, State::LastAck) => Some(1),
            (_, State::Closing) => Some(2),
            (_, State::FinWait1 | State::FinWait2) if elapsed(since, self.now) >= self.fin_wait_bound => {
                Some(3)
            }
            _ => None,
        }
    }

    /// A socket for a new use: a free one, else the closing socket the policy reclaims
    /// first (the oldest in the first state of TIME-WAIT, LAST-ACK, CLOSING, FIN-WAIT
    /// past the bound), counted by state. A reclaimed socket is handed over CLOSED:
    /// the caller's `listen` or `connect` restarts it without a word to the old peer
    /// (any segment it still sends gets the interface's RST, as for any unknown
    /// connection). `None`: every socket is in use, armed, or closing and kept.
    fn take_socket(&mut self) -> Option<usize> {
        if let Some(i) = self.entries.iter().position(|e| e.role == Role::Free) {
            return Some(i);
        }
        // Closing sockets' states are up to date: smoltcp changes them only in a poll,
        // after which `maintain` notes every one.
        let mut best: Option<(u8, Instant, usize, State)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if let Role::Closing { state, since } = e.role {
                if let Some(rank) = self.reclaim_rank(state, since) {
                    if best.is_none_or(|(r, s, _, _)| (rank, since) < (r, s)) {
                        best = Some((rank, since, i, state));
                    }
                }
            }
        }
        let Some((_, _, i, state)) = best else {
            return self.take_overdue_handshake();
        };
        let c = &mut self.counters;
        let counter = match state {
            State::TimeWait => &mut c.reclaimed_time_wait,
            State::LastAck => &mut c.reclaimed_last_ack,
            State::Closing => &mut c.reclaimed_closing,
            _ => &mut c.reclaimed_fin_wait,
        };
        *counter = counter.saturating_add(1);
        if state != State::TimeWait {
            // Out of the connection (CLOSED): `listen` and `connect` refuse an open one.
            tcp_mut(&mut self.sockets, self.entries[i].handle).abort();
        }
        self.entries[i].role = Role::Free;
        Some(i)
    }

    /// A socket for a new use when none is free or reclaimable: the half-open socket
    /// of any listener that is overdue and has waited longest (counted as evicted).
    /// Its listener re-arms at its next pass, taking an overdue one of its own if it
    /// must; a handshake in flight is never taken.
    fn take_overdue_handshake(&mut self) -> Option<usize> {
        let i = (0..M)
            .filter(|&li| self.listeners[li].open)
            .filter_map(|li| self.oldest_overdue(li))
            .min_by_key(|&i| match self.entries[i].role {
                Role::Armed {
                    half_open_since: Some(since),
                    ..
                } => since,
                _ => self.now,
            })?;
        tcp_mut(&mut self.sockets, self.entries[i].handle).abort();
        self.fresh_slot(i);
        self.entries[i].role = Role::Free;
        let c = &mut self.counters.half_open_evicted;
        *c = c.saturating_add(1);
        Some(i)
    }

    /// A socket for a new use when nothing else can be had: an idle listening socket
    /// of a listener's accept queue (beyond its room).
    fn take_idle_queue_socket(&mut self) -> Option<usize> {
        for li in 0..M {
            let l = self.listeners[li];
            if !(l.open && l.sized) {
                continue;
            }
            let (mut held, mut idle) = (0, None);
            for (i, e) in self.entries.iter().enumerate() {
                if e.role.armed_for(li) {
                    held += 1;
                    if tcp_ref(&self.sockets, e.handle).state() == State::Listen {
                        idle = Some(i);
                    }
                }
            }
            if let Some(i) = idle.filter(|_| held > l.backlog) {
                tcp_mut(&mut self.sockets, self.entries[i].handle).close();
                self.entries[i].role = Role::Free;
                return Some(i);
            }
        }
        None
    }

    /// After a poll: free finished closing sockets, put armed sockets whose connection
    /// died before it was accepted back in LISTEN, keep listeners armed (counting a
    /// listener left short with no socket listening).
    fn maintain(&mut self) {
        for i in 0..self.entries.len() {
            self.note_closing(i);
        }
        for li in 0..M {
            if self.listeners[li].open && self.refresh_listener(li) {
                let c = &mut self.counters.unarmed_passes;
                *c = c.saturating_add(1);
            }
        }
    }

    /// Keep listener `li` at its backlog under the handshake lease
    /// ([`super::handshake`]): re-listen dead armed sockets and half-open ones past
    /// the deadline, reset connections that waited out the deadline in the accept
    /// queue while the pool had no room; keep sockets listening, or holding
    /// connections not yet accepted, for the whole backlog (the pool's room, at least
    /// the accept queue's depth; half-open ones kept apart), stopping idle listening
    /// ones beyond it and arming up to it from free or reclaimed sockets — and, none
    /// left, from the overdue half-open socket that has waited longest
    /// ([`take_socket`](Self::take_socket)). Returns whether it is left short with no
    /// socket listening (the next SYN is refused although the listener wants more
    /// connections).
    fn refresh_listener(&mut self, li: usize) -> bool {
        let Listener {
            port, backlog, sized, ..
        } = self.listeners[li];
        // The room, and the accept queue: at least its depth armed, beyond the room
        // connections wait for the pool to have room.
        let room = backlog;
        let backlog = if sized {
            backlog.max(self.accept_queue)
        } else {
            backlog
        };
        let (mut listening, mut ready) = (0, 0);
        for i in 0..self.entries.len() {
            if !self.entries[i].role.armed_for(li) {
                continue;
            }
            let socket = tcp_ref(&self.sockets, self.entries[i].handle);
            match socket.state() {
                // The connection died before it was accepted: the socket is free, and
                // armed again below.
                State::Closed => self.entries[i].role = Role::Free,
                State::Listen => {
                    self.entries[i].role = Role::armed(li);
                    listening += 1;
                }
                State::SynReceived => match self.half_open_lease(i, li) {
                    handshake::Handshake::Expired => {
                        if self.relisten(i, li, port) {
                            listening += 1;
                        }
                        let c = &mut self.counters.half_open_expired;
                        *c = c.saturating_add(1);
                    }
                    handshake::Handshake::InFlight | handshake::Handshake::Overdue => {}
                },
                // A connection waiting for `accept` (no longer half-open): for at most
                // the deadline, when the pool sizes the listener.
                _ => {
                    let since = match self.entries[i].role {
                        Role::Armed {
                            ready_since: Some(since),
                            ..
                        } => since,
                        _ => self.now,
                    };
                    self.entries[i].role = Role::Armed {
                        listener: li as u16,
                        half_open_since: None,
                        ready_since: Some(since),
                    };
                    let waited_out = handshake::lease(
                        netpool_instant(since),
                        netpool_instant(self.now),
                        self.handshake_deadline,
                    ) == handshake::Handshake::Expired;
                    if sized && room == 0 && waited_out {
                        // Reset (RST at the next poll), then free like a closing socket.
                        tcp_mut(&mut self.sockets, self.entries[i].handle).abort();
                        self.entries[i].role = Role::Closing {
                            state: State::Closed,
                            since: self.now,
                        };
                        let c = &mut self.counters.accept_queue_expired;
                        *c = c.saturating_add(1);
                    } else {
                        ready += 1;
                    }
                }
            }
        }
        // More than the pool can serve: idle listening sockets stop (a handshake under
        // way completes and is accepted; the pool's admission decides).
        let mut stop = handshake::beyond_room(backlog, listening, ready);
        for i in 0..self.entries.len() {
            if stop == 0 {
                break;
            }
            if self.entries[i].role.armed_for(li) {
                let socket = tcp_mut(&mut self.sockets, self.entries[i].handle);
                if socket.state() == State::Listen {
                    socket.close();
                    self.entries[i].role = Role::Free;
                    listening -= 1;
                    stop -= 1;
                }
            }
        }
        while handshake::short_of_room(backlog, listening, ready) > 0 {
            // A free socket, a reclaimed closing one, or — none left — the overdue
            // half-open socket that has waited longest, of any listener.
            let Some(i) = self.take_socket() else {
                break;
            };
            if tcp_mut(&mut self.sockets, self.entries[i].handle)
                .listen(port)
                .is_err()
            {
                break;
            }
            self.entries[i].role = Role::armed(li);
            listening += 1;
        }
        handshake::short_of_room(backlog, listening, ready) > 0 && listening == 0
    }

    /// The lease of armed socket `i` of listener `li`, half-open: noted since the
    /// first pass that saw it so.
    fn half_open_lease(&mut self, i: usize, li: usize) -> handshake::Handshake {
        let since = match self.entries[i].role {
            Role::Armed {
                half_open_since: Some(since),
                ..
            } => since,
            _ => self.now,
        };
        self.entries[i].role = Role::Armed {
            listener: li as u16,
            half_open_since: Some(since),
            ready_since: None,
        };
        handshake::lease(
            netpool_instant(since),
            netpool_instant(self.now),
            self.handshake_deadline,
        )
    }

    /// The overdue half-open socket of listener `li` that has waited longest.
    fn oldest_overdue(&self, li: usize) -> Option<usize> {
        let now = netpool_instant(self.now);
        let mut oldest: Option<(Instant, usize)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            let Role::Armed {
                listener,
                half_open_since: Some(since),
                ..
            } = e.role
            else {
                continue;
            };
            let overdue = usize::from(listener) == li
                && tcp_ref(&self.sockets, e.handle).state() == State::SynReceived
                && handshake::lease(netpool_instant(since), now, self.handshake_deadline)
                    == handshake::Handshake::Overdue;
            if overdue && oldest.is_none_or(|(s, _)| since < s) {
                oldest = Some((since, i));
            }
        }
        oldest.map(|(_, i)| i)
    }

    /// Reset armed socket `i`'s half-open connection (no word to the peer) and listen
    /// on `port` again; `false` (the socket freed) if smoltcp refuses.
    fn relisten(&mut self, i: usize, li: usize, port: u16) -> bool {
        tcp_mut(&mut self.sockets, self.entries[i].handle).abort();
        self.fresh_slot(i);
        let socket = tcp_mut(&mut self.sockets, self.entries[i].handle);
        if socket.listen(port).is_ok() {
            self.entries[i].role = Role::armed(li);
            true
        } else {
            self.entries[i].role = Role::Free;
            false
        }
    }

    /// Give socket `i` a fresh place in the set: taken out and put back, the same
    /// socket (buffers, settings) under a new handle. smoltcp keeps per place, not per
    /// connection, that a neighbour did not answer (its SYN-ACK to a host that answers
    /// no ARP) and then keeps the socket silent for a second: reused as it is for the
    /// next peer, a real client's SYN-ACK would wait that second. Never panics: the
    /// place just emptied is free for `add`.
    fn fresh_slot(&mut self, i: usize) {
        let socket = self.sockets.remove(self.entries[i].handle);
        self.entries[i].handle = self.sockets.add(socket);
    }

    /// Whether `port` is bound or listened on by this stack (what `bind` refuses, like
    /// a host with `SO_REUSEADDR`: connections on the port do not block it).
    fn port_reserved(&self, port: u16) -> bool {
        self.listeners.iter().any(|l| l.open && l.port == port)
            || self.entries.iter().any(|e| e.role == (Role::Bound { port }))
    }

    /// Whether `port` is reserved or the local port of any socket in the set, even a
    /// closing or TIME-WAIT one (what an ephemeral port must not be).
    fn port_in_use(&self, port: u16) -> bool {
        self.port_reserved(port)
            || self.entries.iter().any(|e| {
                let s = tcp_ref(&self.sockets, e.handle);
                s.local_endpoint().is_some_and(|ep| ep.port == port)
                    || (s.is_listening() && s.listen_endpoint().port == port)
            })
    }

    /// The next ephemeral port not in use.
    fn ephemeral_port(&mut self) -> Result<u16, SmolError> {
        for _ in 0..EPHEMERAL_COUNT {
            let port = self.next_port;
            self.next_port = if port == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                port + 1
            };
            if !self.port_in_use(port) {
                return Ok(port);
            }
        }
        Err(SmolError::NoPort)
    }

    /// Where the connect of socket `i` stands: `Ok(true)` established, `Ok(false)`
    /// still under way, `Err` failed (sticky) or not a connection.
    fn progress(&mut self, i: usize) -> Result<bool, SmolError> {
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

    /// Close a listener: listening sockets are closed (free at once), connections it
    /// had not handed out are reset.
    fn close_listener(&mut self, s: &SmolSocket) -> Result<(), SmolError> {
        let li = self.resolve_listener(s)?;
        let l = &mut self.listeners[li];
        l.open = false;
        l.generation = l.generation.wrapping_add(1);
        for i in 0..self.entries.len() {
            if !self.entries[i].role.armed_for(li) {
                continue;
            }
            let socket = tcp_mut(&mut self.sockets, self.entries[i].handle);
            if socket.state() == State::Listen {
                socket.close();
            } else {
                socket.abort();
            }
            self.release(i);
        }
        Ok(())
    }
}

impl<const M: usize> fmt::Debug for SmoltcpStack<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmoltcpStack")
            .field("counts", &self.counts())
            .field("backlog", &self.backlog)
            .field("reclaim", &self.reclaim)
            .field("counters", &self.counters)
            .field("link", &self.link)
            .field("now", &self.now)
            .finish_non_exhaustive()
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
    /// at once; the socket is free when smoltcp is done (see the [module docs](self)).
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
    /// Reserve `local_port` for a later [`listen`](TcpFullStack::listen) (port 0 picks an
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
/// timeout, see the [module docs](self)); a failed connect is `Gone` with its class;
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
/// ones ([`Reclaim`]); idle listening sockets beyond the number are freed. A stale or
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

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::stack::{SendFlag, Stack};
    use ::smoltcp::iface::{Config as IfaceConfig, SocketStorage};
    use ::smoltcp::phy::{DeviceCapabilities, Medium, RxToken, TxToken};
    use ::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
    use std::boxed::Box;
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    /// Upper bound on polls in every wait loop (× `TICK` = 60 s of virtual time).
    const MAX_POLLS: usize = 12_000;
    const TICK: Duration = Duration::from_millis(5);
    const BUF: usize = 2048;
    const PORT: u16 = 80;

    fn server() -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORT))
    }

    /// A loopback device without smoltcp's `alloc` feature (which `phy::Loopback`
    /// needs and the `smoltcp` feature does not enable): every frame sent is received
    /// back, in order.
    #[derive(Default)]
    struct Loop {
        queue: VecDeque<Vec<u8>>,
        /// Lose every frame sent from now on (a peer that vanished).
        lose: bool,
    }

    struct Rx(Vec<u8>);
    struct Tx<'q>(&'q mut VecDeque<Vec<u8>>, bool);

    impl RxToken for Rx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut frame = vec![0; len];
            let r = f(&mut frame);
            if !self.1 {
                self.0.push_back(frame);
            }
            r
        }
    }

    impl Device for Loop {
        type RxToken<'a> = Rx;
        type TxToken<'a> = Tx<'a>;

        fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
            let frame = self.queue.pop_front()?;
            Some((Rx(frame), Tx(&mut self.queue, self.lose)))
        }

        fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
            Some(Tx(&mut self.queue, self.lose))
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = Medium::Ip;
            caps.max_transmission_unit = 1500;
            caps
        }
    }

    /// A stack on 127.0.0.1/8 over a loopback device, with `n` TCP sockets in the set
    /// (leaked buffers: tests only), each given `timeout`.
    struct Net<const M: usize> {
        stack: SmoltcpStack<'static, M>,
        dev: Loop,
        now: Instant,
    }

    fn set(n: usize, timeout: Option<Duration>) -> SocketSet<'static> {
        let storage: Vec<SocketStorage<'static>> = (0..n).map(|_| SocketStorage::EMPTY).collect();
        let mut sockets = SocketSet::new(Box::leak(storage.into_boxed_slice()));
        for _ in 0..n {
            let rx = tcp::SocketBuffer::new(Box::leak(vec![0u8; BUF].into_boxed_slice()));
            let tx = tcp::SocketBuffer::new(Box::leak(vec![0u8; BUF].into_boxed_slice()));
            let mut socket = tcp::Socket::new(rx, tx);
            socket.set_timeout(timeout);
            sockets.add(socket);
        }
        sockets
    }

    impl<const M: usize> Net<M> {
        fn new(n: usize) -> Self {
            Self::with(n, None, |s| s)
        }

        fn with(
            n: usize,
            timeout: Option<Duration>,
            f: impl FnOnce(SmoltcpStack<'static, M>) -> SmoltcpStack<'static, M>,
        ) -> Self {
            let mut dev = Loop::default();
            let mut config = IfaceConfig::new(HardwareAddress::Ip);
            config.random_seed = 0x1234_5678;
            let mut iface = Interface::new(config, &mut dev, Instant::ZERO);
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
            });
            // No accept queue unless a test asks for one: most tests count exactly the
            // sockets a listener's room arms.
            Net {
                stack: f(SmoltcpStack::new(iface, set(n, timeout)).with_accept_queue(0)),
                dev,
                now: Instant::ZERO,
            }
        }

        fn step(&mut self) {
            self.now += TICK;
            self.stack.poll(self.now, &mut self.dev);
        }

        /// Poll until `f` returns `Some`, at most `MAX_POLLS` times.
        fn until<T>(
            &mut self,
            what: &str,
            mut f: impl FnMut(&mut SmoltcpStack<'static, M>) -> Option<T>,
        ) -> T {
            for _ in 0..MAX_POLLS {
                if let Some(v) = f(&mut self.stack) {
                    return v;
                }
                self.step();
            }
            panic!("{what}: nothing after {MAX_POLLS} polls");
        }

        fn listen(&mut self, port: u16) -> SmolSocket {
            let mut l = self.stack.socket().unwrap();
            self.stack.bind(&mut l, port).unwrap();
            self.stack.listen(&mut l).unwrap();
            assert!(l.is_listener());
            l
        }

        fn connect(&mut self, remote: SocketAddr) -> SmolSocket {
            let mut c = self.stack.socket().unwrap();
            self.until("connect", |s| match s.connect(&mut c, remote) {
                Ok(()) => Some(()),
                Err(nb::Error::WouldBlock) => None,
                Err(nb::Error::Other(e)) => panic!("connect: {e}"),
            });
            c
        }

        fn accept(&mut self, l: &mut SmolSocket) -> (SmolSocket, SocketAddr) {
            self.until("accept", |s| match s.accept(l) {
                Ok(v) => Some(v),
                Err(nb::Error::WouldBlock) => None,
                Err(nb::Error::Other(e)) => panic!("accept: {e}"),
            })
        }

        /// A connected pair on `PORT`: (listener, client, server side).
        fn pair(&mut self) -> (SmolSocket, SmolSocket, SmolSocket) {
            let mut l = self.listen(PORT);
            let c = self.connect(server());
            let (s, remote) = self.accept(&mut l);
            assert_eq!(Some(remote), self.stack.local_port(&c).map(addr));
            (l, c, s)
        }

        fn recv_exact(&mut self, s: &mut SmolSocket, n: usize) -> Vec<u8> {
            let mut out = Vec::new();
            let mut buf = [0u8; 256];
            self.until("receive", |st| {
                match st.receive(s, &mut buf) {
                    Ok(0) => panic!("unexpected end of stream"),
                    Ok(k) => out.extend_from_slice(&buf[..k]),
                    Err(nb::Error::WouldBlock) => {}
                    Err(nb::Error::Other(e)) => panic!("receive: {e}"),
                }
                (out.len() >= n).then_some(())
            });
            out
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    fn other(r: nb::Result<impl fmt::Debug, SmolError>) -> SmolError {
        match r {
            Err(nb::Error::Other(e)) => e,
            r => panic!("expected an error, got {r:?}"),
        }
    }

    fn assert_stack<S: Stack>(_: &S) {}

    #[test]
    fn is_a_full_netpool_stack() {
        let mut net: Net<4> = Net::new(4);
        assert_stack(&net.stack);
        const { assert!(<SmoltcpStack<'static, 4> as TcpAbort>::NATIVE_ABORT) };
        const { assert!(!<SmoltcpStack<'static, 4> as TcpSendFlags>::NATIVE_FLAGS) };
        assert_eq!(net.stack.backlog(), DEFAULT_BACKLOG);
        assert_eq!(net.stack.capacity(), 4);
        assert_eq!(net.stack.counts().free, 4);
        assert_eq!(net.stack.counts().total(), 4);
        assert_eq!(net.stack.link_state(), LinkState::Unknown);
        net.stack.set_link(LinkState::Down);
        assert_eq!(net.stack.link_state(), LinkState::Down);
        assert!(net.stack.poll_at(net.now).is_none());
        assert!(!std::format!("{:?}", net.stack).is_empty());
    }

    #[test]
    fn adopts_at_most_m_and_leaves_the_rest_alone() {
        let mut net: Net<2> = Net::new(3);
        assert_eq!(net.stack.capacity(), 2);
        let handles: Vec<SocketHandle> = net.stack.sockets().iter().map(|(h, _)| h).collect();
        assert_eq!(handles.len(), 3);
        assert!(net.stack.socket_mut::<tcp::Socket>(handles[0]).is_none());
        assert!(net.stack.socket_mut::<tcp::Socket>(handles[1]).is_none());
        assert!(net.stack.socket_mut::<tcp::Socket>(handles[2]).is_some());
    }

    #[test]
    fn listen_connect_accept_and_data_both_ways() {
        let mut net: Net<6> = Net::new(6);
        let (l, mut c, mut s) = net.pair();
        assert_eq!(net.stack.local_port(&l), Some(PORT));
        assert_eq!(net.stack.remote_addr(&c), Some(server()));
        assert_eq!(net.stack.tcp_state(&c), Some(State::Established));
        let client_port = net.stack.local_port(&c).unwrap();
        assert!(client_port >= EPHEMERAL_FIRST);
        // Connecting again to the same address is Ok, to another one refused.
        assert_eq!(net.stack.connect(&mut c, server()), Ok(()));
        assert_eq!(
            other(net.stack.connect(&mut c, addr(81))),
            SmolError::InvalidState
        );

        assert_eq!(net.stack.send(&mut c, b"ping"), Ok(4));
        assert_eq!(net.recv_exact(&mut s, 4), b"ping");
        assert_eq!(net.stack.send(&mut s, b"pong!"), Ok(5));
        assert_eq!(net.recv_exact(&mut c, 5), b"pong!");
        // Nothing pending: WouldBlock; empty buffers: Ok(0).
        assert_eq!(
            net.stack.receive(&mut c, &mut [0u8; 8]),
            Err(nb::Error::WouldBlock)
        );
        assert_eq!(net.stack.receive(&mut c, &mut []), Ok(0));
        assert_eq!(net.stack.send(&mut c, &[]), Ok(0));
        // The flagged send is the plain send.
        assert_eq!(net.stack.send_flagged(&mut c, b"x", SendFlag::More), Ok(1));
        assert_eq!(net.recv_exact(&mut s, 1), b"x");
        assert_eq!(net.stack.peer_status(&c), PeerStatus::Open);
        assert_eq!(net.stack.peer_status(&s), PeerStatus::Open);
        let counts = net.stack.counts();
        assert_eq!(counts.connected, 2);
        assert_eq!(counts.listening, 2);
    }

    #[test]
    fn misuse_is_typed_never_a_panic() {
        let mut net: Net<4> = Net::new(4);
        let mut l = net.listen(PORT);
        // A listener is not a connection, a connection not a listener.
        assert_eq!(other(net.stack.send(&mut l, b"x")), SmolError::InvalidState);
        assert_eq!(
            other(net.stack.receive(&mut l, &mut [0; 4])),
            SmolError::InvalidState
        );
        assert_eq!(net.stack.listen(&mut l), Ok(()));
        let mut f = net.stack.socket().unwrap();
        assert_eq!(other(net.stack.accept(&mut f)), SmolError::InvalidState);
        assert_eq!(other(net.stack.send(&mut f, b"x")), SmolError::InvalidState);
        assert_eq!(net.stack.listen(&mut f), Err(SmolError::InvalidState));
        assert_eq!(net.stack.peer_status(&f), PeerStatus::Unknown);
        assert_eq!(net.stack.send_queue(&f), None);
        // The port is taken; port 0 picks an ephemeral one.
        assert_eq!(net.stack.bind(&mut f, PORT), Err(SmolError::AddressInUse));
        net.stack.bind(&mut f, 0).unwrap();
        assert!(net.stack.local_port(&f).unwrap() >= EPHEMERAL_FIRST);
        assert_eq!(net.stack.bind(&mut f, 0), Err(SmolError::InvalidState));
        assert_eq!(
            other(net.stack.connect(&mut f, server())),
            SmolError::InvalidState
        );
        net.stack.close(f).unwrap();
        // IPv6 and unspecified remotes are unaddressable.
        let mut g = net.stack.socket().unwrap();
        let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 80);
        assert_eq!(other(net.stack.connect(&mut g, v6)), SmolError::Unaddressable);
        let unspec = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 80);
        assert_eq!(other(net.stack.connect(&mut g, unspec)), SmolError::Unaddressable);
        assert_eq!(SmolError::Unaddressable.class(), ErrorClass::NoRoute);
    }

    #[test]
    fn backlog_is_rearmed_after_accept() {
        let mut net: Net<6> = Net::new(6);
        let mut l = net.listen(PORT);
        let c0 = net.stack.counts();
        assert_eq!((c0.listening, c0.free), (2, 4));
        let _c = net.connect(server());
        // The connection waits in the backlog until accepted (the server side is
        // established once the client's ACK arrives, one poll after the client).
        net.until("pending", |st| (st.counts().pending == 1).then_some(()));
        let c1 = net.stack.counts();
        assert_eq!((c1.listening, c1.pending, c1.connected, c1.free), (1, 1, 1, 3));
        let (_s, _) = net.accept(&mut l);
        // Accepting re-armed a free socket: two listening again.
        let c2 = net.stack.counts();
        assert_eq!((c2.listening, c2.pending, c2.connected, c2.free), (2, 0, 2, 2));
        assert_eq!(net.stack.accept(&mut l), Err(nb::Error::WouldBlock));
    }

    #[test]
    fn a_full_backlog_refuses_until_accepted() {
        let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(1));
        assert_eq!(net.stack.backlog(), 1);
        let mut l = net.listen(PORT);
        assert_eq!(net.stack.counts().listening, 1);
        let _c1 = net.connect(server());
        net.until("pending", |st| (st.counts().pending == 1).then_some(()));
        // The only armed socket holds a connection: the next SYN is answered with RST.
        let mut c2 = net.stack.socket().unwrap();
        let e = net.until("refused", |s| match s.connect(&mut c2, server()) {
            Ok(()) => panic!("connected past a full backlog"),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => Some(e),
        });
        assert_eq!(e, SmolError::Refused);
        let _ = net.accept(&mut l);
        assert_eq!(net.stack.counts().listening, 1);
    }

    #[test]
    fn exhaustion_is_out_of_resources_not_a_panic() {
        let mut net: Net<3> = Net::new(3);
        let mut l = net.listen(PORT); // arms 2 (backlog) of 3
        let _c = net.connect(server()); // the last free socket
        assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
        assert_eq!(SmolError::NoSocket.class(), ErrorClass::OutOfResources);
        let (_s, _) = net.accept(&mut l);
        // Nothing free to re-arm with: one listening socket left, still no panic.
        let counts = net.stack.counts();
        assert_eq!((counts.free, counts.listening, counts.connected), (0, 1, 2));
        assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
        for _ in 0..20 {
            net.step();
        }
    }

    #[test]
    fn close_sends_fin_and_the_socket_is_recycled_after_the_close_completes() {
        let mut net: Net<6> = Net::new(6);
        let (l, mut c, s) = net.pair();
        let free_before = net.stack.counts().free;
        net.stack.close(s).unwrap();
        assert_eq!(net.stack.counts().closing, 1);
        // The client sees end of stream.
        let mut buf = [0u8; 8];
        net.until("fin", |st| match st.receive(&mut c, &mut buf) {
            Ok(0) => Some(()),
            Ok(n) => panic!("{n} bytes"),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("{e}"),
        });
        assert_eq!(net.stack.peer_status(&c), PeerStatus::Closed);
        // Half-close: the client may still send.
        assert_eq!(net.stack.send(&mut c, b"bye"), Ok(3));
        net.stack.close(c).unwrap();
        // The client (passive closer) is free after LAST-ACK; the server (active
        // closer) holds its socket through TIME-WAIT, then it is free too.
        let t0 = net.now;
        net.until("client freed", |st| (st.counts().closing == 1).then_some(()));
        assert_eq!(net.stack.counts().free, free_before + 1);
        // The server socket in TIME-WAIT (local port 80) does not block a new listener.
        assert_eq!(net.stack.tcp_state(&l), None);
        net.stack.close(l).unwrap();
        assert_eq!(net.stack.counts().free, free_before + 3);
        let _l2 = net.listen(PORT);
        assert_eq!(net.stack.counts().free, free_before + 1);
        net.until("time-wait over", |st| (st.counts().closing == 0).then_some(()));
        assert!(net.now - t0 >= Duration::from_secs(10), "{}", net.now - t0);
        assert_eq!(net.stack.counts().free, free_before + 2);
    }

    /// `n` fresh sockets from `socket()` (taking free ones, then reclaiming).
    fn take<const M: usize>(net: &mut Net<M>, n: usize) -> Vec<SmolSocket> {
        (0..n).map(|_| net.stack.socket().unwrap()).collect()
    }

    /// A connection on `l` whose server side `s` ends in TIME-WAIT (it closes first)
    /// and whose client side is free again. Returns the server side's socket index.
    fn time_wait<const M: usize>(net: &mut Net<M>, l: &mut SmolSocket) -> usize {
        let c = net.connect(server());
        let (s, _) = net.accept(l);
        let i = s.index();
        net.stack.close(s).unwrap();
        net.until("fin-wait-2", |st| {
            (tcp_ref(&st.sockets, st.entries[i].handle).state() == State::FinWait2).then_some(())
        });
        let ci = c.index();
        net.stack.close(c).unwrap();
        net.until("time-wait, client free", |st| {
            let tw = tcp_ref(&st.sockets, st.entries[i].handle).state() == State::TimeWait;
            (tw && st.entries[ci].role == Role::Free).then_some(())
        });
        i
    }

    fn state_of<const M: usize>(net: &Net<M>, i: usize) -> State {
        tcp_ref(&net.stack.sockets, net.stack.entries[i].handle).state()
    }

    #[test]
    fn reclaim_takes_the_oldest_time_wait_socket_when_none_is_free() {
        let mut net: Net<6> = Net::with(6, None, |s| s.with_backlog(1));
        let mut l = net.listen(PORT);
        let older = time_wait(&mut net, &mut l);
        net.step();
        let newer = time_wait(&mut net, &mut l);
        let c = net.stack.counts();
        assert_eq!((c.listening, c.closing, c.free), (1, 2, 3));
        let _fresh = take(&mut net, 3);
        // Nothing free: the oldest TIME-WAIT socket is taken, then the other.
        let first = net.stack.socket().unwrap();
        assert_eq!(first.index(), older);
        assert_eq!(net.stack.pcb_counters().reclaimed_time_wait, 1);
        let second = net.stack.socket().unwrap();
        assert_eq!(second.index(), newer);
        assert_eq!(net.stack.pcb_counters().reclaimed(), 2);
        // An open connection or a listening socket is never taken.
        assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
        // A reclaimed socket carries a new connection.
        let mut c = first;
        net.until("connect on a reclaimed socket", |st| {
            match st.connect(&mut c, server()) {
                Ok(()) => Some(()),
                Err(nb::Error::WouldBlock) => None,
                Err(nb::Error::Other(e)) => panic!("{e}"),
            }
        });
        let _ = net.accept(&mut l);
    }

    #[test]
    fn reclaim_rank_follows_tcp_alloc_and_the_policy() {
        let bound = Duration::from_secs(20);
        let mut net: Net<1> = Net::new(1);
        net.now = Instant::from_secs(100);
        net.stack.poll(net.now, &mut net.dev);
        let fresh = net.now;
        let past_bound = net.now - bound;
        let table = [
            // (state, since, Closing, TimeWait, Never)
            (State::TimeWait, fresh, Some(0), Some(0), None),
            (State::LastAck, fresh, Some(1), None, None),
            (State::Closing, fresh, Some(2), None, None),
            (State::FinWait1, fresh, None, None, None),
            (State::FinWait2, fresh, None, None, None),
            (State::FinWait1, past_bound, Some(3), None, None),
            (State::FinWait2, past_bound, Some(3), None, None),
            (State::Established, past_bound, None, None, None),
            (State::CloseWait, past_bound, None, None, None),
        ];
        for (state, since, closing, time_wait, never) in table {
            for (policy, want) in [
                (Reclaim::Closing, closing),
                (Reclaim::TimeWait, time_wait),
                (Reclaim::Never, never),
            ] {
                net.stack.reclaim = policy;
                assert_eq!(
                    net.stack.reclaim_rank(state, since),
                    want,
                    "{state} since {since} under {policy:?}"
                );
            }
        }
    }

    #[test]
    fn reclaim_takes_the_oldest_of_the_first_state_and_counts_it_by_state() {
        let mut net: Net<5> = Net::new(5);
        let at = Instant::from_secs;
        let roles = [
            (State::TimeWait, at(3)),
            (State::TimeWait, at(1)),
            (State::Closing, at(0)),
            (State::LastAck, at(2)),
            (State::LastAck, at(1)),
        ];
        for (e, (state, since)) in net.stack.entries.iter_mut().zip(roles) {
            e.role = Role::Closing { state, since };
        }
        let mut take = || {
            let i = net.stack.take_socket()?;
            net.stack.entries[i].role = Role::Fresh; // as `socket()` would
            Some(i)
        };
        let order: Vec<usize> = (0..5).map(|_| take().unwrap()).collect();
        assert_eq!(take(), None);
        assert_eq!(
            order,
            [1, 0, 4, 3, 2],
            "oldest first within TIME-WAIT, LAST-ACK, CLOSING"
        );
        let c = net.stack.pcb_counters();
        assert_eq!(
            (
                c.reclaimed_time_wait,
                c.reclaimed_last_ack,
                c.reclaimed_closing,
                c.reclaimed_fin_wait
            ),
            (2, 2, 1, 0)
        );
        assert_eq!(
            PcbDiagnostics::pcb_counters(&net.stack),
            c,
            "the pool's report reads the same"
        );
    }

    #[test]
    fn a_reclaimed_last_ack_socket_carries_a_new_connection() {
        let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
        let mut l = net.listen(PORT);
        let c1 = net.connect(server());
        let (s1, _) = net.accept(&mut l);
        let last_ack = s1.index();
        net.stack.close(c1).unwrap();
        net.until("close-wait", |st| {
            (tcp_ref(&st.sockets, st.entries[last_ack].handle).state() == State::CloseWait).then_some(())
        });
        net.dev.lose = true;
        net.stack.close(s1).unwrap();
        net.step();
        assert_eq!(state_of(&net, last_ack), State::LastAck);
        net.dev.lose = false;
        // The client side sits in FIN-WAIT-2 within its bound; one socket is free.
        let free = net.stack.counts().free;
        let _fresh = take(&mut net, free);
        let mut c = net.stack.socket().unwrap();
        assert_eq!(c.index(), last_ack);
        net.until("connect on a reclaimed LAST-ACK socket", |st| {
            match st.connect(&mut c, server()) {
                Ok(()) => Some(()),
                Err(nb::Error::WouldBlock) => None,
                Err(nb::Error::Other(e)) => panic!("{e}"),
            }
        });
    }

    #[test]
    fn an_armed_connection_that_dies_before_accept_listens_again() {
        let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
        let mut l = net.listen(PORT);
        let armed = net
            .stack
            .entries
            .iter()
            .position(|e| matches!(e.role, Role::Armed { .. }))
            .unwrap();
        let c = net.connect(server());
        net.until("pending", |st| (st.counts().pending == 1).then_some(()));
        net.stack.abort(c).unwrap();
        net.until("listening again", |st| (st.counts().listening == 1).then_some(()));
        assert_eq!(
            state_of(&net, armed),
            State::Listen,
            "the same socket, back in LISTEN"
        );
        assert_eq!(net.stack.counts().pending, 0);
        let _c2 = net.connect(server());
        let _ = net.accept(&mut l);
    }

    #[test]
    fn a_listener_short_of_sockets_but_listening_is_not_an_unarmed_pass() {
        let mut net: Net<3> = Net::new(3);
        let mut l = net.listen(PORT);
        let c = net.connect(server());
        net.until("pending", |st| (st.counts().pending == 1).then_some(()));
        // Wants 4: one pending, one listening, no socket left; short, but listening.
        net.stack.set_backlog(&mut l, 4);
        let before = net.stack.pcb_counters().unarmed_passes;
        net.step();
        net.step();
        let counts = net.stack.counts();
        assert_eq!((counts.listening, counts.pending), (1, 1));
        assert_eq!(net.stack.pcb_counters().unarmed_passes, before);
        let _ = (c, net.accept(&mut l));
    }

    #[test]
    fn unarmed_passes_count_exactly_the_polls_with_a_short_listener_and_nothing_listening() {
        let mut net: Net<3> = Net::with(3, None, |s| s.with_backlog(1).with_reclaim(Reclaim::Never));
        let mut l = net.listen(PORT);
        let tw = time_wait(&mut net, &mut l);
        // One armed socket, one TIME-WAIT socket kept (no reclaim), one free.
        let _c = net.connect(server());
        net.until("pending", |st| (st.counts().pending == 1).then_some(()));
        net.stack.set_backlog(&mut l, 3);
        let c = net.stack.counts();
        assert_eq!((c.listening, c.pending, c.closing, c.free), (0, 1, 1, 0));
        // Short, nothing listening: every poll counts, until TIME-WAIT ends (10 s).
        let mut before = net.stack.pcb_counters().unarmed_passes;
        let mut counted = 0;
        for _ in 0..MAX_POLLS {
            net.step();
            let now = net.stack.pcb_counters().unarmed_passes;
            if net.stack.counts().listening == 1 {
                assert_eq!(now, before, "the poll that armed the freed socket is not unarmed");
                break;
            }
            assert_eq!(now, before + 1, "a poll with nothing listening is counted");
            counted += 1;
            before = now;
        }
        assert!(counted > 100, "{counted}");
        assert_eq!(
            state_of(&net, tw),
            State::Listen,
            "the TIME-WAIT socket, freed and armed"
        );
        // Short but listening from now on: not counted.
        net.step();
        assert_eq!(net.stack.pcb_counters().unarmed_passes, before);
    }

    #[test]
    fn recv_queue_counts_unread_bytes_and_nothing_for_a_listener() {
        let mut net: Net<6> = Net::new(6);
        let (l, mut c, mut s) = net.pair();
        assert_eq!(net.stack.recv_queue(&s), Some(0));
        assert_eq!(net.stack.send(&mut c, b"hello"), Ok(5));
        net.until("bytes in", |st| (st.recv_queue(&s) == Some(5)).then_some(()));
        let _ = net.recv_exact(&mut s, 5);
        assert_eq!(net.stack.recv_queue(&s), Some(0));
        assert_eq!(net.stack.recv_queue(&l), None);
        let stale = s;
        net.stack.close(s).unwrap();
        assert_eq!(net.stack.recv_queue(&stale), None);
    }

    #[test]
    fn reclaim_never_keeps_time_wait_until_smoltcp_is_done() {
        let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1).with_reclaim(Reclaim::Never));
        assert_eq!(net.stack.reclaim(), Reclaim::Never);
        let mut l = net.listen(PORT);
        let _tw = time_wait(&mut net, &mut l);
        let _fresh = take(&mut net, 2);
        assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
        assert_eq!(net.stack.pcb_counters().reclaimed(), 0);
    }

    #[test]
    fn reclaim_order_is_time_wait_then_last_ack_then_fin_wait_past_the_bound() {
        let bound = Duration::from_secs(2);
        let mut net: Net<9> = Net::with(9, None, |s| s.with_backlog(1).with_fin_wait_bound(bound));
        let mut l = net.listen(PORT);
        let tw = time_wait(&mut net, &mut l);
        // LAST-ACK: the client closes first (it waits in FIN-WAIT-2); the server's FIN
        // is then lost.
        let c1 = net.connect(server());
        let fin_wait_2 = c1.index();
        let (s1, _) = net.accept(&mut l);
        let last_ack = s1.index();
        net.stack.close(c1).unwrap();
        net.until("close-wait", |st| {
            (tcp_ref(&st.sockets, st.entries[last_ack].handle).state() == State::CloseWait).then_some(())
        });
        // FIN-WAIT-1: an open connection whose server side closes into a lost FIN.
        let _c2 = net.connect(server());
        let (s2, _) = net.accept(&mut l);
        let fin_wait = s2.index();
        net.dev.lose = true;
        net.stack.close(s1).unwrap();
        net.stack.close(s2).unwrap();
        net.step();
        assert_eq!(state_of(&net, last_ack), State::LastAck);
        assert_eq!(state_of(&net, fin_wait), State::FinWait1);
        let free = net.stack.counts().free;
        let _fresh = take(&mut net, free);
        assert_eq!(net.stack.socket().unwrap().index(), tw);
        assert_eq!(net.stack.socket().unwrap().index(), last_ack);
        // FIN-WAIT within its bound is kept; the open client sides are never taken.
        assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
        for _ in 0..(bound.total_millis() / TICK.total_millis()) {
            net.step();
        }
        assert_eq!(state_of(&net, fin_wait_2), State::FinWait2);
        assert_eq!(state_of(&net, fin_wait), State::FinWait1);
        // Past the bound: the older FIN-WAIT first.
        assert_eq!(net.stack.socket().unwrap().index(), fin_wait_2);
        assert_eq!(net.stack.socket().unwrap().index(), fin_wait);
        let c = net.stack.pcb_counters();
        assert_eq!(
            (
                c.reclaimed_time_wait,
                c.reclaimed_last_ack,
                c.reclaimed_closing,
                c.reclaimed_fin_wait
            ),
            (1, 1, 0, 2)
        );
        assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
    }

    #[test]
    fn set_backlog_arms_the_pools_room_and_a_burst_that_size_is_taken_not_refused() {
        const BURST: usize = 8;
        let mut net: Net<18> = Net::new(18);
        let mut l = net.listen(PORT);
        assert_eq!(net.stack.counts().listening, DEFAULT_BACKLOG);
        net.stack.set_backlog(&mut l, BURST);
        assert_eq!(net.stack.counts().listening, BURST);
        // Eight SYNs at once: every one finds a listening socket.
        let mut clients = take(&mut net, BURST);
        for c in &mut clients {
            assert_eq!(net.stack.connect(c, server()), Err(nb::Error::WouldBlock));
        }
        let mut done = 0;
        net.until("burst connected", |st| {
            done = 0;
            for c in clients.iter_mut() {
                match st.connect(c, server()) {
                    Ok(()) => done += 1,
                    Err(nb::Error::WouldBlock) => {}
                    Err(nb::Error::Other(e)) => panic!("refused in a burst the backlog covers: {e}"),
                }
            }
            (done == BURST).then_some(())
        });
        net.until("all pending", |st| (st.counts().pending == BURST).then_some(()));
        // Room shrinks: idle listening sockets beyond it are freed, pending ones stay,
        // not handed out while the pool has no room for them.
        net.stack.set_backlog(&mut l, 0);
        assert_eq!(net.stack.counts().listening, 0);
        assert_eq!(net.stack.counts().pending, BURST);
        assert_eq!(net.stack.accept(&mut l).map(|_| ()), Err(nb::Error::WouldBlock));
        net.stack.set_backlog(&mut l, BURST);
        for _ in 0..BURST {
            let _ = net.accept(&mut l);
        }
        net.stack.set_backlog(&mut l, 0);
        assert_eq!(net.stack.counts().listening, 0);
        assert_eq!(net.stack.pcb_counters().unarmed_passes, 0);
    }

    #[test]
    fn a_listener_is_rearmed_by_reclaiming_and_a_pass_with_none_listening_is_counted() {
        let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
        let mut l = net.listen(PORT);
        let tw = time_wait(&mut net, &mut l);
        let _fresh = take(&mut net, 2);
        // listener 1 + TIME-WAIT 1 + fresh 2: growing the backlog reclaims the TIME-WAIT.
        net.stack.set_backlog(&mut l, 2);
        assert_eq!(net.stack.counts().listening, 2);
        assert_eq!(net.stack.pcb_counters().reclaimed_time_wait, 1);
        assert_eq!(state_of(&net, tw), State::Listen);
        net.stack.set_backlog(&mut l, 0);
        let _more = take(&mut net, 2);
        let before = net.stack.pcb_counters().unarmed_passes;
        net.step();
        assert_eq!(
            net.stack.pcb_counters().unarmed_passes,
            before,
            "room 0 wants nothing"
        );
        net.stack.set_backlog(&mut l, 1);
        net.step();
        net.step();
        assert_eq!(net.stack.pcb_counters().unarmed_passes, before + 2);
    }

    #[test]
    fn abort_resets_the_peer_and_frees_the_socket_after_the_rst() {
        let mut net: Net<6> = Net::new(6);
        let (_l, c, mut s) = net.pair();
        assert_eq!(net.stack.send(&mut s, b"data"), Ok(4));
        net.stack.abort(c).unwrap();
        // The RST is sent at the next poll; until then the socket is closing.
        assert_eq!(net.stack.counts().closing, 1);
        net.step();
        assert_eq!(net.stack.counts().closing, 0);
        let status = net.until("reset seen", |st| match st.peer_status(&s) {
            PeerStatus::Open => None,
            status => Some(status),
        });
        assert_eq!(status, PeerStatus::Gone(ErrorClass::Reset));
        assert_eq!(other(net.stack.receive(&mut s, &mut [0u8; 8])), SmolError::Reset);
        assert_eq!(other(net.stack.send(&mut s, b"x")), SmolError::Reset);
        assert_eq!(SmolError::Reset.kind(), TcpErrorKind::PipeClosed);
        net.stack.abort(s).unwrap();
        assert_eq!(net.stack.counts().closing, 0);
    }

    #[test]
    fn data_before_a_reset_stays_readable() {
        let mut net: Net<6> = Net::new(6);
        let (_l, mut c, mut s) = net.pair();
        assert_eq!(net.stack.send(&mut c, b"last words"), Ok(10));
        net.until("queued", |st| (st.send_queue(&c) == Some(0)).then_some(()));
        net.stack.abort(c).unwrap();
        net.step();
        net.step();
        assert_eq!(net.stack.tcp_state(&s), Some(State::Closed));
        let mut buf = [0u8; 32];
        assert_eq!(net.stack.receive(&mut s, &mut buf), Ok(10));
        assert_eq!(&buf[..10], b"last words");
        assert_eq!(other(net.stack.receive(&mut s, &mut buf)), SmolError::Reset);
    }

    #[test]
    fn a_stale_handle_is_refused_and_never_touches_the_new_user() {
        let mut net: Net<4> = Net::new(4);
        let mut l = net.listen(PORT); // arms 2: 2 free left
        let old = net.stack.socket().unwrap();
        let keep = old;
        net.stack.close(old).unwrap(); // fresh: free at once
        let mut new = net.stack.socket().unwrap();
        assert_eq!(new.index(), keep.index());
        assert_ne!(new.generation(), keep.generation());
        // Every use of the kept copy is refused.
        let mut stale = keep;
        assert_eq!(other(net.stack.connect(&mut stale, server())), SmolError::Stale);
        assert_eq!(other(net.stack.send(&mut stale, b"x")), SmolError::Stale);
        assert_eq!(net.stack.close(stale), Err(SmolError::Stale));
        assert_eq!(net.stack.abort(stale), Err(SmolError::Stale));
        assert_eq!(net.stack.peer_status(&stale), PeerStatus::Unknown);
        assert_eq!(SmolError::Stale.class(), ErrorClass::InvalidInput);
        // The new user connects and talks undisturbed.
        net.until("connect", |st| st.connect(&mut new, server()).ok());
        let (mut s, _) = net.accept(&mut l);
        assert_eq!(net.stack.send(&mut new, b"ok"), Ok(2));
        assert_eq!(net.recv_exact(&mut s, 2), b"ok");
        // A listener handle goes stale when it is closed.
        let kept_listener = l;
        net.stack.close(l).unwrap();
        let mut stale_l = kept_listener;
        assert_eq!(other(net.stack.accept(&mut stale_l)), SmolError::Stale);
        assert_eq!(net.stack.close(stale_l), Err(SmolError::Stale));
    }

    #[test]
    fn closing_a_listener_frees_its_sockets_and_resets_pending_connections() {
        let mut net: Net<6> = Net::new(6);
        let l = net.listen(PORT);
        let mut c = net.connect(server()); // pending, never accepted
        net.until("pending", |st| (st.counts().pending == 1).then_some(()));
        net.stack.close(l).unwrap();
        let counts = net.stack.counts();
        assert_eq!((counts.listening, counts.pending, counts.closing), (0, 0, 1));
        let status = net.until("reset", |st| match st.peer_status(&c) {
            PeerStatus::Open => None,
            status => Some(status),
        });
        assert_eq!(status, PeerStatus::Gone(ErrorClass::Reset));
        assert_eq!(other(net.stack.send(&mut c, b"x")), SmolError::Reset);
        net.stack.close(c).unwrap();
        assert_eq!(net.stack.counts().free, 6);
        // Nothing listens any more.
        let mut d = net.stack.socket().unwrap();
        let e = net.until("refused", |st| match st.connect(&mut d, server()) {
            Err(nb::Error::WouldBlock) => None,
            r => Some(other(r)),
        });
        assert_eq!(e, SmolError::Refused);
        // The port can be listened on again at once.
        let _l2 = net.listen(PORT);
        assert_eq!(net.stack.counts().listening, 2);
    }

    #[test]
    fn send_queue_rises_after_send_and_falls_to_zero_after_ack() {
        let mut net: Net<6> = Net::new(6);
        let (_l, mut c, mut s) = net.pair();
        assert_eq!(net.stack.send_queue(&c), Some(0));
        let data = [0x5au8; 1000];
        assert_eq!(net.stack.send(&mut c, &data), Ok(1000));
        assert_eq!(net.stack.send_queue(&c), Some(1000));
        // Fill the buffer: WouldBlock, not an error.
        assert_eq!(net.stack.send(&mut c, &[0u8; BUF]), Ok(BUF - 1000));
        assert_eq!(net.stack.send(&mut c, b"more"), Err(nb::Error::WouldBlock));
        assert_eq!(net.stack.send_queue(&c), Some(BUF));
        // The peer reads; everything is acknowledged.
        assert_eq!(net.recv_exact(&mut s, BUF).len(), BUF);
        net.until("acked", |st| (st.send_queue(&c) == Some(0)).then_some(()));
    }

    #[test]
    fn peer_status_is_closed_after_peer_fin_and_drain() {
        let mut net: Net<6> = Net::new(6);
        let (_l, mut c, mut s) = net.pair();
        assert_eq!(net.stack.send(&mut c, b"abc"), Ok(3));
        net.stack.close(c).unwrap();
        net.until("fin arrived", |st| {
            (st.tcp_state(&s) == Some(State::CloseWait)).then_some(())
        });
        // Unread data: still open.
        assert_eq!(net.stack.peer_status(&s), PeerStatus::Open);
        assert_eq!(net.recv_exact(&mut s, 3), b"abc");
        assert_eq!(net.stack.peer_status(&s), PeerStatus::Closed);
        assert_eq!(net.stack.receive(&mut s, &mut [0u8; 8]), Ok(0));
        assert_eq!(net.stack.receive(&mut s, &mut [0u8; 8]), Ok(0));
        // Still writable (half-close) until we close too.
        assert_eq!(net.stack.send(&mut s, b"ok"), Ok(2));
    }

    #[test]
    fn connect_to_a_closed_port_is_refused_and_sticky() {
        let mut net: Net<4> = Net::new(4);
        let mut c = net.stack.socket().unwrap();
        assert_eq!(net.stack.connect(&mut c, addr(9)), Err(nb::Error::WouldBlock));
        assert_eq!(net.stack.peer_status(&c), PeerStatus::Open);
        assert_eq!(net.stack.send(&mut c, b"x"), Err(nb::Error::WouldBlock));
        assert_eq!(net.stack.counts().connecting, 1);
        let e = net.until("refused", |st| match st.connect(&mut c, addr(9)) {
            Err(nb::Error::WouldBlock) => None,
            r => Some(other(r)),
        });
        assert_eq!(e, SmolError::Refused);
        assert_eq!(e.class(), ErrorClass::Refused);
        // Sticky until closed.
        assert_eq!(other(net.stack.connect(&mut c, addr(9))), SmolError::Refused);
        assert_eq!(other(net.stack.receive(&mut c, &mut [0; 4])), SmolError::Refused);
        assert_eq!(net.stack.peer_status(&c), PeerStatus::Gone(ErrorClass::Refused));
        assert_eq!(net.stack.counts().idle, 1);
        net.stack.close(c).unwrap();
        assert_eq!(net.stack.counts().free, 4);
    }

    #[test]
    fn connect_to_a_silent_host_times_out_with_a_socket_timeout() {
        let timeout = Duration::from_secs(3);
        let mut net: Net<2> = Net::with(2, Some(timeout), |s| s);
        // 127.0.0.2 is on the link but not ours: the SYN is never answered.
        let silent = SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), 80);
        let mut c = net.stack.socket().unwrap();
        let t0 = net.now;
        let e = net.until("timeout", |st| match st.connect(&mut c, silent) {
            Err(nb::Error::WouldBlock) => None,
            r => Some(other(r)),
        });
        assert_eq!(e, SmolError::TimedOut);
        // A connect that timed out failed for good: not "try again later".
        assert_eq!(e.class(), ErrorClass::ConnectionTimedOut);
        assert!(!e.class().is_retry());
        assert!(net.now - t0 >= timeout);
        net.stack.abort(c).unwrap();
        net.step();
        assert_eq!(net.stack.counts().free, 2);
    }

    #[test]
    fn with_a_socket_timeout_a_reset_is_connection_lost() {
        let mut net: Net<6> = Net::with(6, Some(Duration::from_secs(30)), |s| s);
        let (_l, c, mut s) = net.pair();
        net.stack.abort(c).unwrap();
        let status = net.until("gone", |st| match st.peer_status(&s) {
            PeerStatus::Open => None,
            status => Some(status),
        });
        assert_eq!(status, PeerStatus::Gone(ErrorClass::ConnectionLost));
        assert_eq!(
            other(net.stack.receive(&mut s, &mut [0; 4])),
            SmolError::ConnectionLost
        );
    }

    #[test]
    fn ephemeral_ports_follow_the_seed_and_skip_ports_in_use() {
        let mut net: Net<6> = Net::with(6, None, |s| s.with_port_seed(16383));
        // Seed 16383: the first port is 65535, then the counter wraps to 49152.
        let mut l = net.stack.socket().unwrap();
        net.stack.bind(&mut l, 49152).unwrap();
        net.stack.listen(&mut l).unwrap();
        let c = net.connect(addr(49152));
        assert_eq!(net.stack.local_port(&c), Some(65535));
        let d = net.connect(addr(49152));
        assert_eq!(net.stack.local_port(&d), Some(49153));
    }

    #[test]
    fn the_pool_tells_the_stack_its_room_and_the_listening_sockets_follow_it() {
        use crate::{Config, ListenParams, Pool};

        let mut dev = Loop::default();
        let iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut dev, Instant::ZERO);
        let stack: SmoltcpStack<'static, 8> = SmoltcpStack::new(iface, set(8, None)).with_accept_queue(0);
        let mut pool: Pool<SmoltcpStack<'static, 8>, 5, 1, 0> = Pool::new(stack, Config::new());
        pool.listen(PORT, ListenParams::new(5)).unwrap();
        assert_eq!(
            pool.stack().counts().listening,
            DEFAULT_BACKLOG,
            "before the first poll"
        );
        pool.poll(crate::Instant::ZERO);
        assert_eq!(
            pool.stack().counts().listening,
            5,
            "the port's room: its cap of 5"
        );
        pool.listen(PORT, ListenParams::new(3)).unwrap();
        pool.poll(crate::Instant::from_millis(1));
        assert_eq!(
            pool.stack().counts().listening,
            3,
            "a smaller cap, a smaller room"
        );
    }

    #[test]
    fn serves_a_pool_connection_from_a_client_on_the_same_stack() {
        use crate::{Config, ListenParams, Pool};

        let mut dev = Loop::default();
        let mut iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut dev, Instant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
        });
        let stack: SmoltcpStack<'static, 6> = SmoltcpStack::new(iface, set(6, None));
        let mut pool: Pool<SmoltcpStack<'static, 6>, 4, 1, 64> = Pool::new(stack, Config::new());
        pool.listen(PORT, ListenParams::new(4)).unwrap();

        let mut now = Instant::ZERO;
        let mut tick = |pool: &mut Pool<SmoltcpStack<'static, 6>, 4, 1, 64>| {
            now += TICK;
            pool.stack_mut().poll(now, &mut dev);
            pool.poll(crate::Instant::from_millis(now.total_millis() as u64));
            crate::Instant::from_millis(now.total_millis() as u64)
        };

        let mut client = pool.stack_mut().socket().unwrap();
        let mut accepted = None;
        let mut np_now = crate::Instant::ZERO;
        for _ in 0..MAX_POLLS {
            let _ = pool.stack_mut().connect(&mut client, server());
            if let Some(a) = pool.accept_next() {
                accepted = Some(a);
                break;
            }
            np_now = tick(&mut pool);
        }
        let a = accepted.expect("pool accepted nothing");
        assert_eq!(a.port, PORT);
        assert_eq!(pool.stack_mut().connect(&mut client, server()), Ok(()));
        assert_eq!(Some(a.remote.port()), pool.stack().local_port(&client));

        // Client → pool.
        assert_eq!(pool.stack_mut().send(&mut client, b"hello"), Ok(5));
        let mut buf = [0u8; 16];
        let mut got = 0;
        for _ in 0..MAX_POLLS {
            match pool.read(a.handle, &mut buf, np_now) {
                Ok(n) => {
                    got = n;
                    break;
                }
                Err(nb::Error::WouldBlock) => np_now = tick(&mut pool),
                Err(nb::Error::Other(e)) => panic!("{e}"),
            }
        }
        assert_eq!(&buf[..got], b"hello");

        // Pool → client: MORE bytes wait in netpool's buffer (smoltcp has no MORE
        // flag) and count in the send queue; the push hands them to the stack, where
        // they are queued until the client acknowledges them.
        assert_eq!(pool.send_queue(a.handle), Ok(Some(0)));
        assert_eq!(pool.handle_at(a.handle.slot()), Some(a.handle));
        assert_eq!(pool.write(a.handle, b"wor", false, np_now), Ok(3));
        assert_eq!(pool.send_queue(a.handle), Ok(Some(3)), "buffered in netpool");
        assert_eq!(pool.write(a.handle, b"ld", true, np_now), Ok(2));
        assert_eq!(pool.send_queue(a.handle), Ok(Some(5)), "handed to the stack");
        // Then close: the client reads it all, then EOF.
        pool.close(a.handle, np_now).unwrap();
        assert_eq!(pool.handle_at(a.handle.slot()), None);
        let mut out = Vec::new();
        for _ in 0..MAX_POLLS {
            match pool.stack_mut().receive(&mut client, &mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(nb::Error::WouldBlock) => np_now = tick(&mut pool),
                Err(nb::Error::Other(e)) => panic!("{e}"),
            }
        }
        assert_eq!(out, b"world");
        pool.stack_mut().close(client).unwrap();
        assert_eq!(pool.free_slots(), 4);
        let _ = np_now;
    }

    /// A SYN to `PORT` from 127.0.0.`host`:`port` that no one will ever complete: the
    /// SYN-ACK goes to an address the interface does not have, and is lost.
    fn half_open_syn<const M: usize>(net: &mut Net<M>, host: u8, port: u16) {
        half_open_syn_to(net, host, port, PORT);
    }

    /// [`half_open_syn`] to local port `to`.
    fn half_open_syn_to<const M: usize>(net: &mut Net<M>, host: u8, port: u16, to: u16) {
        use ::smoltcp::phy::ChecksumCapabilities;
        use ::smoltcp::wire::{
            IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
        };
        let (src, dst) = (Ipv4Addr::new(127, 0, 0, host), Ipv4Addr::LOCALHOST);
        let tcp = TcpRepr {
            src_port: port,
            dst_port: to,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(i32::from(port) * 1000),
            ack_number: None,
            window_len: 1024,
            window_scale: None,
            max_seg_size: Some(1400),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut frame = vec![0u8; ip.buffer_len() + tcp.buffer_len()];
        let caps = ChecksumCapabilities::default();
        let mut packet = Ipv4Packet::new_unchecked(&mut frame[..]);
        ip.emit(&mut packet, &caps);
        tcp.emit(
            &mut TcpPacket::new_unchecked(packet.payload_mut()),
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            &caps,
        );
        net.dev.queue.push_back(frame);
    }

    /// The TCP states of listener slot 0's armed sockets: (listening, half-open, other).
    fn armed_states<const M: usize>(net: &Net<M>) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for e in net.stack.entries.iter().filter(|e| e.role.armed_for(0)) {
            match tcp_ref(&net.stack.sockets, e.handle).state() {
                State::Listen => c.0 += 1,
                State::SynReceived => c.1 += 1,
                _ => c.2 += 1,
            }
        }
        c
    }

    /// Step until the stack's clock reaches `ms`.
    fn step_to<const M: usize>(net: &mut Net<M>, ms: i64) {
        while net.now < Instant::from_millis(ms) {
            net.step();
        }
    }

    #[test]
    fn a_half_open_handshake_is_reset_at_the_deadline_and_its_socket_listens_again() {
        let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
        net.stack
            .set_handshake_deadline(crate::time::Duration::from_millis(500));
        let _l = net.listen(PORT);
        half_open_syn(&mut net, 9, 4000);
        net.step();
        // The half-open socket is kept apart: another one listens for the room.
        assert_eq!(armed_states(&net), (1, 1, 0));
        // Not before the deadline (a free socket covers the room: nothing evicted) ...
        step_to(&mut net, 400);
        assert_eq!(armed_states(&net), (1, 1, 0));
        assert_eq!(net.stack.pcb_counters().half_open_reclaimed(), 0);
        // ... but at it: reset and listening again; the listener keeps just its room.
        step_to(&mut net, 600);
        assert_eq!(armed_states(&net), (1, 0, 0));
        let c = net.stack.pcb_counters();
        assert_eq!((c.half_open_expired, c.half_open_evicted), (1, 0), "{c}");
        assert_eq!(c.half_open_reclaimed(), 1);
    }

    #[test]
    fn a_flood_of_half_open_syns_never_takes_the_room_and_a_real_client_is_served() {
        let mut net: Net<6> = Net::with(6, None, |s| s.with_backlog(2));
        let mut l = net.listen(PORT);
        // A SYN every 100 ms, none ever completing.
        for k in 0..30u16 {
            half_open_syn(&mut net, 9 + k as u8, 4000 + k);
            let t = net.now.total_millis() + 100;
            step_to(&mut net, t);
            let (listening, half_open, _) = armed_states(&net);
            assert!(
                listening >= 2,
                "after SYN {k}: {listening} listening, {half_open} half-open"
            );
        }
        let c = net.stack.pcb_counters();
        assert!(c.half_open_evicted >= 20, "{c}");
        assert_eq!(c.unarmed_passes, 0, "{c}");
        // A real client is served at once, in the middle of the flood.
        let client = net.connect(server());
        let (s, remote) = net.accept(&mut l);
        assert_eq!(Some(remote), net.stack.local_port(&client).map(addr));
        assert_eq!(net.stack.tcp_state(&s), Some(State::Established));
    }

    #[test]
    fn the_oldest_overdue_half_open_socket_gives_way_and_one_in_flight_never_does() {
        // Two sockets: the listener's one, and one for the first half-open.
        let mut net: Net<2> = Net::with(2, None, |s| s.with_backlog(1));
        let _l = net.listen(PORT);
        half_open_syn(&mut net, 9, 4001);
        net.step();
        assert_eq!(armed_states(&net), (1, 1, 0));
        // A second SYN while the first is still in flight: it takes the last listening
        // socket, and the first, in flight, is not evicted for it.
        half_open_syn(&mut net, 10, 4002);
        net.step();
        assert_eq!(armed_states(&net), (0, 2, 0));
        assert_eq!(net.stack.pcb_counters().half_open_evicted, 0);
        // Past their round trip, the older gives way so one listens again.
        step_to(&mut net, 300);
        assert_eq!(net.stack.pcb_counters().half_open_evicted, 1);
        let remotes: Vec<_> = net
            .stack
            .entries
            .iter()
            .filter(|e| e.role.armed_for(0))
            .filter_map(|e| tcp_ref(&net.stack.sockets, e.handle).remote_endpoint())
            .map(|ep| ep.port)
            .collect();
        assert_eq!(remotes, [4002], "the newer handshake stays, the older gave way");
        assert_eq!(armed_states(&net), (1, 1, 0));
    }

    #[test]
    fn when_a_listeners_room_shrinks_a_handshake_under_way_keeps_its_socket() {
        let mut net: Net<6> = Net::with(6, None, |s| s.with_backlog(3));
        let mut l = net.listen(PORT);
        half_open_syn(&mut net, 9, 4000);
        net.step();
        assert_eq!(armed_states(&net), (3, 1, 0));
        net.stack.set_backlog(&mut l, 0);
        // Only idle listening sockets go; the handshake under way stays.
        assert_eq!(armed_states(&net), (0, 1, 0));
        assert_eq!(net.stack.pcb_counters().half_open_reclaimed(), 0);
    }

    /// Connect `clients` to the server and wait until every one is established.
    fn connect_all<const M: usize>(net: &mut Net<M>, clients: &mut [SmolSocket]) {
        for c in clients.iter_mut() {
            assert_eq!(net.stack.connect(c, server()), Err(nb::Error::WouldBlock));
        }
        net.until("all connected", |st| {
            let mut done = 0;
            for c in clients.iter_mut() {
                match st.connect(c, server()) {
                    Ok(()) => done += 1,
                    Err(nb::Error::WouldBlock) => {}
                    Err(nb::Error::Other(e)) => panic!("refused: {e}"),
                }
            }
            (done == clients.len()).then_some(())
        });
    }

    #[test]
    fn a_burst_beyond_the_pools_room_waits_in_the_accept_queue_and_is_taken_when_room_frees() {
        let mut net: Net<12> = Net::with(12, None, |s| s.with_accept_queue(5));
        let mut l = net.listen(PORT);
        net.stack.set_backlog(&mut l, 2);
        assert_eq!(net.stack.counts().listening, 5, "a room of 2 in a queue 5 deep");
        let mut clients = take(&mut net, 5);
        connect_all(&mut net, &mut clients);
        // Two for the room; the other three wait, not handed out.
        let _a = net.accept(&mut l);
        let _b = net.accept(&mut l);
        assert_eq!(net.stack.accept(&mut l).map(|_| ()), Err(nb::Error::WouldBlock));
        assert_eq!(net.stack.counts().pending, 3);
        // A slot frees: the pool tells its room of 1, and one waiting is taken.
        net.stack.set_backlog(&mut l, 1);
        let _c = net.accept(&mut l);
        assert_eq!(net.stack.accept(&mut l).map(|_| ()), Err(nb::Error::WouldBlock));
        assert_eq!(net.stack.pcb_counters().accept_queue_expired, 0);
    }

    #[test]
    fn a_connection_waiting_in_the_accept_queue_is_reset_at_the_deadline_while_the_pool_has_no_room() {
        let mut net: Net<6> = Net::with(6, None, |s| s.with_accept_queue(1));
        net.stack
            .set_handshake_deadline(crate::time::Duration::from_millis(500));
        let mut l = net.listen(PORT);
        net.stack.set_backlog(&mut l, 0);
        assert_eq!(net.stack.counts().listening, 1, "no room, a queue of 1");
        let mut client = take(&mut net, 1);
        connect_all(&mut net, &mut client);
        let waiting_since = net.now;
        // It waits ...
        let until = waiting_since.total_millis() + 400;
        step_to(&mut net, until);
        assert_eq!(net.stack.counts().pending, 1);
        // ... for the deadline, then it is reset and the socket listens again.
        let until = waiting_since.total_millis() + 600;
        step_to(&mut net, until);
        assert_eq!(net.stack.pcb_counters().accept_queue_expired, 1);
        let mut buf = [0u8; 4];
        net.until("the client sees the reset", |st| {
            match st.receive(&mut client[0], &mut buf) {
                Err(nb::Error::Other(e)) => Some(e),
                _ => None,
            }
        });
        assert_eq!(net.stack.counts().listening, 1);
    }

    #[test]
    fn a_connect_takes_an_idle_accept_queue_socket_when_nothing_else_is_free() {
        let mut net: Net<3> = Net::with(3, None, |s| s.with_accept_queue(2));
        let mut l = net.listen(PORT);
        net.stack.set_backlog(&mut l, 0);
        // Two sockets listen for the queue; one is free.
        assert_eq!(net.stack.counts().listening, 2);
        assert_eq!(net.stack.counts().free, 1);
        let _a = net.stack.socket().unwrap();
        // Nothing free: the connect takes an idle socket of the queue.
        let b = net.stack.socket().expect("an idle queue socket");
        assert_eq!(net.stack.counts().listening, 1);
        let mut b = b;
        assert_eq!(net.stack.connect(&mut b, server()), Err(nb::Error::WouldBlock));
    }

    /// The pass that resets an expired half-open socket counts it as listening: it
    /// arms no socket beyond the room (kills the expiry's `listening += 1` mutated).
    #[test]
    fn the_pass_that_expires_a_half_open_socket_arms_nothing_beyond_the_room() {
        let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
        net.stack
            .set_handshake_deadline(crate::time::Duration::from_millis(500));
        let _l = net.listen(PORT);
        half_open_syn(&mut net, 9, 4000);
        net.step();
        assert_eq!(armed_states(&net), (1, 1, 0));
        for _ in 0..MAX_POLLS {
            net.step();
            if net.stack.pcb_counters().half_open_expired == 1 {
                break;
            }
        }
        assert_eq!(net.stack.pcb_counters().half_open_expired, 1);
        assert_eq!(armed_states(&net), (1, 0, 0), "in the expiring pass itself");
        assert_eq!(net.stack.counts().free, 3);
    }

    #[test]
    fn of_two_overdue_half_open_sockets_the_one_that_waited_longest_gives_way_first() {
        // Three sockets: the listener's one and two for handshakes.
        let mut net: Net<3> = Net::with(3, None, |s| s.with_backlog(1));
        let _l = net.listen(PORT);
        half_open_syn(&mut net, 9, 4001);
        net.step();
        step_to(&mut net, 100);
        half_open_syn(&mut net, 10, 4002);
        net.step();
        assert_eq!(armed_states(&net), (1, 2, 0));
        // Both overdue; a third SYN takes the last listening socket.
        step_to(&mut net, 500);
        half_open_syn(&mut net, 11, 4003);
        net.step();
        assert_eq!(net.stack.pcb_counters().half_open_evicted, 1);
        let mut remotes: Vec<_> = net
            .stack
            .entries
            .iter()
            .filter(|e| e.role.armed_for(0))
            .filter_map(|e| tcp_ref(&net.stack.sockets, e.handle).remote_endpoint())
            .map(|ep| ep.port)
            .collect();
        remotes.sort();
        assert_eq!(
            remotes,
            [4002, 4003],
            "the first handshake, overdue longest, gave way"
        );
    }

    #[test]
    fn a_connect_takes_the_overdue_half_open_socket_that_waited_longest_of_any_listener() {
        // Two listeners, one socket each and one handshake each, the one on port 81
        // (the second listener) older; nothing free.
        let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
        let _l80 = net.listen(PORT);
        let mut l81 = net.stack.socket().unwrap();
        net.stack.bind(&mut l81, 81).unwrap();
        net.stack.listen(&mut l81).unwrap();
        half_open_syn_to(&mut net, 9, 4001, 81);
        net.step();
        step_to(&mut net, 100);
        half_open_syn(&mut net, 10, 4002);
        net.step();
        step_to(&mut net, 500);
        assert_eq!(net.stack.counts().free, 0);
        let s = net.stack.socket().expect("an overdue handshake's socket");
        assert_eq!(net.stack.pcb_counters().half_open_evicted, 1);
        let left: Vec<_> = net
            .stack
            .entries
            .iter()
            .filter(|e| matches!(e.role, Role::Armed { .. }))
            .map(|e| tcp_ref(&net.stack.sockets, e.handle))
            .filter(|t| t.state() == State::SynReceived)
            .filter_map(|t| t.remote_endpoint())
            .map(|ep| ep.port)
            .collect();
        assert_eq!(left, [4002], "the older handshake (port 81) gave way");
        assert_eq!(net.stack.tcp_state(&s), Some(State::Closed), "handed over fresh");
    }

    #[test]
    fn a_connect_never_takes_a_socket_of_a_listeners_room_nor_of_a_listener_the_pool_does_not_size() {
        let mut net: Net<4> = Net::with(4, None, |s| s.with_accept_queue(2));
        assert_eq!(net.stack.accept_queue(), 2);
        // Port 80: sized, a room of 2 = the queue's depth: both sockets are its room.
        let mut l80 = net.listen(PORT);
        net.stack.set_backlog(&mut l80, 2);
        // Port 81: never sized by a pool, its own backlog of 2.
        let mut l81 = net.stack.socket().unwrap();
        net.stack.bind(&mut l81, 81).unwrap();
        net.stack.listen(&mut l81).unwrap();
        assert_eq!(net.stack.counts().listening, 4);
        assert_eq!(
            net.stack.socket(),
            Err(SmolError::NoSocket),
            "no idle queue socket to take"
        );
        assert_eq!(net.stack.counts().listening, 4);
        // Port 80's room shrinks to 1: its second socket is only the queue's now.
        net.stack.set_backlog(&mut l80, 1);
        assert!(net.stack.socket().is_ok(), "an idle queue socket");
        assert_eq!(net.stack.counts().listening, 3);
    }

    /// The overdue handshake that waited longest is found by its age, not by its
    /// place: here the youngest sits in the first socket (kills `oldest_overdue`
    /// keeping the first overdue one it meets).
    #[test]
    fn the_overdue_handshake_taken_is_the_oldest_wherever_its_socket_is() {
        let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
        let c0 = net.stack.socket().unwrap();
        assert_eq!(c0.index(), 0);
        let _l = net.listen(PORT);
        half_open_syn(&mut net, 9, 4001); // A, on socket 1
        net.step();
        net.stack.close(c0).unwrap(); // socket 0 free
        step_to(&mut net, 100);
        half_open_syn(&mut net, 10, 4002); // B, on socket 2; socket 0 armed
        net.step();
        step_to(&mut net, 200);
        half_open_syn(&mut net, 11, 4003); // C, on socket 0; socket 3 armed
        net.step();
        let port_of = |net: &Net<4>, i: usize| {
            tcp_ref(&net.stack.sockets, net.stack.entries[i].handle)
                .remote_endpoint()
                .map(|ep| ep.port)
        };
        assert_eq!(port_of(&net, 0), Some(4003), "the youngest in the first socket");
        assert_eq!(port_of(&net, 1), Some(4001));
        step_to(&mut net, 700);
        // Nothing free: a new socket takes the oldest overdue handshake's, A's.
        let s = net.stack.socket().expect("an overdue handshake's socket");
        assert_eq!(s.index(), 1);
    }

    #[test]
    fn the_pool_tells_the_stack_its_handshake_deadline() {
        let net: Net<4> = Net::new(4);
        let config = crate::Config::new().with_handshake_deadline(crate::time::Duration::from_millis(750));
        let mut pool: crate::Pool<_, 2, 1, 0> = crate::Pool::new(net.stack, config);
        assert_eq!(
            pool.stack().handshake_deadline,
            crate::Config::new().handshake_deadline
        );
        pool.listen(PORT, crate::ListenParams::new(2)).unwrap();
        assert_eq!(pool.stack().handshake_deadline.as_millis(), 750);
        pool.set_config(config.with_handshake_deadline(crate::time::Duration::from_millis(900)));
        assert_eq!(pool.stack().handshake_deadline.as_millis(), 900);
    }

    #[test]
    fn error_table() {
        use SmolError as E;
        let all = [
            (E::NoSocket, ErrorClass::OutOfResources),
            (E::NoListenerSlot, ErrorClass::OutOfResources),
            (E::NoPort, ErrorClass::OutOfResources),
            (E::Stale, ErrorClass::InvalidInput),
            (E::InvalidState, ErrorClass::InvalidInput),
            (E::Unaddressable, ErrorClass::NoRoute),
            (E::AddressInUse, ErrorClass::AddressInUse),
            (E::Refused, ErrorClass::Refused),
            (E::TimedOut, ErrorClass::ConnectionTimedOut),
            (E::Reset, ErrorClass::Reset),
            (E::ConnectionLost, ErrorClass::ConnectionLost),
            (E::Closed, ErrorClass::Closed),
        ];
        for (e, class) in all {
            assert_eq!(e.class(), class, "{e}");
            assert!(!e.as_str().is_empty());
            let pipe = matches!(e, E::Reset | E::ConnectionLost | E::Closed);
            assert_eq!(e.kind() == TcpErrorKind::PipeClosed, pipe, "{e}");
        }
    }

    // ------------------------------------------------------------------------------
    // The adapter's own rules (issue 23, item 4), each with the hand-made bug it kills.
    // ------------------------------------------------------------------------------

    /// Whether socket `i` of the stack is in `state`.
    fn in_state<const M: usize>(st: &SmoltcpStack<'static, M>, i: usize, state: State) -> bool {
        tcp_ref(&st.sockets, st.entries[i].handle).state() == state
    }

    /// Two server sides closed into FIN-WAIT, where the one closed first enters
    /// FIN-WAIT-2 last: `a` is closed first with its FIN lost (FIN-WAIT-1 until smoltcp
    /// retransmits it), `b` closed later and acknowledged at once. The client sides stay
    /// open (CLOSE-WAIT), so both stay in FIN-WAIT-2. Returns `(a, b, a_entered,
    /// b_entered, kept)`: the socket indices, when each entered FIN-WAIT-2 (the poll
    /// that saw it), with `b_entered < a_entered`, and the handles to keep (the
    /// listener, both clients, and every socket that was free then, taken).
    fn fin_wait_2_closed_first_entered_last<const M: usize>(
        net: &mut Net<M>,
    ) -> (usize, usize, Instant, Instant, Vec<SmolSocket>) {
        let mut l = net.listen(PORT);
        let ca = net.connect(server());
        let (sa, _) = net.accept(&mut l);
        let cb = net.connect(server());
        let (sb, _) = net.accept(&mut l);
        let (a, b) = (sa.index(), sb.index());
        net.dev.lose = true;
        net.stack.close(sa).unwrap();
        net.step();
        net.dev.lose = false;
        assert_eq!(state_of(net, a), State::FinWait1, "a's FIN was lost");
        for _ in 0..20 {
            net.step();
        }
        net.stack.close(sb).unwrap();
        net.until("b in FIN-WAIT-2", |st| {
            in_state(st, b, State::FinWait2).then_some(())
        });
        let b_entered = net.now;
        assert_eq!(state_of(net, a), State::FinWait1, "a's FIN not retransmitted yet");
        net.until("a in FIN-WAIT-2", |st| {
            in_state(st, a, State::FinWait2).then_some(())
        });
        let a_entered = net.now;
        assert!(a_entered > b_entered + Duration::from_millis(100));
        let free = net.stack.counts().free;
        let mut kept = take(net, free);
        kept.extend([ca, cb, l]);
        (a, b, a_entered, b_entered, kept)
    }

    /// Rule 1a (bound): the FIN-WAIT bound counts from when the socket entered
    /// FIN-WAIT-2, not from when the application closed it.
    /// Kills: `note_closing` keeping the old `since` on a state change (or `release`'s
    /// time kept): `a`, closed first, would be past the bound with `b` and taken first.
    #[test]
    fn a_closing_sockets_fin_wait_bound_is_counted_from_its_state_entry_not_its_close() {
        let bound = Duration::from_secs(2);
        let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(1).with_fin_wait_bound(bound));
        let (a, b, a_entered, b_entered, _kept) = fin_wait_2_closed_first_entered_last(&mut net);
        // `b` is past the bound, `a` (closed earlier, in FIN-WAIT-2 later) is not.
        step_to(&mut net, (b_entered + bound).total_millis());
        assert!(net.now < a_entered + bound);
        assert_eq!(net.stack.socket().map(SmolSocket::index), Ok(b));
        assert_eq!(
            net.stack.socket(),
            Err(SmolError::NoSocket),
            "a is within its bound: counted from FIN-WAIT-2, not from its close"
        );
        step_to(&mut net, (a_entered + bound).total_millis());
        assert_eq!(net.stack.socket().map(SmolSocket::index), Ok(a));
        assert_eq!(net.stack.pcb_counters().reclaimed_fin_wait, 2);
    }

    /// Rule 1a (order): among FIN-WAIT sockets past the bound, the one that entered its
    /// state first is taken first, whatever the order of their closes.
    /// Kills: the same mutant (age from the close): `a` would come first.
    #[test]
    fn a_closing_sockets_reclaim_order_is_by_state_entry_not_by_close() {
        let bound = Duration::from_secs(2);
        let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(1).with_fin_wait_bound(bound));
        let (a, b, a_entered, _, _kept) = fin_wait_2_closed_first_entered_last(&mut net);
        step_to(&mut net, (a_entered + bound).total_millis());
        assert_eq!(
            net.stack.socket().map(SmolSocket::index),
            Ok(b),
            "b entered FIN-WAIT-2 first"
        );
        assert_eq!(net.stack.socket().map(SmolSocket::index), Ok(a));
    }

    /// Rule 1b: when a listener's room shrinks only idle LISTEN sockets stop. The
    /// connection waiting for `accept` and the real handshake under way sit before the
    /// idle ones in the set (smoltcp hands a SYN to the first listening socket), so the
    /// stop loop must pass over them.
    /// Kills: the stop loop not checking `State::Listen` (closing and freeing every
    /// armed socket it meets), or marking a non-listening socket free.
    #[test]
    fn when_a_listeners_room_shrinks_only_idle_listening_sockets_stop_and_both_connections_are_accepted() {
        let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(4));
        let mut l = net.listen(PORT);
        // The first SYN: established, not accepted.
        let c1 = net.connect(server());
        net.until("pending", |st| (st.counts().pending == 1).then_some(()));
        // The next one: caught in SYN-RECEIVED.
        let mut c2 = net.stack.socket().unwrap();
        assert_eq!(net.stack.connect(&mut c2, server()), Err(nb::Error::WouldBlock));
        let armed_in = |net: &Net<8>, state: State| {
            (0..8)
                .filter(|&i| net.stack.entries[i].role.armed_for(0) && state_of(net, i) == state)
                .collect::<Vec<_>>()
        };
        for _ in 0..MAX_POLLS {
            if !armed_in(&net, State::SynReceived).is_empty() {
                break;
            }
            net.step();
        }
        let (pending, half_open) = (
            armed_in(&net, State::Established),
            armed_in(&net, State::SynReceived),
        );
        let idle = armed_in(&net, State::Listen);
        assert_eq!((pending.len(), half_open.len()), (1, 1));
        let (pending, half_open) = (pending[0], half_open[0]);
        assert!(
            idle.len() >= 2,
            "idle listening sockets beyond the room: {idle:?}"
        );
        // Both come before every idle listening socket: the stop loop meets them first.
        assert!(
            pending < idle[0] && half_open < idle[0],
            "{pending} {half_open} {idle:?}"
        );
        net.stack.set_backlog(&mut l, 0);
        assert_eq!(
            armed_states(&net),
            (0, 1, 1),
            "only the idle listening sockets stopped"
        );
        assert_eq!(state_of(&net, pending), State::Established);
        assert_eq!(state_of(&net, half_open), State::SynReceived);
        assert!(
            net.stack.entries[pending].role.armed_for(0),
            "the pending connection is kept"
        );
        assert!(
            net.stack.entries[half_open].role.armed_for(0),
            "the handshake is kept"
        );
        // Neither socket is handed to someone else.
        let free = net.stack.counts().free;
        let fresh = take(&mut net, free);
        assert!(
            fresh
                .iter()
                .all(|s| s.index() != pending && s.index() != half_open),
            "{fresh:?}"
        );
        // Both complete and are accepted: the handshake, and the one waiting.
        net.until("c2 connected", |st| match st.connect(&mut c2, server()) {
            Ok(()) => Some(()),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("the handshake under way was cut: {e}"),
        });
        // Room 0: the pool has none for them, so they wait; with room they are taken.
        assert_eq!(net.stack.accept(&mut l).map(|_| ()), Err(nb::Error::WouldBlock));
        net.stack.set_backlog(&mut l, 2);
        let (_, r1) = net.accept(&mut l);
        let (_, r2) = net.accept(&mut l);
        let mut got = [r1, r2];
        got.sort();
        let mut want = [c1, c2].map(|c| addr(net.stack.local_port(&c).unwrap()));
        want.sort();
        assert_eq!(got, want);
        assert_eq!(
            net.stack.counts().listening,
            0,
            "the room taken: nothing listens again"
        );
    }

    /// Rule 1c: closing a listener resets every connection it had not handed out —
    /// the one waiting for `accept`, a real handshake under way, a half-open one that
    /// will never complete — and frees every socket it had armed.
    /// Kills: `close_listener` closing (FIN) instead of resetting a non-listening
    /// socket (the handshake would complete and end with a FIN), or skipping half-open
    /// sockets / not releasing them (they would stay armed for a dead listener).
    #[test]
    fn closing_a_listener_resets_every_connection_it_had_not_handed_out_half_open_ones_included() {
        let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(3));
        let l = net.listen(PORT);
        let c1 = net.connect(server());
        net.until("pending", |st| (st.counts().pending == 1).then_some(()));
        half_open_syn(&mut net, 9, 4000);
        let mut c2 = net.stack.socket().unwrap();
        assert_eq!(net.stack.connect(&mut c2, server()), Err(nb::Error::WouldBlock));
        net.until("two half-open", |st| {
            let half_open = st
                .entries
                .iter()
                .filter(|e| e.role.armed_for(0))
                .filter(|e| tcp_ref(&st.sockets, e.handle).state() == State::SynReceived)
                .count();
            (half_open == 2).then_some(())
        });
        let (_, half_open, pending) = armed_states(&net);
        assert_eq!((half_open, pending), (2, 1));
        net.stack.close(l).unwrap();
        assert!(
            net.stack.entries.iter().all(|e| !e.role.armed_for(0)),
            "every armed socket released"
        );
        let c = net.stack.counts();
        assert_eq!((c.listening, c.pending), (0, 0));
        // Each client learns its connection was reset, never a FIN.
        for c in [c1, c2] {
            let status = net.until("client told", |st| match st.peer_status(&c) {
                PeerStatus::Open => None,
                status => Some(status),
            });
            assert!(matches!(status, PeerStatus::Gone(_)), "{c}: {status:?}");
        }
        // The RSTs went out: every socket but the two clients' is free.
        net.step();
        let c = net.stack.counts();
        assert_eq!((c.closing, c.free), (0, 6), "{c:?}");
    }

    /// Connect `c` (a socket handle just taken) to the server, or panic with the error.
    fn connect_on<const M: usize>(net: &mut Net<M>, mut c: SmolSocket, what: &str) -> SmolSocket {
        net.until(what, |st| match st.connect(&mut c, server()) {
            Ok(()) => Some(()),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("{what}: {e}"),
        });
        c
    }

    /// Rule 1d (FIN-WAIT): a reclaimed FIN-WAIT-1 or FIN-WAIT-2 socket carries nothing
    /// of its old connection: a connect on one and a listen on the other succeed.
    /// Kills: `take_socket` not aborting a reclaimed FIN-WAIT socket (smoltcp refuses
    /// `connect` and `listen` on an open socket: InvalidState).
    #[test]
    fn a_reclaimed_fin_wait_socket_carries_nothing_of_its_old_connection() {
        let bound = Duration::from_secs(1);
        let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(1).with_fin_wait_bound(bound));
        let mut l = net.listen(PORT);
        // FIN-WAIT-2: the server side closes, the client stays open.
        let _c1 = net.connect(server());
        let (s1, _) = net.accept(&mut l);
        let fin_wait_2 = s1.index();
        net.stack.close(s1).unwrap();
        net.until("fin-wait-2", |st| {
            in_state(st, fin_wait_2, State::FinWait2).then_some(())
        });
        // FIN-WAIT-1: the server side closes into a lost network.
        let _c2 = net.connect(server());
        let (s2, _) = net.accept(&mut l);
        let fin_wait_1 = s2.index();
        net.dev.lose = true;
        net.stack.close(s2).unwrap();
        let t = (net.now + bound + TICK).total_millis();
        step_to(&mut net, t);
        assert_eq!(state_of(&net, fin_wait_1), State::FinWait1);
        assert_eq!(state_of(&net, fin_wait_2), State::FinWait2);
        let free = net.stack.counts().free;
        let _fresh = take(&mut net, free);
        let first = net.stack.socket().unwrap();
        let second = net.stack.socket().unwrap();
        assert_eq!([first.index(), second.index()], [fin_wait_2, fin_wait_1]);
        assert_eq!(net.stack.pcb_counters().reclaimed_fin_wait, 2);
        // Listening on the FIN-WAIT-1 socket succeeds at once ...
        let mut l81 = second;
        net.stack.bind(&mut l81, 81).unwrap();
        assert_eq!(net.stack.listen(&mut l81), Ok(()));
        assert_eq!(state_of(&net, fin_wait_1), State::Listen);
        // ... and so does a connect on the FIN-WAIT-2 one.
        net.dev.lose = false;
        let c = connect_on(&mut net, first, "connect on a reclaimed FIN-WAIT-2 socket");
        assert_eq!(net.stack.remote_addr(&c), Some(server()));
        let _ = net.accept(&mut l);
    }

    /// Rule 1d (CLOSING): a simultaneous close whose last ACKs are lost leaves both
    /// sides in CLOSING; reclaimed, one connects and the other listens.
    /// Kills: `take_socket` aborting only some states (e.g. LAST-ACK) before handing a
    /// reclaimed socket over.
    #[test]
    fn a_reclaimed_closing_socket_carries_nothing_of_its_old_connection() {
        let mut net: Net<5> = Net::with(5, None, |s| s.with_backlog(1));
        let (mut l, c, s) = net.pair();
        let (ci, si) = (c.index(), s.index());
        // Both FINs cross; the ACKs of both are lost.
        net.stack.close(c).unwrap();
        net.stack.close(s).unwrap();
        net.step();
        net.dev.lose = true;
        net.step();
        assert_eq!(
            (state_of(&net, ci), state_of(&net, si)),
            (State::Closing, State::Closing)
        );
        let free = net.stack.counts().free;
        let _fresh = take(&mut net, free);
        let first = net.stack.socket().unwrap();
        let mut second = net.stack.socket().unwrap();
        let mut taken = [first.index(), second.index()];
        taken.sort();
        let mut want = [ci, si];
        want.sort();
        assert_eq!(taken, want);
        assert_eq!(net.stack.pcb_counters().reclaimed_closing, 2);
        net.stack.bind(&mut second, 81).unwrap();
        assert_eq!(net.stack.listen(&mut second), Ok(()));
        net.dev.lose = false;
        let first = connect_on(&mut net, first, "connect on a reclaimed CLOSING socket");
        let (_, remote) = net.accept(&mut l);
        assert_eq!(Some(remote), net.stack.local_port(&first).map(addr));
    }

    /// Rule 1e: a listener stopped and started again through the pool has its room told
    /// to the stack at the next poll, even when the number is the one told before.
    /// Kills: `Core::set_listener` not forgetting the room last told (the pool would
    /// think the new listener already knows it; it would keep the stack's default
    /// backlog).
    #[test]
    fn a_listener_started_again_through_the_pool_is_told_its_room_even_if_unchanged() {
        use crate::{Config, ListenParams, Pool};

        let mut dev = Loop::default();
        let iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut dev, Instant::ZERO);
        let stack: SmoltcpStack<'static, 8> = SmoltcpStack::new(iface, set(8, None)).with_accept_queue(0);
        let mut pool: Pool<SmoltcpStack<'static, 8>, 5, 1, 0> = Pool::new(stack, Config::new());
        pool.listen(PORT, ListenParams::new(5)).unwrap();
        pool.poll(crate::Instant::ZERO);
        assert_eq!(pool.stack().counts().listening, 5);
        pool.listen(PORT, ListenParams::new(0)).unwrap();
        assert_eq!(pool.listener(PORT), None, "a cap of 0 stops it");
        pool.poll(crate::Instant::from_millis(1));
        assert_eq!(pool.stack().counts().listening, 0);
        pool.listen(PORT, ListenParams::new(5)).unwrap();
        assert_eq!(
            pool.stack().counts().listening,
            DEFAULT_BACKLOG,
            "the stack's default first"
        );
        pool.poll(crate::Instant::from_millis(2));
        assert_eq!(
            pool.stack().counts().listening,
            5,
            "the same room of 5, told again to the new listener"
        );
    }
}
