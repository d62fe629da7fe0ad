//! netpool's own accept over embassy-net (feature `embassy-net`): a fixed set of
//! embassy-net [`TcpSocket`]s kept armed by the accepts in flight, with the
//! [handshake lease](crate::Config::handshake_deadline).
//!
//! edge-nal-embassy's acceptor arms one fresh socket per `accept` and cannot see its
//! TCP state: a SYN whose handshake never completes (a phone that left the WiFi
//! mid-handshake, a spoofed address that answers nothing) takes that accept into
//! SYN-RECEIVED until the caller gives up on it, and once every armed accept is taken
//! that way every real client is refused (RST). [`LeasedTcp`] sees the state of every
//! socket it armed and keeps the lease, the rule the smoltcp backend keeps
//! ([`crate::stack::handshake`], one rule in one place):
//!
//! 1. half-open sockets are kept apart from the room: the accepts in flight keep as
//!    many sockets listening (or holding a connection) as there are accepts, armed
//!    from free sockets while a handshake is under way;
//! 2. a half-open socket holds its place for at most the deadline, then it is reset
//!    and a socket listens again in its place, counted in
//!    [`LeaseCounters::half_open_expired`];
//! 3. when no free socket is left to cover the room, the half-open socket first seen
//!    longest ago and past its round trip is reset and a socket listens again in its
//!    place in the same look, counted in [`LeaseCounters::half_open_evicted`]; one in
//!    flight (younger than [`ROUND_TRIP`](crate::stack::handshake::ROUND_TRIP)) never
//!    is.
//!
//! "In its place": the reset socket forgets its peer (no RST is left to send: the
//! peer answered nothing) and the free socket idle longest is armed — often another
//! one. smoltcp keeps each socket silent for 1 s after it failed to resolve a peer
//! (one that answers no ARP), even towards its next peer; re-arming such a socket at
//! once would give the next real client's SYN-ACK that delay. On the furnace's TAP
//! host this took the clients served under 20 half-open SYNs a second from 50 % to
//! 95 %.
//!
//! # How it maps onto accepts
//!
//! The armed sockets belong to the acceptor, not to the accepts: each `accept` in
//! flight is one place of the listener's **room** (what the callers can serve now:
//! with a [`Backlog`](super::Backlog) of `K`, the workers not holding a parked
//! connection), and an accept takes whichever armed socket has a connection ready.
//! So the sockets half-open handshakes hold need no worker of their own, an accept that is
//! dropped (the backlog re-arms every [`REARM`](super::REARM), a caller's deadline
//! passes) leaves its socket armed and its handshake under way (nothing is reset
//! because a future was dropped), and a connection that arrives on any armed socket
//! goes to the first accept that looks. When the room shrinks, idle listening
//! sockets stop (abort: no peer); a handshake under way keeps its socket.
//!
//! Every accept in flight refreshes the table when it is polled. One of them, the
//! *watcher*, has its waker on every armed socket (smoltcp keeps one send waker per
//! socket and wakes it on every state change) and sleeps until the next lease
//! deadline on the caller's [`Timer`]; the others wait for the acceptor to wake them
//! (a connection left for them, the watcher gone, a socket returned). So a SYN, a
//! completed handshake and a deadline each wake one task; nothing polls.
//!
//! # Sockets without `unsafe`
//!
//! The `M` sockets are created once, from the caller's [`TcpBuffers`], and each is
//! kept in a `RefCell`. An accepted connection is a [`LeasedSocket`]: a guard holding
//! the socket's `RefMut`, so the socket is the connection's until the guard drops
//! (then it is aborted if still open and returns to the acceptor). Size `M` for
//! everything that holds a socket at once: the accepts in flight and at least one
//! for a half-open handshake (`K + 1` with a backlog of `K`), the connections being
//! served, the connections parked in a backlog and the closing ones in a
//! [`Closer`](super::Closer). With too few, an accept waits for a socket to return
//! (nothing is refused for it). The embassy-net `StackResources` must have
//! room for the `M` sockets (embassy-net panics when its socket set is full).
//!
//! `LeasedTcp` is not `Sync` (embassy-net's sockets are not): it lives on the
//! executor that runs the stack, e.g. in a `StaticCell`, as edge-nal-embassy's
//! sockets do. Its counters are read with [`LeasedTcp::counters`] on that executor.
//!
//! ```no_run
//! use netpool::asynch::embassy::{LeasedTcp, TcpBuffers};
//! use netpool::asynch::{Timer, Backlog, AsyncPool};
//! use netpool::{Config, Duration, Instant, ListenParams};
//!
//! # #[derive(Clone, Copy)] struct Clock;
//! # impl Timer for Clock {
//! #     fn now(&self) -> Instant { Instant::from_millis(0) }
//! #     async fn at(&self, _: Instant) {}
//! # }
//! static POOL: AsyncPool<4> = AsyncPool::new(Config::new());
//!
//! async fn serve(stack: embassy_net::Stack<'static>, buffers: &'static mut TcpBuffers<13, 1024, 1024>) {
//!     // 4 connections served, a backlog of 4 accepts (+ 1 for handshakes), 4 closing.
//!     let tcp: LeasedTcp<'_, Clock, 13> = LeasedTcp::new(stack, 80, buffers, Clock, Config::new().handshake_deadline);
//!     let backlog: Backlog<_, 4> = Backlog::new(80, Duration::from_secs(3));
//!     let _ = POOL.listen(80, ListenParams::new(4));
//!     backlog.run(&POOL, &tcp, &Clock).await
//! }
//! ```

