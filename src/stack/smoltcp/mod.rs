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

use super::{LinkState, PcbCounters};
#[cfg(doc)]
use {
    super::{LinkStatus, PcbDiagnostics, TcpAbort, TcpBacklog, TcpPeerStatus, TcpSendFlags, TcpSendQueue},
    crate::error::ErrorClass,
    embedded_nal::{TcpClientStack, TcpFullStack},
};

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

mod error;
mod listener;
mod nal;
mod ports;
mod reclaim;
mod socket;
#[cfg(test)]
mod tests;

pub use error::SmolError;
use error::{dead, gone};
use ports::{EPHEMERAL_COUNT, EPHEMERAL_FIRST};
pub use reclaim::Reclaim;
use socket::Kind;
pub use socket::{SmolSocket, SocketCounts};

// ---------------------------------------------------------------------------------
// Bookkeeping: what each adopted socket is doing, and each listener
// ---------------------------------------------------------------------------------

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
