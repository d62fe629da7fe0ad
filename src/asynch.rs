//! The async driver (feature `async`): the same slots, admission, write accounting,
//! error classification and reaping as [`Pool`](crate::Pool), for tasks that await.
//!
//! Inbound connections come from an edge-nal [`TcpAccept`]; outbound ones from an
//! embedded-nal-async [`TcpConnect`]. The sockets belong to the tasks that hold them;
//! the [`AsyncPool`] keeps only the bookkeeping — which slots are in use, each one's
//! state, counters, progress — behind a `critical_section::Mutex`, touched for O(1)
//! or O(N) bookkeeping and never across an await. It can live in a `static` and be
//! shared by every task.
//!
//! - A connection is a [`Conn`] guard. Dropping it frees its slot (the socket is
//!   dropped too: the stack closes or aborts it, as its own `Drop` does). For a clean
//!   end call [`Conn::close`]: FIN within a deadline, else RST.
//! - Every await that talks to the network takes a deadline, measured by the
//!   caller's [`Timer`].
//! - A task waiting in [`Conn::read`] wakes with an error as soon as the connection is
//!   known dead: the peer closed it, the reaper ([`AsyncPool::reap`]) gave up on it,
//!   or a write (in another task, through [`Conn::split`]) found it gone. It never
//!   waits for a TCP keepalive.
//! - Admission is the sync pool's: a per-port cap and a free slot, or the connection
//!   is accepted and released at once (abort), and counted.
//! - Errors are classified by `embedded_io::ErrorKind` into the same [`ErrorClass`]
//!   and [`Disposition`](crate::Disposition).
//!
//! There is no MORE flag in embedded-io-async: `push` means "flush now".

use core::cell::RefCell;
use core::future::{poll_fn, Future};
use core::net::SocketAddr;
use core::pin::pin;
use core::task::{Poll, Waker};

use critical_section::Mutex;
use edge_nal::{TcpAccept, TcpShutdown, TcpSplit};
use embedded_io_async::{Read, Write};
use embedded_nal_async::TcpConnect;

use crate::config::Config;
use crate::error::{Classify, ConnError, ConnectError, ErrorClass};
use crate::handle::{CloseReason, ConnHandle};
use crate::link::LinkState;
use crate::listener::{admit, ListenParams, Rejection};
use crate::reaper::SendProgress;
use crate::report::{Counters, Report, SlotReport};
use crate::state::ConnState;
use crate::time::{Duration, Instant};

/// The caller's clock: what the async driver measures deadlines with (embassy-time,
/// a hardware timer, `async-io` on the host...).
#[allow(async_fn_in_trait)]
pub trait Timer {
    /// The time now.
    fn now(&self) -> Instant;
    /// Complete at `deadline` (at once if it has passed).
    async fn at(&self, deadline: Instant);
}

/// The deadline passed before the operation completed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimedOut;

/// Run `fut` until `deadline`.
pub async fn with_deadline<F: Future, T: Timer>(
    timer: &T,
    deadline: Instant,
    fut: F,
) -> Result<F::Output, TimedOut> {
    match select(fut, timer.at(deadline)).await {
        Either::First(out) => Ok(out),
        Either::Second(()) => Err(TimedOut),
    }
}

enum Either<A, B> {
    First(A),
    Second(B),
}

/// The first of two futures to complete (the other is dropped). Polls `a` first.
async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::First(x));
        }
        if let Poll::Ready(x) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Second(x));
        }
        Poll::Pending
    })
    .await
}

/// An error of an embedded-io(-async) socket, classified by its kind.
fn class_of<E: embedded_io_async::Error>(e: &E) -> ErrorClass {
    e.kind().class()
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    state: ConnState,
    port: u16,
    remote: Option<SocketAddr>,
    protocol: u8,
    opened_at: Instant,
    state_since: Instant,
    last_activity: Instant,
    bytes_in: u64,
    bytes_out: u64,
    progress: SendProgress,
    close_reason: Option<CloseReason>,
    /// Tasks waiting on this connection (a reader and a writer), woken when it dies.
    wakers: [Option<Waker>; 2],
}