use core::cell::{RefCell, RefMut};
use core::future::{poll_fn, Future};
use core::net::SocketAddr;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use edge_nal::{Close, Readable, TcpShutdown, TcpSplit};
use embassy_net::tcp::{State, TcpReader, TcpSocket, TcpWriter};
use embassy_net::Stack;
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

use super::{select, Either, Timer, ACCEPT_RETRY};
use crate::sansio::handshake::{self, Handshake};
use crate::time::{Duration, Instant};

/// The TCP buffers of a [`LeasedTcp`]'s `M` sockets: `TX` bytes to send and `RX` to
/// receive each. Give it `'static` storage (a `StaticCell`, a `static mut` through
/// `static_cell`, or the main task's frame).
pub struct TcpBuffers<const M: usize, const TX: usize, const RX: usize> {
    rx: [[u8; RX]; M],
    tx: [[u8; TX]; M],
}

impl<const M: usize, const TX: usize, const RX: usize> TcpBuffers<M, TX, RX> {
    /// Zeroed buffers. `const`, for a `StaticCell` or a `static`.
    pub const fn new() -> Self {
        TcpBuffers {
            rx: [[0; RX]; M],
            tx: [[0; TX]; M],
        }
    }
}

impl<const M: usize, const TX: usize, const RX: usize> Default for TcpBuffers<M, TX, RX> {
    fn default() -> Self {
        Self::new()
    }
}

/// What a [`LeasedTcp`] did. They only grow (wrapping at `u32::MAX`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct LeaseCounters {
    /// Connections handed to an accept.
    pub accepted: u32,
    /// Half-open connections reset at the handshake deadline, their socket listening
    /// again (as [`PcbCounters::half_open_expired`](crate::PcbCounters)).
    pub half_open_expired: u32,
    /// Half-open connections reset before the deadline because nothing else listened:
    /// the oldest gave way (as [`PcbCounters::half_open_evicted`](crate::PcbCounters)).
    pub half_open_evicted: u32,
    /// Sockets the acceptor would have armed but had none free (every socket held by
    /// a connection or closing): counted once per socket missing, each time the
    /// acceptor looks.
    pub short_of_sockets: u32,
}

impl LeaseCounters {
    /// All zero.
    pub const ZERO: LeaseCounters = LeaseCounters {
        accepted: 0,
        half_open_expired: 0,
        half_open_evicted: 0,
        short_of_sockets: 0,
    };

    /// Half-open connections reset, at the deadline or to keep a socket listening.
    pub const fn half_open_reclaimed(&self) -> u32 {
        self.half_open_expired.wrapping_add(self.half_open_evicted)
    }
}

impl core::fmt::Display for LeaseCounters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "accepted {}, half_open expired {} evicted {}, short_of_sockets {}",
            self.accepted, self.half_open_expired, self.half_open_evicted, self.short_of_sockets
        )
    }
}

/// An error of a [`LeasedTcp`] or its sockets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LeaseError {
    /// The connection was reset (by the peer, or the stack gave up on it):
    /// [`ErrorKind::ConnectionReset`].
    ConnectionReset,
    /// The acceptor's port is 0: [`ErrorKind::InvalidInput`].
    InvalidPort,
}

impl core::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LeaseError::ConnectionReset => "connection reset",
            LeaseError::InvalidPort => "cannot listen on port 0",
        })
    }
}

impl core::error::Error for LeaseError {}

impl embedded_io_async::Error for LeaseError {
    fn kind(&self) -> ErrorKind {
        match self {
            LeaseError::ConnectionReset => ErrorKind::ConnectionReset,
            LeaseError::InvalidPort => ErrorKind::InvalidInput,
        }
    }
}

impl From<embassy_net::tcp::Error> for LeaseError {
    fn from(e: embassy_net::tcp::Error) -> Self {
        match e {
            embassy_net::tcp::Error::ConnectionReset => LeaseError::ConnectionReset,
        }
    }
}

/// What one socket of the acceptor is doing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Role {
    /// Not armed, not lent: free to arm.
    Idle,
    /// Armed by the acceptor: listening, half-open since the time it was first seen
    /// so (with the order it was seen in: SYNs within one clock tick are still
    /// ordered), or holding a connection no accept took yet.
    Armed { half_open_since: Option<(Instant, u32)> },
    /// Lent to a connection ([`LeasedSocket`]).
    Lent,
}

/// The acceptor's bookkeeping (one executor: a `RefCell`, never borrowed across an
/// await or a wake).
struct Table<const M: usize> {
    roles: [Role; M],
    /// The accepts in flight, each in a place with its waker (at most `M`).
    takers: [Option<Waker>; M],
    /// The place whose waker is on every armed socket and who keeps the deadlines.
    watcher: Option<usize>,
    /// The order half-open sockets were first seen in (wrapping).
    seen: u32,
    /// When each socket was last freed, in the order of frees (wrapping): the acceptor
    /// arms the socket idle longest first.
    freed: [u32; M],
    frees: u32,
    counters: LeaseCounters,
}

impl<const M: usize> Table<M> {
    /// Socket `i` is free (idle) from now on.
    fn free(&mut self, i: usize) {
        self.roles[i] = Role::Idle;
        self.freed[i] = self.frees;
        self.frees = self.frees.wrapping_add(1);
    }

    fn room(&self) -> usize {
        self.takers.iter().filter(|w| w.is_some()).count()
    }

    /// The waker of one accept in flight other than `not`, preferring the watcher.
    fn someone_but(&mut self, not: Option<usize>) -> Option<Waker> {
        let pick = self
            .watcher
            .filter(|&w| Some(w) != not)
            .or_else(|| (0..M).find(|&i| Some(i) != not && self.takers[i].is_some()))?;
        self.takers[pick].clone()
    }
}

/// What a look at the table found for an accept.
enum Step {
    /// Socket `i` holds a connection from this peer: lent to the accept.
    Got(usize, SocketAddr),
    /// Nothing yet. The watcher wakes at the next lease deadline (if any half-open
    /// socket has one); the others wait to be woken.
    Wait(Option<Instant>),
}

/// An accept over a fixed set of embassy-net sockets on one port, with the handshake
/// lease: see the [module docs](self).
///
/// `T` is the clock the lease deadlines are measured by; `M` sockets.
pub struct LeasedTcp<'d, T, const M: usize> {
    sockets: [RefCell<TcpSocket<'d>>; M],
    table: RefCell<Table<M>>,
    port: u16,
    deadline: Duration,
    timer: T,
}