impl Slot {
    const fn new() -> Self {
        Slot {
            generation: 0,
            state: ConnState::Free,
            port: 0,
            remote: None,
            protocol: 0,
            opened_at: Instant::ZERO,
            state_since: Instant::ZERO,
            last_activity: Instant::ZERO,
            bytes_in: 0,
            bytes_out: 0,
            progress: SendProgress::new(Instant::ZERO),
            close_reason: None,
            wakers: [None, None],
        }
    }

    fn live(&self, generation: u32) -> bool {
        self.generation == generation && matches!(self.state, ConnState::Connected | ConnState::Allocated)
    }

    /// Mark the connection dead with `state` and `reason`, and wake its waiters.
    fn kill(&mut self, state: ConnState, reason: CloseReason, now: Instant) {
        if self.close_reason.is_none() || matches!(reason, CloseReason::Stalled | CloseReason::Idle) {
            self.close_reason = Some(reason);
        }
        if self.state != state {
            self.state = state;
            self.state_since = now;
        }
        for w in self.wakers.iter_mut() {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }

    fn report(&self, index: usize, now: Instant) -> SlotReport {
        SlotReport {
            slot: index as u8,
            generation: self.generation,
            state: self.state,
            local_port: self.port,
            remote: self.remote,
            protocol: self.protocol,
            age: if self.state.is_in_use() {
                now.saturating_since(self.opened_at)
            } else {
                Duration::ZERO
            },
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            idle: now.saturating_since(self.last_activity),
            buffered: 0,
            close_reason: self.close_reason,
        }
    }
}

struct Table<const N: usize> {
    slots: [Slot; N],
    counters: Counters,
}

impl<const N: usize> Table<N> {
    fn occupy(
        &mut self,
        state: ConnState,
        port: u16,
        remote: Option<SocketAddr>,
        protocol: u8,
        now: Instant,
    ) -> Option<(usize, u32)> {
        let i = self.slots.iter().position(|s| s.state == ConnState::Free)?;
        let s = &mut self.slots[i];
        s.generation = s.generation.wrapping_add(1);
        s.state = state;
        s.port = port;
        s.remote = remote;
        s.protocol = protocol;
        s.opened_at = now;
        s.state_since = now;
        s.last_activity = now;
        s.bytes_in = 0;
        s.bytes_out = 0;
        s.progress = SendProgress::new(now);
        s.close_reason = None;
        s.wakers = [None, None];
        let in_use = self.slots.iter().filter(|s| s.state.is_in_use()).count() as u32;
        self.counters.high_water = self.counters.high_water.max(in_use);
        Some((i, self.slots[i].generation))
    }
}

/// Slot bookkeeping shared by every task: see the [module docs](self).
pub struct AsyncPool<const N: usize> {
    config: Config,
    table: Mutex<RefCell<Table<N>>>,
}

/// Why [`AsyncPool::accept`] returned without a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AcceptError {
    /// The acceptor failed (class of its error).
    Stack(ErrorClass),
    /// The deadline passed.
    TimedOut,
}