impl<'d, T: Timer, const M: usize> LeasedTcp<'d, T, M> {
    /// `M` sockets on `stack` over `buffers`, accepting on `port` (every address of the
    /// stack); a half-open connection holds a socket at most `handshake_deadline`
    /// (pass the pool's [`Config::handshake_deadline`](crate::Config::handshake_deadline)),
    /// measured by `timer`. Nothing listens until the first accept.
    ///
    /// Panics if embassy-net's socket set has no room for `M` more sockets (size its
    /// `StackResources` for them).
    pub fn new<const TX: usize, const RX: usize>(
        stack: Stack<'d>,
        port: u16,
        buffers: &'d mut TcpBuffers<M, TX, RX>,
        timer: T,
        handshake_deadline: Duration,
    ) -> Self {
        let mut pairs = buffers.rx.iter_mut().zip(buffers.tx.iter_mut());
        let sockets = core::array::from_fn(|_| match pairs.next() {
            Some((rx, tx)) => RefCell::new(TcpSocket::new(stack, rx, tx)),
            // `M` buffers of each kind: one pair per socket.
            None => unreachable!(),
        });
        LeasedTcp {
            sockets,
            table: RefCell::new(Table {
                roles: [Role::Idle; M],
                takers: [const { None }; M],
                watcher: None,
                seen: 0,
                // Never-used sockets count as freed before any real free (at 0; the
                // first real free is numbered 1): they are idle longest.
                freed: [0; M],
                frees: 1,
                counters: LeaseCounters::ZERO,
            }),
            port,
            deadline: handshake_deadline,
            timer,
        }
    }

    /// The port it accepts on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How long a half-open connection may hold a socket.
    pub fn handshake_deadline(&self) -> Duration {
        self.deadline
    }

    /// What it did so far.
    pub fn counters(&self) -> LeaseCounters {
        self.table.borrow().counters
    }

    /// Sockets armed now: `(listening, half-open, holding a connection not yet
    /// accepted)`, as of the last look (states are read live).
    pub fn armed(&self) -> (usize, usize, usize) {
        let t = self.table.borrow();
        let mut c = (0, 0, 0);
        for i in 0..M {
            if t.roles[i] == Role::Idle || t.roles[i] == Role::Lent {
                continue;
            }
            let Ok(s) = self.sockets[i].try_borrow() else {
                continue;
            };
            match s.state() {
                State::Listen => c.0 += 1,
                State::SynReceived | State::SynSent => c.1 += 1,
                State::Closed | State::TimeWait => {}
                _ => c.2 += 1,
            }
        }
        c
    }

    /// Sockets lent to connections now.
    pub fn lent(&self) -> usize {
        self.table
            .borrow()
            .roles
            .iter()
            .filter(|r| **r == Role::Lent)
            .count()
    }

    /// Accept one connection: see [`edge_nal::TcpAccept::accept`].
    async fn accept_leased(&self) -> Result<(SocketAddr, LeasedSocket<'_, 'd, M>), LeaseError> {
        if self.port == 0 {
            return Err(LeaseError::InvalidPort);
        }
        let mut place = Place {
            table: &self.table,
            at: None,
        };
        loop {
            if place.at.is_none() && !place.join() {
                // More accepts in flight than sockets: this one cannot be armed; look
                // again shortly.
                self.timer.at(self.timer.now() + ACCEPT_RETRY).await;
                continue;
            }
            let first = poll_fn(|cx| Poll::Ready(self.step(&place, cx))).await;
            let next = match first {
                Step::Got(i, remote) => return Ok((remote, self.lend(i))),
                Step::Wait(next) => next,
            };
            // Until a socket's state changes (the watcher), the acceptor wakes this
            // accept (the others), or the next lease deadline (the watcher): then look
            // again; when the deadline to wait for changed, start over with it.
            let woken = poll_fn(|cx| match self.step(&place, cx) {
                Step::Got(i, remote) => Poll::Ready(Some((i, remote))),
                Step::Wait(n) if n != next => Poll::Ready(None),
                Step::Wait(_) => Poll::Pending,
            });
            let got = match next {
                None => woken.await,
                Some(at) => match select(woken, self.timer.at(at)).await {
                    Either::First(got) => got,
                    Either::Second(()) => None,
                },
            };
            if let Some((i, remote)) = got {
                return Ok((remote, self.lend(i)));
            }
        }
    }

    /// Socket `i`, marked lent by [`step`](Self::step), as a connection.
    fn lend(&self, i: usize) -> LeasedSocket<'_, 'd, M> {
        LeasedSocket {
            socket: self.sockets[i].borrow_mut(),
            table: &self.table,
            index: i,
        }
    }

    /// Look at every armed socket at the clock's now, keep the lease, arm what the
    /// room wants, and take a connection if one is ready. Registers `cx`'s waker as
    /// the accept in `place`'s, and the watcher's on every armed socket.
    fn step(&self, place: &Place<'_, M>, cx: &mut Context<'_>) -> Step {
        let now = self.timer.now();
        let Some(me) = place.at else {
            return Step::Wait(Some(now + ACCEPT_RETRY));
        };
        let mut t = self.table.borrow_mut();
        if !t.takers[me].as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            t.takers[me] = Some(cx.waker().clone());
        }
        let watcher = *t.watcher.get_or_insert(me);
        let room = t.room();
        let mut listening = 0usize;
        let (mut ready, mut ready_count) = (None, 0usize);
        for i in 0..M {
            let Role::Armed { half_open_since } = t.roles[i] else {
                continue;
            };
            let Ok(mut s) = self.sockets[i].try_borrow_mut() else {
                continue;
            };
            match s.state() {
                // The connection died before an accept took it: the socket is free
                // and armed again below.
                State::Closed | State::TimeWait => {
                    t.free(i);
                }
                State::Listen => {
                    t.roles[i] = Role::Armed {
                        half_open_since: None,
                    };
                    listening += 1;
                }
                State::SynReceived | State::SynSent => {
                    let (since, seq) = half_open_since.unwrap_or_else(|| {
                        let seq = t.seen;
                        t.seen = seq.wrapping_add(1);
                        (now, seq)
                    });
                    if handshake::lease(since, now, self.deadline) == Handshake::Expired {
                        // Reset; a socket listens again in its place below (the one
                        // idle longest: see `free_socket`).
                        forget(&mut s, self.port);
                        t.free(i);
                        let c = &mut t.counters.half_open_expired;
                        *c = c.wrapping_add(1);
                    } else {
                        t.roles[i] = Role::Armed {
                            half_open_since: Some((since, seq)),
                        };
                    }
                }
                // A connection waiting for an accept.
                _ => {
                    ready.get_or_insert(i);
                    ready_count += 1;
                }
            }
        }
        // More than the accepts in flight want: idle listening sockets stop (a
        // handshake under way keeps its socket and is accepted later). Half-open
        // sockets are kept apart from the room.
        let mut stop = handshake::beyond_room(room, listening, ready_count);
        for i in 0..M {
            if stop == 0 {
                break;
            }
            if matches!(t.roles[i], Role::Armed { .. }) {
                let Ok(mut s) = self.sockets[i].try_borrow_mut() else {
                    continue;
                };
                if s.state() == State::Listen {
                    s.abort();
                    t.free(i);
                    listening -= 1;
                    stop -= 1;
                }
            }
        }
        while handshake::short_of_room(room, listening, ready_count) > 0 {
            if self.arm_one(&mut t, cx) {
                listening += 1;
                continue;
            }
            // No socket left: the overdue half-open socket first seen longest ago
            // gives way (one in flight never does), and a socket listens in its place.
            let Some(i) = self.oldest_overdue(&t, now) else {
                let c = &mut t.counters.short_of_sockets;
                *c = c.wrapping_add(handshake::short_of_room(room, listening, ready_count) as u32);
                break;
            };
            let Ok(mut s) = self.sockets[i].try_borrow_mut() else {
                break;
            };
            forget(&mut s, self.port);
            drop(s);
            t.free(i);
            let c = &mut t.counters.half_open_evicted;
            *c = c.wrapping_add(1);
        }
        if let Some(i) = ready {
            if let Some(remote) = self.sockets[i]
                .try_borrow()
                .ok()
                .and_then(|s| s.remote_endpoint())
            {
                t.roles[i] = Role::Lent;
                let c = &mut t.counters.accepted;
                *c = c.wrapping_add(1);
                // More connections ready than this accept takes: another accept in
                // flight takes the next.
                let other = if ready_count > 1 {
                    t.someone_but(Some(me))
                } else {
                    None
                };
                drop(t);
                if let Some(w) = other {
                    w.wake();
                }
                return Step::Got(i, SocketAddr::from(remote));
            }
        }
        // The watcher's waker on every armed socket: smoltcp wakes it on every state
        // change (a SYN, a completed handshake, a reset).
        let watcher_waker = t.takers[watcher].clone();
        drop(t);
        if let Some(w) = watcher_waker {
            let mut wcx = Context::from_waker(&w);
            let t = self.table.borrow();
            for i in 0..M {
                if !matches!(t.roles[i], Role::Armed { .. }) {
                    continue;
                }
                if let Ok(s) = self.sockets[i].try_borrow() {
                    // Pending while not established (always, for an armed socket
                    // that is not ready); the waker stays registered.
                    let _ = pin!(s.wait_write_ready()).poll(&mut wcx);
                }
            }
        }
        if watcher != me {
            return Step::Wait(None);
        }
        // The watcher keeps the deadlines: the earliest a half-open socket expires.
        let t = self.table.borrow();
        Step::Wait(
            t.roles
                .iter()
                .filter_map(|r| match r {
                    Role::Armed {
                        half_open_since: Some((since, _)),
                    } => Some(*since + self.deadline),
                    _ => None,
                })
                .min(),
        )
    }

    /// The overdue half-open socket first seen longest ago (one in flight is never
    /// taken: [`handshake::lease`]).
    fn oldest_overdue(&self, t: &Table<M>, now: Instant) -> Option<usize> {
        let mut oldest: Option<(u32, usize)> = None;
        for i in 0..M {
            let Role::Armed {
                half_open_since: Some((since, seq)),
            } = t.roles[i]
            else {
                continue;
            };
            let overdue = handshake::lease(since, now, self.deadline) == Handshake::Overdue
                && self.sockets[i]
                    .try_borrow()
                    .is_ok_and(|s| matches!(s.state(), State::SynReceived | State::SynSent));
            let age = t.seen.wrapping_sub(seq);
            if overdue && oldest.is_none_or(|(a, _)| age > a) {
                oldest = Some((age, i));
            }
        }
        oldest.map(|(_, i)| i)
    }

    /// Put a free socket in LISTEN (with `cx`'s waker). `false`: none is free.
    fn arm_one(&self, t: &mut Table<M>, cx: &mut Context<'_>) -> bool {
        let Some(i) = self.free_socket(t) else {
            return false;
        };
        let Ok(mut s) = self.sockets[i].try_borrow_mut() else {
            return false;
        };
        if listen(&mut s, self.port, cx).is_err() {
            return false;
        }
        t.roles[i] = Role::Armed {
            half_open_since: None,
        };
        true
    }

    /// A free socket to arm: idle and not borrowed; one with no RST still to send
    /// first (re-arming forgets it), and of those the one idle longest.
    ///
    /// smoltcp keeps, per socket, the neighbor it last failed to resolve — a half-open
    /// peer that answers no ARP — and sends nothing at all from that socket for 1 s
    /// after each failed attempt (`DISCOVERY_SILENT_TIME`, kept across `listen`), not
    /// even to its next peer: a real client's SYN taken by such a socket gets its
    /// SYN-ACK up to 1 s late, and under a flood its handshake may be evicted first.
    /// A socket that held such a handshake stops trying when it is reset
    /// ([`forget`]); armed last, it has had the longest to fall silent.
    fn free_socket(&self, t: &Table<M>) -> Option<usize> {
        let mut best: Option<((bool, u32), usize)> = None;
        for i in 0..M {
            if t.roles[i] != Role::Idle {
                continue;
            }
            let Ok(s) = self.sockets[i].try_borrow() else {
                continue;
            };
            let rst_pending = s.state() == State::Closed && s.remote_endpoint().is_some();
            // Lower is better: no RST pending, then idle longest.
            let rank = (rst_pending, u32::MAX - t.frees.wrapping_sub(t.freed[i]));
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, i));
            }
        }
        best.map(|(_, i)| i)
    }
}