impl<const N: usize> AsyncPool<N> {
    /// Every slot free. `const`, so the pool can be a `static`.
    pub const fn new(config: Config) -> Self {
        AsyncPool {
            config,
            table: Mutex::new(RefCell::new(Table {
                slots: [const { Slot::new() }; N],
                counters: Counters::ZERO,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Table<N>) -> R) -> R {
        critical_section::with(|cs| f(&mut self.table.borrow_ref_mut(cs)))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Accept the next connection on `acceptor` (listening on `port`) that `params`
    /// admit, until `deadline`. Connections beyond the port's cap or the pool are
    /// accepted and aborted at once (the abort itself is given 1 s), and counted.
    ///
    /// A one-shot listener is simply an acceptor the caller drops after the first
    /// connection: nothing in the pool refers to it.
    pub async fn accept<'p, 'a, A, T>(
        &'p self,
        acceptor: &'a A,
        port: u16,
        params: ListenParams,
        timer: &T,
        deadline: Instant,
    ) -> Result<Conn<'p, A::Socket<'a>, N>, AcceptError>
    where
        A: TcpAccept,
        T: Timer,
    {
        loop {
            // Checked here too: an acceptor that fails at once, over and over, must not
            // keep this loop from ever reaching its deadline.
            if timer.now() >= deadline {
                return Err(AcceptError::TimedOut);
            }
            let (remote, mut socket) = match with_deadline(timer, deadline, acceptor.accept()).await {
                Err(TimedOut) => return Err(AcceptError::TimedOut),
                Ok(Err(e)) => {
                    let class = class_of(&e);
                    self.with(|t| t.counters.accept_errors = t.counters.accept_errors.wrapping_add(1));
                    if class.is_retry() {
                        continue;
                    }
                    return Err(AcceptError::Stack(class));
                }
                Ok(Ok(accepted)) => accepted,
            };
            let now = timer.now();
            let admitted = self.with(|t| {
                let on_port = t
                    .slots
                    .iter()
                    .filter(|s| s.state.is_in_use() && s.port == port)
                    .count();
                let free = t.slots.iter().position(|s| s.state == ConnState::Free);
                match admit(&params, on_port, free) {
                    Ok(_) => {
                        let (i, generation) =
                            t.occupy(ConnState::Connected, port, Some(remote), params.protocol, now)?;
                        t.counters.accepted = t.counters.accepted.wrapping_add(1);
                        Some((i, generation))
                    }
                    Err(why) => {
                        let c = &mut t.counters;
                        c.rejected = c.rejected.wrapping_add(1);
                        match why {
                            Rejection::PortCap => c.rejected_port_cap = c.rejected_port_cap.wrapping_add(1),
                            Rejection::PoolFull => {
                                c.rejected_pool_full = c.rejected_pool_full.wrapping_add(1);
                                c.exhausted = c.exhausted.wrapping_add(1);
                            }
                        }
                        None
                    }
                }
            });
            match admitted {
                Some((slot, generation)) => {
                    return Ok(Conn {
                        pool: self,
                        slot,
                        generation,
                        socket,
                    })
                }
                None => {
                    // Release at once: never leave it holding a PCB.
                    let _ = with_deadline(timer, now + REJECT_DEADLINE, socket.abort()).await;
                }
            }
        }
    }

    /// Connect to `remote` through `connector` within `timeout`. Refused at once,
    /// with nothing allocated and nothing sent, while `link` is down (read it from
    /// the network driver; netpool never probes) or when every slot is in use.
    pub async fn connect<'p, 'c, C, T>(
        &'p self,
        connector: &'c C,
        remote: SocketAddr,
        protocol: u8,
        link: LinkState,
        timer: &T,
        timeout: Duration,
    ) -> Result<Conn<'p, C::Connection<'c>, N>, ConnectError>
    where
        C: TcpConnect,
        T: Timer,
    {
        if !link.allows_connect() {
            return Err(ConnectError::LinkDown);
        }
        let now = timer.now();
        let Some((slot, generation)) = self.with(|t| {
            let got = t.occupy(ConnState::Allocated, 0, Some(remote), protocol, now);
            if got.is_none() {
                t.counters.exhausted = t.counters.exhausted.wrapping_add(1);
            } else {
                t.counters.connects = t.counters.connects.wrapping_add(1);
            }
            got
        }) else {
            return Err(ConnectError::PoolFull);
        };
        // Frees the reserved slot if the connect fails, times out, or this future is
        // dropped before it completes (a cancelled connect must not leak its slot).
        let mut reservation = Reservation {
            pool: self,
            slot,
            generation,
            reason: CloseReason::ConnectFailed(ErrorClass::Aborted),
        };
        let class = match with_deadline(timer, now + timeout, connector.connect(remote)).await {
            Ok(Ok(socket)) => {
                let now = timer.now();
                self.with(|t| {
                    let s = &mut t.slots[slot];
                    s.state = ConnState::Connected;
                    s.state_since = now;
                    s.last_activity = now;
                    s.progress = SendProgress::new(now);
                });
                core::mem::forget(reservation);
                return Ok(Conn {
                    pool: self,
                    slot,
                    generation,
                    socket,
                });
            }
            Ok(Err(e)) => class_of(&e),
            Err(TimedOut) => ErrorClass::Timeout,
        };
        reservation.reason = if class == ErrorClass::Timeout {
            CloseReason::ConnectTimeout
        } else {
            CloseReason::ConnectFailed(class)
        };
        Err(ConnectError::Stack(class))
    }

    /// The reaper: give up on connections that stalled (bytes refused by the stack
    /// for [`Config::stall_grace`] — async stacks expose no send queue, so progress is
    /// bytes taken) or sat idle past [`Config::idle_timeout`]. Their waiters wake with
    /// [`ConnError::Closed`]; whoever holds the [`Conn`] drops or aborts it. Call it
    /// periodically (e.g. every second). Returns how many it gave up on. O(N).
    pub fn reap(&self, now: Instant) -> u16 {
        let config = self.config;
        self.with(|t| {
            let mut n = 0;
            for s in t.slots.iter_mut().filter(|s| s.state == ConnState::Connected) {
                let pending = s.progress.observe(None, 0, now);
                if s.progress.is_stalled(pending, now, config.stall_grace) {
                    s.kill(ConnState::Aborted, CloseReason::Stalled, now);
                    t.counters.reaped = t.counters.reaped.wrapping_add(1);
                    n += 1;
                } else if config
                    .idle_timeout
                    .is_some_and(|idle| now.saturating_since(s.last_activity) >= idle)
                {
                    s.kill(ConnState::Aborted, CloseReason::Idle, now);
                    t.counters.idle_closed = t.counters.idle_closed.wrapping_add(1);
                    n += 1;
                }
            }
            n
        })
    }

    /// Counters (with `in_use` counted now). Short critical section, O(N).
    pub fn counters(&self) -> Counters {
        self.with(|t| {
            let mut c = t.counters;
            c.in_use = t.slots.iter().filter(|s| s.state.is_in_use()).count() as u32;
            c
        })
    }

    /// Free slots now.
    pub fn free_slots(&self) -> usize {
        self.with(|t| t.slots.iter().filter(|s| !s.state.is_in_use()).count())
    }

    /// A snapshot of every slot (listeners belong to the tasks, so there are none here).
    pub fn report(&self, now: Instant) -> Report<N, 0> {
        self.with(|t| Report {
            at: now,
            slots: core::array::from_fn(|i| t.slots[i].report(i, now)),
            listeners: [],
            counters: {
                let mut c = t.counters;
                c.in_use = t.slots.iter().filter(|s| s.state.is_in_use()).count() as u32;
                c
            },
            link: LinkState::Unknown,
        })
    }

    /// The error a dead or stale connection reports.
    fn error_for(&self, slot: usize, generation: u32) -> ConnError {
        self.with(|t| {
            let s = &t.slots[slot];
            if s.generation != generation {
                return ConnError::Stale;
            }
            crate::handle::ended_error(s.state, s.close_reason)
        })
    }

    /// Apply an error's disposition to the slot (the same rule as the sync pool's)
    /// and wake its waiters.
    fn on_error(&self, slot: usize, generation: u32, class: ErrorClass, now: Instant) {
        self.with(|t| {
            let s = &mut t.slots[slot];
            let Some((state, reason)) = crate::handle::after_error(class) else {
                return;
            };
            if s.generation != generation {
                return;
            }
            if s.state == ConnState::Connected {
                let c = &mut t.counters;
                if state == ConnState::OtherEndClosed {
                    c.peer_closed = c.peer_closed.wrapping_add(1);
                } else {
                    c.aborted = c.aborted.wrapping_add(1);
                }
            }
            s.kill(state, reason, now);
        })
    }

    /// Resolves once the connection is no longer live; registers waiter `which`.
    async fn dead(&self, slot: usize, generation: u32, which: usize) {
        poll_fn(|cx| {
            self.with(|t| {
                let s = &mut t.slots[slot];
                if s.live(generation) {
                    s.wakers[which] = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
        })
        .await
    }

    fn free(&self, slot: usize, generation: u32, now: Instant) {
        self.with(|t| {
            let s = &mut t.slots[slot];
            if s.generation == generation && s.state != ConnState::Free {
                if s.close_reason.is_none() {
                    s.close_reason = Some(CloseReason::Closed);
                }
                s.kill(ConnState::Free, CloseReason::Closed, now);
            }
        })
    }
}

/// A slot reserved (`Allocated`) for a connect under way; freed on drop.
struct Reservation<'p, const N: usize> {
    pool: &'p AsyncPool<N>,
    slot: usize,
    generation: u32,
    reason: CloseReason,
}

impl<const N: usize> Drop for Reservation<'_, N> {
    fn drop(&mut self) {
        self.pool.with(|t| {
            let s = &mut t.slots[self.slot];
            if s.generation == self.generation && s.state == ConnState::Allocated {
                s.close_reason = Some(self.reason);
                s.state = ConnState::Free;
                t.counters.connect_failed = t.counters.connect_failed.wrapping_add(1);
            }
        });
    }
}

/// How long a rejected connection's abort may take.
const REJECT_DEADLINE: Duration = Duration::from_secs(1);

/// One side of a connection's I/O, shared by [`Conn`] and its split halves.
struct Side<'p, const N: usize> {
    pool: &'p AsyncPool<N>,
    slot: usize,
    generation: u32,
}

impl<const N: usize> Side<'_, N> {
    fn check(&self) -> Result<(), ConnError> {
        let live = self.pool.with(|t| t.slots[self.slot].live(self.generation));
        if live {
            Ok(())
        } else {
            Err(self.pool.error_for(self.slot, self.generation))
        }
    }

    async fn read<R: Read, T: Timer>(
        &self,
        r: &mut R,
        buf: &mut [u8],
        timer: &T,
        deadline: Instant,
    ) -> Result<usize, ConnError> {
        self.check()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let io = select(r.read(buf), self.pool.dead(self.slot, self.generation, 0));
        let now_res = with_deadline(timer, deadline, io).await;
        let now = timer.now();
        match now_res {
            Err(TimedOut) => Err(ConnError::TimedOut),
            Ok(Either::Second(())) => Err(self.pool.error_for(self.slot, self.generation)),
            Ok(Either::First(Ok(0))) => {
                self.pool
                    .on_error(self.slot, self.generation, ErrorClass::Closed, now);
                Err(ConnError::PeerGone(ErrorClass::Closed))
            }
            Ok(Either::First(Ok(n))) => {
                self.pool.with(|t| {
                    let s = &mut t.slots[self.slot];
                    if s.generation == self.generation {
                        s.bytes_in += n as u64;
                        s.last_activity = now;
                    }
                });
                Ok(n)
            }
            Ok(Either::First(Err(e))) => {
                let class = class_of(&e);
                self.pool.on_error(self.slot, self.generation, class, now);
                Err(self.pool.error_for(self.slot, self.generation))
            }
        }
    }

    async fn write<W: Write, T: Timer>(
        &self,
        w: &mut W,
        data: &[u8],
        push: bool,
        timer: &T,
        deadline: Instant,
    ) -> Result<usize, ConnError> {
        self.check()?;
        let mut taken = 0;
        if !data.is_empty() {
            let io = select(w.write(data), self.pool.dead(self.slot, self.generation, 1));
            match with_deadline(timer, deadline, io).await {
                Err(TimedOut) => {
                    self.pool.with(|t| t.slots[self.slot].progress.blocked = true);
                    return Err(ConnError::TimedOut);
                }
                Ok(Either::Second(())) => return Err(self.pool.error_for(self.slot, self.generation)),
                Ok(Either::First(Err(e))) => {
                    self.pool
                        .on_error(self.slot, self.generation, class_of(&e), timer.now());
                    return Err(self.pool.error_for(self.slot, self.generation));
                }
                // `Ok(0)` for a non-empty buffer: the stack will never take these bytes.
                Ok(Either::First(Ok(0))) => {
                    self.pool
                        .on_error(self.slot, self.generation, ErrorClass::Closed, timer.now());
                    return Err(self.pool.error_for(self.slot, self.generation));
                }
                Ok(Either::First(Ok(n))) => taken = n.min(data.len()),
            }
            let now = timer.now();
            self.pool.with(|t| {
                let s = &mut t.slots[self.slot];
                if s.generation == self.generation {
                    s.bytes_out += taken as u64;
                    s.last_activity = now;
                    s.progress.on_handed(taken, now);
                    s.progress.blocked = taken < data.len();
                }
            });
        }
        if push {
            let io = select(w.flush(), self.pool.dead(self.slot, self.generation, 1));
            match with_deadline(timer, deadline, io).await {
                // The bytes were taken; the flush simply did not finish in time.
                Err(TimedOut) => {}
                Ok(Either::Second(())) => {}
                Ok(Either::First(Err(e))) => {
                    self.pool
                        .on_error(self.slot, self.generation, class_of(&e), timer.now())
                }
                Ok(Either::First(Ok(()))) => {}
            }
        }
        Ok(taken)
    }
}

/// A connection: its socket and its slot. Dropping it frees the slot.
pub struct Conn<'p, S, const N: usize> {
    pool: &'p AsyncPool<N>,
    slot: usize,
    generation: u32,
    socket: S,
}

impl<'p, S, const N: usize> Conn<'p, S, N> {
    fn side(&self) -> Side<'p, N> {
        Side {
            pool: self.pool,
            slot: self.slot,
            generation: self.generation,
        }
    }

    /// The handle of this connection's slot (for reports and wire protocols).
    pub fn handle(&self) -> ConnHandle {
        ConnHandle {
            slot: self.slot as u8,
            generation: self.generation,
        }
    }

    /// The connection's state as the pool sees it.
    pub fn state(&self) -> ConnState {
        self.pool.with(|t| {
            let s = &t.slots[self.slot];
            if s.generation == self.generation {
                s.state
            } else {
                ConnState::Free
            }
        })
    }

    /// The peer's address.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.pool.with(|t| t.slots[self.slot].remote)
    }