/// Reset a half-open socket and forget its peer: the RST it would owe is not sent
/// (the peer answered nothing; smoltcp would keep trying to resolve it, and stay
/// silent meanwhile), and it is left closed.
fn forget(s: &mut TcpSocket<'_>, port: u16) {
    s.abort();
    // Listening again clears the connection; then stop.
    let _ = listen(s, port, &mut Context::from_waker(Waker::noop()));
    s.abort();
}

/// Put `s` in LISTEN on `port` (embassy-net's `accept` does so on its first poll,
/// and registers the waker in `cx`).
fn listen(s: &mut TcpSocket<'_>, port: u16, cx: &mut Context<'_>) -> Result<(), ()> {
    match pin!(s.accept(port)).poll(cx) {
        Poll::Ready(Err(_)) => Err(()),
        _ => Ok(()),
    }
}

/// An accept's place among the accepts in flight; left when the accept ends or is
/// dropped, and then another accept is woken to watch the sockets.
struct Place<'a, const M: usize> {
    table: &'a RefCell<Table<M>>,
    at: Option<usize>,
}

impl<const M: usize> Place<'_, M> {
    /// Take a free place. `false`: none (more accepts in flight than sockets).
    fn join(&mut self) -> bool {
        let mut t = self.table.borrow_mut();
        self.at = t.takers.iter().position(Option::is_none);
        if let Some(i) = self.at {
            // A placeholder until the first look registers the accept's own waker.
            t.takers[i] = Some(Waker::noop().clone());
        }
        self.at.is_some()
    }
}

impl<const M: usize> Drop for Place<'_, M> {
    fn drop(&mut self) {
        let Some(i) = self.at.take() else {
            return;
        };
        let next = {
            let mut t = self.table.borrow_mut();
            t.takers[i] = None;
            if t.watcher == Some(i) {
                t.watcher = None;
                t.someone_but(None)
            } else {
                None
            }
        };
        if let Some(w) = next {
            w.wake();
        }
    }
}

impl<'d, T: Timer, const M: usize> edge_nal::TcpAccept for LeasedTcp<'d, T, M> {
    type Error = LeaseError;
    type Socket<'a>
        = LeasedSocket<'a, 'd, M>
    where
        Self: 'a;

    /// The next connection on any of the acceptor's armed sockets, keeping the
    /// handshake lease meanwhile. Waits (does not fail) while every socket is lent.
    /// Cancel-safe: a dropped accept leaves its sockets armed.
    async fn accept(&self) -> Result<(SocketAddr, Self::Socket<'_>), Self::Error> {
        self.accept_leased().await
    }
}

/// A connection accepted by a [`LeasedTcp`]: its socket, lent until this drops (then
/// aborted if still open, and returned to the acceptor).
pub struct LeasedSocket<'a, 'd, const M: usize> {
    socket: RefMut<'a, TcpSocket<'d>>,
    table: &'a RefCell<Table<M>>,
    index: usize,
}

impl<'d, const M: usize> LeasedSocket<'_, 'd, M> {
    /// The embassy-net socket, for what netpool does not wrap (keep-alive, timeouts,
    /// state). Leave it connected: the acceptor re-arms it when this guard drops.
    pub fn socket(&mut self) -> &mut TcpSocket<'d> {
        &mut self.socket
    }

    /// The peer's address, while connected.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.socket.remote_endpoint().map(SocketAddr::from)
    }
}

impl<const M: usize> Drop for LeasedSocket<'_, '_, M> {
    fn drop(&mut self) {
        if !matches!(self.socket.state(), State::Closed | State::TimeWait) {
            self.socket.abort();
        }
        let wake = {
            let mut t = self.table.borrow_mut();
            t.free(self.index);
            // An accept short of a socket may arm this one.
            t.someone_but(None)
        };
        if let Some(w) = wake {
            w.wake();
        }
    }
}