    /// The socket, for what netpool does not wrap.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }
}

impl<S: Read + Write, const N: usize> Conn<'_, S, N> {
    /// Read into `buf` until `deadline`. Returns the bytes read (at least one),
    /// [`ConnError::PeerGone`] once the peer has closed and everything it sent was
    /// read, [`ConnError::TimedOut`] at the deadline, or the connection's error as soon
    /// as it is known dead — whoever found out.
    pub async fn read<T: Timer>(
        &mut self,
        buf: &mut [u8],
        timer: &T,
        deadline: Instant,
    ) -> Result<usize, ConnError> {
        let side = self.side();
        side.read(&mut self.socket, buf, timer, deadline).await
    }

    /// Write `data` until `deadline`; returns the bytes the stack took (maybe fewer),
    /// then, with `push`, flushes (within the same deadline). A write that takes
    /// nothing by the deadline returns [`ConnError::TimedOut`] and counts toward the
    /// reaper's stall.
    pub async fn write<T: Timer>(
        &mut self,
        data: &[u8],
        push: bool,
        timer: &T,
        deadline: Instant,
    ) -> Result<usize, ConnError> {
        let side = self.side();
        side.write(&mut self.socket, data, push, timer, deadline).await
    }

    /// Write all of `data` with push, until `deadline`.
    pub async fn write_all<T: Timer>(
        &mut self,
        mut data: &[u8],
        timer: &T,
        deadline: Instant,
    ) -> Result<(), ConnError> {
        while !data.is_empty() {
            let n = self.write(data, false, timer, deadline).await?;
            data = &data[n..];
        }
        self.write(&[], true, timer, deadline).await.map(|_| ())
    }
}