impl<const M: usize> core::fmt::Debug for LeasedSocket<'_, '_, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LeasedSocket")
            .field("index", &self.index)
            .field("state", &self.socket.state())
            .finish()
    }
}

impl<const M: usize> ErrorType for LeasedSocket<'_, '_, M> {
    type Error = LeaseError;
}

impl<const M: usize> Read for LeasedSocket<'_, '_, M> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, LeaseError> {
        Ok(self.socket.read(buf).await?)
    }
}

impl<const M: usize> Write for LeasedSocket<'_, '_, M> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, LeaseError> {
        Ok(self.socket.write(buf).await?)
    }

    async fn flush(&mut self) -> Result<(), LeaseError> {
        Ok(self.socket.flush().await?)
    }
}

impl<const M: usize> Readable for LeasedSocket<'_, '_, M> {
    /// Data to read, or the peer closed (a read then returns 0).
    async fn readable(&mut self) -> Result<(), LeaseError> {
        let s = &*self.socket;
        poll_fn(|cx| {
            if !s.may_recv() {
                return Poll::Ready(());
            }
            pin!(s.wait_read_ready()).poll(cx)
        })
        .await;
        Ok(())
    }
}

impl<const M: usize> TcpShutdown for LeasedSocket<'_, '_, M> {
    /// `Write` or `Both`: send FIN after what is queued and wait until it is all
    /// acknowledged; `Read` or `Both`: discard what arrives until the peer's FIN.
    async fn close(&mut self, what: Close) -> Result<(), LeaseError> {
        if matches!(what, Close::Both | Close::Write) {
            self.socket.close();
        }
        let (mut rx, mut tx) = self.socket.split();
        match what {
            Close::Read => discard(&mut rx).await,
            Close::Write => Ok(tx.flush().await?),
            Close::Both => {
                let (flushed, read) = embassy_futures::join::join(tx.flush(), discard(&mut rx)).await;
                flushed?;
                read
            }
        }
    }

    /// RST now, and wait until it is sent.
    async fn abort(&mut self) -> Result<(), LeaseError> {
        self.socket.abort();
        Ok(self.socket.flush().await?)
    }
}

/// Read and drop until the peer's FIN.
async fn discard(rx: &mut TcpReader<'_>) -> Result<(), LeaseError> {
    let mut buf = [0u8; 32];
    while rx.read(&mut buf).await? > 0 {}
    Ok(())
}

/// The reading half of a [`LeasedSocket`] ([`TcpSplit`]).
pub struct LeasedReader<'s>(TcpReader<'s>);

/// The writing half of a [`LeasedSocket`] ([`TcpSplit`]).
pub struct LeasedWriter<'s>(TcpWriter<'s>);

impl ErrorType for LeasedReader<'_> {
    type Error = LeaseError;
}

impl Read for LeasedReader<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, LeaseError> {
        Ok(self.0.read(buf).await?)
    }
}

impl Readable for LeasedReader<'_> {
    /// Data to read. (embassy-net's reader half cannot see the peer's FIN here: a read
    /// returns 0 then.)
    async fn readable(&mut self) -> Result<(), LeaseError> {
        self.0.wait_read_ready().await;
        Ok(())
    }
}

impl ErrorType for LeasedWriter<'_> {
    type Error = LeaseError;
}

impl Write for LeasedWriter<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, LeaseError> {
        Ok(self.0.write(buf).await?)
    }

    async fn flush(&mut self) -> Result<(), LeaseError> {
        Ok(self.0.flush().await?)
    }
}

impl<const M: usize> TcpSplit for LeasedSocket<'_, '_, M> {
    type Read<'s>
        = LeasedReader<'s>
    where
        Self: 's;
    type Write<'s>
        = LeasedWriter<'s>
    where
        Self: 's;

    fn split(&mut self) -> (LeasedReader<'_>, LeasedWriter<'_>) {
        let (r, w) = self.socket.split();
        (LeasedReader(r), LeasedWriter(w))
    }
}