impl<S: TcpShutdown, const N: usize> Conn<'_, S, N> {
    /// Close: FIN, waiting until `deadline` for the stack to finish it; if it cannot,
    /// abort (RST). The slot is free when this returns, either way.
    pub async fn close<T: Timer>(mut self, timer: &T, deadline: Instant) {
        let graceful = with_deadline(timer, deadline, self.socket.close(edge_nal::Close::Write)).await;
        if !matches!(graceful, Ok(Ok(()))) {
            let _ = with_deadline(timer, timer.now() + REJECT_DEADLINE, self.socket.abort()).await;
        }
        self.pool.free(self.slot, self.generation, timer.now());
    }

    /// Abort (RST) now; the slot is free when this returns.
    pub async fn abort<T: Timer>(mut self, timer: &T) {
        let _ = with_deadline(timer, timer.now() + REJECT_DEADLINE, self.socket.abort()).await;
        self.pool.with(|t| {
            // Counted once: a connection the reaper or an error already ended is not
            // aborted again.
            if t.slots[self.slot].live(self.generation) {
                t.counters.aborted = t.counters.aborted.wrapping_add(1);
            }
        });
        self.pool.free(self.slot, self.generation, timer.now());
    }
}

impl<S: TcpSplit, const N: usize> Conn<'_, S, N> {
    /// Split into a reader and a writer for two tasks. When either learns the
    /// connection is dead, the other wakes with the error.
    pub fn split(&mut self) -> (ConnReader<'_, S::Read<'_>, N>, ConnWriter<'_, S::Write<'_>, N>) {
        let (r, w) = self.socket.split();
        let side = Side {
            pool: self.pool,
            slot: self.slot,
            generation: self.generation,
        };
        let side2 = Side {
            pool: self.pool,
            slot: self.slot,
            generation: self.generation,
        };
        (ConnReader { side, r }, ConnWriter { side: side2, w })
    }
}

/// The reading half of a [`Conn`] (see [`Conn::split`]).
pub struct ConnReader<'p, R, const N: usize> {
    side: Side<'p, N>,
    r: R,
}

/// The writing half of a [`Conn`] (see [`Conn::split`]).
pub struct ConnWriter<'p, W, const N: usize> {
    side: Side<'p, N>,
    w: W,
}

impl<R: Read, const N: usize> ConnReader<'_, R, N> {
    /// As [`Conn::read`].
    pub async fn read<T: Timer>(
        &mut self,
        buf: &mut [u8],
        timer: &T,
        deadline: Instant,
    ) -> Result<usize, ConnError> {
        self.side.read(&mut self.r, buf, timer, deadline).await
    }
}

impl<W: Write, const N: usize> ConnWriter<'_, W, N> {
    /// As [`Conn::write`].
    pub async fn write<T: Timer>(
        &mut self,
        data: &[u8],
        push: bool,
        timer: &T,
        deadline: Instant,
    ) -> Result<usize, ConnError> {
        self.side.write(&mut self.w, data, push, timer, deadline).await
    }
}

impl<S, const N: usize> Drop for Conn<'_, S, N> {
    /// Frees the slot. The socket is dropped right after: the stack closes or aborts
    /// it as its own `Drop` does (use [`Conn::close`] for a FIN within a deadline).
    /// Without a clock here, the slot's state time is its last activity.
    fn drop(&mut self) {
        let now = self.pool.with(|t| t.slots[self.slot].last_activity);
        self.pool.free(self.slot, self.generation, now);
    }
}
