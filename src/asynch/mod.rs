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
//! - The decisions are the [connection core](crate::Pool)'s, shared with the sync
//!   driver: admission (listeners with per-port caps and one-shot mode, registered
//!   with [`AsyncPool::listen`]), states, close reasons, counters, events, the stall,
//!   idle and abandoned timers ([`AsyncPool::reap`], [`AsyncPool::poll_at`]) and the
//!   error rule. Every [`Config`] field means what it means for [`Pool`](crate::Pool)
//!   (`coalesce_delay` has nothing to time: this driver keeps no coalescing buffer).
//! - A connection is a [`Conn`] guard. Dropping it frees its slot (the socket is
//!   dropped too: the stack closes or aborts it, as its own `Drop` does). For a clean
//!   end call [`Conn::close`]: the slot is free when it returns and the socket goes
//!   to a [`Closer`], a bounded background task that sends FIN and, if the peer has
//!   not finished the close within [`Config::close_linger`], RST. No slot ever waits
//!   for a peer's ACK (the lingering close that exhausted the ESP8266 bridge's PCBs).
//!   A close that finds the closer full waits for a place, bounded, then resets: one
//!   policy, in [`Conn::close`]; the closer's counters are in the pool's report.
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
//!
//! An RST is only as good as the stack's `TcpShutdown::abort`: edge-nal-std 0.7's does
//! nothing (the socket's drop then closes with FIN), so on that host backend rejected
//! and aborted connections end with FIN; wrap its socket with a zero-linger abort if
//! the difference matters (the test suite does).

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
use crate::error::{Classify, ConnError, ConnectError, ErrorClass, ListenError};
use crate::event::Event;
use crate::handle::{CloseReason, ConnHandle};
use crate::link::LinkState;
use crate::listener::{ListenOutcome, ListenParams};
use crate::report::{CloserCounters, Counters, Report};
use crate::sansio::{AfterError, Core, RejectStreak, Release, Slot, SlotIo, SlotOutcome};
use crate::stack::PeerStatus;
use crate::state::ConnState;
use crate::time::{Duration, Instant};

mod backlog;
mod closer;
#[cfg(feature = "embassy-net")]
pub mod embassy;
pub use backlog::{Backlog, BacklogCounters, REARM};
pub use closer::Closer;

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

/// The core and the wakers of the tasks waiting on each connection.
struct Inner<const N: usize, const L: usize> {
    core: Core<N, L>,
    /// Tasks waiting on a connection (a reader and a writer), woken when it dies.
    wakers: [[Option<Waker>; 2]; N],
    /// What the accept backlogs did ([`Backlog`]).
    backlog: BacklogCounters,
    /// The link as the network task last said ([`AsyncPool::set_link`]).
    link: LinkState,
    /// What the background closer did with this pool's sockets ([`Closer`]).
    closer: CloserCounters,
}

/// Who waits on a connection: its reader or its writer (the index of its waker).
#[derive(Copy, Clone, PartialEq, Eq)]
enum Waiter {
    Reader = 0,
    Writer = 1,
}

/// Whether a connection in `slot` can still serve `who` (the core's rule,
/// [`Slot::may_wait`]).
fn serves(s: &Slot, who: Waiter) -> bool {
    s.may_wait(who == Waiter::Writer)
}

impl<const N: usize, const L: usize> Inner<N, L> {
    /// Whether the connection `(slot, generation)` can still serve `who`.
    fn alive_for(&self, slot: usize, generation: u32, who: Waiter) -> bool {
        let s = self.core.slot(slot);
        s.generation == generation && serves(s, who)
    }

    /// Take the wakers of slot `i` whose waiters the connection can no longer serve;
    /// they are woken after the critical section.
    fn take_wakers_if_dead(&mut self, i: usize) -> [Option<Waker>; 2] {
        let s = *self.core.slot(i);
        let [reader, writer] = &mut self.wakers[i];
        let take = |w: &mut Option<Waker>, who| if serves(&s, who) { None } else { w.take() };
        [take(reader, Waiter::Reader), take(writer, Waiter::Writer)]
    }
}

fn wake(wakers: [Option<Waker>; 2]) {
    for w in wakers.into_iter().flatten() {
        w.wake();
    }
}

/// Slot bookkeeping shared by every task: see the [module docs](self).
///
/// `N` connection slots, `L` listener entries (ports with their caps).
pub struct AsyncPool<const N: usize, const L: usize = 1> {
    inner: Mutex<RefCell<Inner<N, L>>>,
}

/// Why [`AsyncPool::accept`] returned without a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AcceptError {
    /// The acceptor failed (class of its error).
    Stack(ErrorClass),
    /// The deadline passed.
    TimedOut,
    /// No listener is registered for the port ([`AsyncPool::listen`]), or a one-shot
    /// listener already took its connection.
    NotListening,
}

/// After an accept error that only means "try again", wait this long (bounded by the
/// deadline) before the next try, so a failing acceptor cannot spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

impl<const N: usize, const L: usize> AsyncPool<N, L> {
    /// Every slot free, no listener. `const`, so the pool can be a `static`.
    pub const fn new(config: Config) -> Self {
        AsyncPool {
            inner: Mutex::new(RefCell::new(Inner {
                core: Core::new(config),
                wakers: [const { [None, None] }; N],
                backlog: BacklogCounters::ZERO,
                link: LinkState::Unknown,
                closer: CloserCounters::ZERO,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner<N, L>) -> R) -> R {
        critical_section::with(|cs| f(&mut self.inner.borrow_ref_mut(cs)))
    }

    /// Apply `f` to the core and wake the waiters of slot `i` if the connection died
    /// (outside the critical section).
    fn update<R>(&self, i: usize, f: impl FnOnce(&mut Core<N, L>) -> R) -> R {
        let (r, wakers) = self.with(|t| {
            let r = f(&mut t.core);
            (r, t.take_wakers_if_dead(i))
        });
        wake(wakers);
        r
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.with(|t| *t.core.config())
    }

    /// Listen on `port` with `params` (a per-port cap, a protocol tag, persistent or
    /// one-shot), or change them; `max_conns == 0` stops it. The socket is the
    /// caller's acceptor, passed to [`accept`](Self::accept).
    pub fn listen(&self, port: u16, params: ListenParams) -> Result<ListenOutcome, ListenError> {
        // The acceptor is the caller's: no socket to open or close here.
        self.with(|t| t.core.handle_listen(port, params, |_| Ok(())))
    }

    /// Accept the next connection on `acceptor` (listening on `port`, registered with
    /// [`listen`](Self::listen)) that the port's cap and the pool admit, until
    /// `deadline`. Connections beyond the port's cap or the pool are accepted and
    /// released at once ([`Config::reject`], within [`Config::release_deadline`]) and counted;
    /// after [`Config::accepts_per_poll`] of them in a row the task yields.
    ///
    /// A one-shot listener stops after its first connection: later calls for the port
    /// return [`AcceptError::NotListening`], and the caller drops its acceptor.
    pub async fn accept<'p, 'a, A, T>(
        &'p self,
        acceptor: &'a A,
        port: u16,
        timer: &T,
        deadline: Instant,
    ) -> Result<Conn<'p, A::Socket<'a>, N, L>, AcceptError>
    where
        A: TcpAccept,
        T: Timer,
    {
        let mut streak = RejectStreak::default();
        loop {
            // Checked here too: an acceptor that fails at once, over and over, must not
            // keep this loop from ever reaching its deadline.
            let now = timer.now();
            if now >= deadline {
                return Err(AcceptError::TimedOut);
            }
            if self.with(|t| t.core.listener_index(port)).is_none() {
                return Err(AcceptError::NotListening);
            }
            let (remote, socket) = match with_deadline(timer, deadline, acceptor.accept()).await {
                Err(TimedOut) => return Err(AcceptError::TimedOut),
                Ok(Err(e)) => {
                    let class = class_of(&e);
                    self.with(|t| t.core.handle_accept_error(class));
                    if !class.is_retry() {
                        return Err(AcceptError::Stack(class));
                    }
                    let retry_at = timer.now() + ACCEPT_RETRY;
                    timer
                        .at(if retry_at < deadline { retry_at } else { deadline })
                        .await;
                    continue;
                }
                Ok(Ok(accepted)) => accepted,
            };
            match self.admit(port, remote, socket, timer).await {
                Ok(conn) => return Ok(conn),
                Err(()) if streak.turned_away(&self.config()) => yield_now().await,
                Err(()) => {}
            }
        }
    }

    /// Take the next connection from `backlog` (which keeps accepts armed on its
    /// port's acceptor: see [`Backlog`]) that the port's cap and the pool admit,
    /// waiting for one until `deadline`. Admission and the release of what is not
    /// admitted are [`accept`](Self::accept)'s; connections that waited longer than
    /// the backlog's wait are released by the backlog, not handed out. Counted in
    /// [`backlog_counters`](Self::backlog_counters).
    pub async fn accept_from<'p, S, T, const K: usize>(
        &'p self,
        backlog: &Backlog<S, K>,
        timer: &T,
        deadline: Instant,
    ) -> Result<Conn<'p, S, N, L>, AcceptError>
    where
        S: TcpShutdown,
        T: Timer,
    {
        let port = backlog.port();
        let mut streak = RejectStreak::default();
        loop {
            if timer.now() >= deadline {
                return Err(AcceptError::TimedOut);
            }
            if self.with(|t| t.core.listener_index(port)).is_none() {
                return Err(AcceptError::NotListening);
            }
            let Some((remote, socket)) = backlog.take(timer, deadline).await else {
                return Err(AcceptError::TimedOut);
            };
            let admitted = self.admit(port, remote, socket, timer).await;
            self.with(|t| {
                let c = &mut t.backlog;
                match admitted {
                    Ok(_) => c.served = c.served.wrapping_add(1),
                    Err(()) => c.refused = c.refused.wrapping_add(1),
                }
            });
            match admitted {
                Ok(conn) => return Ok(conn),
                Err(()) if streak.turned_away(&self.config()) => yield_now().await,
                Err(()) => {}
            }
        }
    }

    /// An accepted connection on `port`: the core admits it (a [`Conn`]) or not (it
    /// is released at once: [`Config::reject`], within [`Config::release_deadline`]; `Err`). Counted by the core.
    async fn admit<'p, S: TcpShutdown, T: Timer>(
        &'p self,
        port: u16,
        remote: SocketAddr,
        mut socket: S,
        timer: &T,
    ) -> Result<Conn<'p, S, N, L>, ()> {
        let now = timer.now();
        let admitted = self.with(|t| {
            // The listener may have been stopped while this task waited.
            let li = t.core.listener_index(port)?;
            Some(t.core.handle_incoming(li, remote, now))
        });
        if let Some(Ok(admitted)) = admitted {
            // Handed out here, as `Pool::accept_next` does: the Accepted event is
            // drained.
            self.with(|t| t.core.claim_accepted(admitted.handle.slot()));
            return Ok(Conn::new(self, admitted.handle, socket));
        }
        // Release at once: never leave it holding a PCB.
        let within = self.config().release_deadline;
        let release_by = now + within;
        match self.with(|t| t.core.rejected_release()) {
            Release::Abort => {
                let _ = with_deadline(timer, release_by, socket.abort()).await;
            }
            Release::Close => {
                let closed = with_deadline(timer, release_by, socket.close(edge_nal::Close::Both)).await;
                if !matches!(closed, Ok(Ok(()))) {
                    let _ = with_deadline(timer, timer.now() + within, socket.abort()).await;
                }
            }
        }
        Err(())
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
    ) -> Result<Conn<'p, C::Connection<'c>, N, L>, ConnectError>
    where
        C: TcpConnect,
        T: Timer,
    {
        self.open(None, connector, remote, protocol, link, timer, timeout)
            .await
    }

    /// [`connect`](Self::connect) into slot number `slot` (wire protocols that name
    /// their sockets; [`ConnectError::SlotInUse`] if it is taken).
    #[allow(clippy::too_many_arguments)]
    pub async fn connect_at<'p, 'c, C, T>(
        &'p self,
        slot: usize,
        connector: &'c C,
        remote: SocketAddr,
        protocol: u8,
        link: LinkState,
        timer: &T,
        timeout: Duration,
    ) -> Result<Conn<'p, C::Connection<'c>, N, L>, ConnectError>
    where
        C: TcpConnect,
        T: Timer,
    {
        self.open(Some(slot), connector, remote, protocol, link, timer, timeout)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn open<'p, 'c, C, T>(
        &'p self,
        want: Option<usize>,
        connector: &'c C,
        remote: SocketAddr,
        protocol: u8,
        link: LinkState,
        timer: &T,
        timeout: Duration,
    ) -> Result<Conn<'p, C::Connection<'c>, N, L>, ConnectError>
    where
        C: TcpConnect,
        T: Timer,
    {
        let now = timer.now();
        let handle = self.with(|t| {
            let i = t.core.pick_connect_slot(want, remote, link)?;
            Ok(t.core
                .handle_connect_started(i, remote, protocol, false, now + timeout, now))
        })?;
        let (slot, generation) = (handle.slot(), handle.generation());
        // Frees the reserved slot if the connect fails, times out, or this future is
        // dropped before it completes (a cancelled connect must not leak its slot).
        let mut reservation = Reservation {
            pool: self,
            slot,
            generation,
            reason: CloseReason::ConnectFailed(ErrorClass::Aborted),
        };
        // The reaper may fail the connect first (its deadline, the link gone): then
        // this returns at once with the core's reason.
        let attempt = select(
            connector.connect(remote),
            self.dead(slot, generation, Waiter::Writer),
        );
        let reason = match with_deadline(timer, now + timeout, attempt).await {
            Ok(Either::Second(())) => self.failed_connect_reason(slot, generation),
            Ok(Either::First(Ok(socket))) => {
                let now = timer.now();
                let still_ours = self.with(|t| {
                    t.core.slot(slot).generation == generation && t.core.handle_connected(slot, now)
                });
                if still_ours {
                    core::mem::forget(reservation);
                    return Ok(Conn::new(self, handle, socket));
                }
                self.failed_connect_reason(slot, generation)
            }
            Ok(Either::First(Err(e))) => CloseReason::ConnectFailed(class_of(&e)),
            Err(TimedOut) => CloseReason::ConnectTimeout,
        };
        reservation.reason = reason;
        Err(ConnectError::Stack(match reason {
            CloseReason::ConnectFailed(class) => class,
            _ => ErrorClass::ConnectionTimedOut,
        }))
    }

    /// Why the core failed the connect in `(slot, generation)` (the reaper did, at its
    /// deadline or because the link dropped); a connect timeout if the slot moved on.
    fn failed_connect_reason(&self, slot: usize, generation: u32) -> CloseReason {
        self.with(|t| {
            let s = t.core.slot(slot);
            match s.close_reason {
                Some(reason) if s.generation == generation => reason,
                _ => CloseReason::ConnectTimeout,
            }
        })
    }

    /// The reaper: run the core's timers at `now`. Connections that stalled (bytes
    /// refused by the stack for [`Config::stall_grace`] — async stacks expose no send
    /// queue, so progress is bytes taken) or sat idle past [`Config::idle_timeout`]
    /// end (`Aborted`, with the reason); their waiters wake with
    /// [`ConnError::Closed`] and whoever holds the [`Conn`] drops or aborts it. A
    /// connect past its deadline fails. A slot left ended past
    /// [`Config::abandoned_after`] is freed (its `Conn`, if still held, is stale).
    /// Call it at [`poll_at`](Self::poll_at) (or periodically). Returns how many
    /// connections it ended. O(N), short critical sections, no I/O.
    pub fn reap(&self, now: Instant) -> u16 {
        let link = self.with(|t| t.link);
        let mut out = SlotOutcome::default();
        for i in 0..N {
            self.update(i, |core| core.poll_slot(i, now, link, &mut ReaperIo, &mut out));
        }
        out.closed
    }

    /// Tell the pool the link state (from the network driver's task: netpool never
    /// probes). The reaper fails a connect under way when the link is down, as the
    /// sync pool does. Initially [`LinkState::Unknown`] (treated as up).
    pub fn set_link(&self, link: LinkState) {
        self.with(|t| t.link = link);
    }

    /// The earliest time at which [`reap`](Self::reap) has work (it may be past:
    /// reap now). `None` while no timer runs.
    pub fn poll_at(&self) -> Option<Instant> {
        self.with(|t| t.core.poll_timeout())
    }

    /// The next per-connection event not yet drained. See [`Event`].
    pub fn poll_event(&self) -> Option<Event> {
        self.with(|t| t.core.poll_event())
    }

    /// Counters (with `in_use` counted now). Short critical section, O(N).
    pub fn counters(&self) -> Counters {
        self.with(|t| t.core.counters())
    }

    /// What the accept backlogs ([`Backlog`]) feeding this pool did. Short critical
    /// section.
    pub fn backlog_counters(&self) -> BacklogCounters {
        self.with(|t| t.backlog)
    }

    /// Free slots now.
    pub fn free_slots(&self) -> usize {
        self.with(|t| t.core.free_slots())
    }

    /// What the background [`Closer`] did with this pool's sockets (also in
    /// [`report`](Self::report)).
    pub fn closer_counters(&self) -> CloserCounters {
        self.with(|t| t.closer)
    }

    /// Count what the closer did.
    fn note_closer(&self, f: impl FnOnce(&mut CloserCounters)) {
        self.with(|t| f(&mut t.closer));
    }

    /// A snapshot of every slot and listener entry, the counters and the closer's, and
    /// the link as last told with [`set_link`](Self::set_link).
    pub fn report(&self, now: Instant) -> Report<N, L> {
        self.with(|t| {
            // The link as last told with `set_link` (the driver's task tells it).
            let mut report = t.core.report(now, t.link);
            report.closer = t.closer;
            report
        })
    }

    /// The error a dead or stale connection reports.
    fn error_for(&self, slot: usize, generation: u32) -> ConnError {
        self.with(|t| {
            if t.core.slot(slot).generation != generation {
                return ConnError::Stale;
            }
            t.core.error_for(slot)
        })
    }

    /// Apply an error's disposition to the slot (the core's rule) and wake its
    /// waiters.
    fn on_error(&self, slot: usize, generation: u32, class: ErrorClass, now: Instant) {
        self.update(slot, |core| {
            if core.holds(slot, generation) {
                let _: AfterError = core.handle_error(slot, class, now);
            }
        });
    }

    /// Resolves once the connection can no longer serve `who`; registers its waker.
    async fn dead(&self, slot: usize, generation: u32, who: Waiter) {
        poll_fn(|cx| {
            self.with(|t| {
                if t.alive_for(slot, generation, who) {
                    t.wakers[slot][who as usize] = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
        })
        .await
    }

    /// The application is done with the connection: free its slot.
    fn free(&self, slot: usize, generation: u32, reason: CloseReason, now: Instant) {
        self.update(slot, |core| {
            if core.holds(slot, generation) {
                if reason == CloseReason::Aborted {
                    let _ = core.handle_app_close(core.slot(slot).handle(slot), true);
                }
                core.handle_released(slot, reason, now);
            }
        });
    }
}

/// Complete on the second poll: lets the executor run other tasks.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// A slot reserved (`Connecting`) for a connect under way; freed on drop.
struct Reservation<'p, const N: usize, const L: usize> {
    pool: &'p AsyncPool<N, L>,
    slot: usize,
    generation: u32,
    reason: CloseReason,
}

impl<const N: usize, const L: usize> Drop for Reservation<'_, N, L> {
    fn drop(&mut self) {
        let (slot, generation, reason) = (self.slot, self.generation, self.reason);
        self.pool.update(slot, |core| {
            if core.holds(slot, generation) {
                let now = core.clock();
                core.handle_connect_failed(slot, reason, now);
                core.handle_released(slot, reason, now);
            }
        });
    }
}

/// The reaper's side of the core's timer work: the tasks hold the sockets, so it has
/// no socket I/O to offer. A connect is the connecting task's to finish (the core
/// still fails it at its deadline or when the link drops); nothing is held back to
/// push; the peer and the send queue are unknown (stalls are judged by bytes taken);
/// and a connection the pool ends stays with its task, which releases the socket.
struct ReaperIo;

impl SlotIo for ReaperIo {
    fn connect(&mut self, _: usize, _: SocketAddr) -> Result<bool, ErrorClass> {
        Ok(false)
    }
    fn push(&mut self, _: usize, _: &mut Slot, _: &Config, _: Instant) -> Result<(), ErrorClass> {
        Ok(())
    }
    fn peer_status(&mut self, _: usize) -> PeerStatus {
        PeerStatus::Unknown
    }
    fn send_queue(&mut self, _: usize) -> Option<usize> {
        None
    }
    fn release(&mut self, _: usize, _: Release, _: &mut Slot, _: &Config, _: Instant) -> Option<usize> {
        None
    }
    fn abort(&mut self, _: usize) {}
}

/// One side of a connection's I/O, shared by [`Conn`] and its split halves.
struct Side<'p, const N: usize, const L: usize> {
    pool: &'p AsyncPool<N, L>,
    slot: usize,
    generation: u32,
}

impl<const N: usize, const L: usize> Side<'_, N, L> {
    fn check(&self, who: Waiter) -> Result<(), ConnError> {
        if self.pool.with(|t| t.alive_for(self.slot, self.generation, who)) {
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
        self.check(Waiter::Reader)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let io = select(
            r.read(buf),
            self.pool.dead(self.slot, self.generation, Waiter::Reader),
        );
        let res = with_deadline(timer, deadline, io).await;
        let now = timer.now();
        match res {
            Err(TimedOut) => Err(ConnError::TimedOut),
            Ok(Either::Second(())) => Err(self.pool.error_for(self.slot, self.generation)),
            Ok(Either::First(Ok(0))) => {
                // The peer's FIN: OtherEndClosed, still writable (half-close), as in
                // the sync pool.
                self.pool.update(self.slot, |core| {
                    if core.slot(self.slot).generation == self.generation {
                        core.handle_peer_fin(self.slot, now);
                    }
                });
                Err(ConnError::PeerGone(ErrorClass::Closed))
            }
            Ok(Either::First(Ok(n))) => {
                self.pool.with(|t| {
                    if t.core.slot(self.slot).generation == self.generation {
                        t.core.handle_read(self.slot, n, now);
                    }
                });
                Ok(n)
            }
            Ok(Either::First(Err(e))) => {
                self.pool.on_error(self.slot, self.generation, class_of(&e), now);
                Err(self.pool.error_for(self.slot, self.generation))
            }
        }
    }

    /// Record a write's outcome in the core (progress, activity, the stall watch).
    fn written(&self, taken: usize, requested: usize, now: Instant) {
        self.pool.with(|t| {
            if t.core.slot(self.slot).generation != self.generation {
                return;
            }
            t.core.handle_handed(self.slot, taken, requested, now);
        });
    }

    async fn write<W: Write, T: Timer>(
        &self,
        w: &mut W,
        data: &[u8],
        push: bool,
        timer: &T,
        deadline: Instant,
    ) -> Result<usize, ConnError> {
        self.check(Waiter::Writer)?;
        let mut taken = 0;
        if !data.is_empty() {
            // Until the stack takes them, the bytes wait: blocked, as a sync write that
            // could not hand them over (the stall watch and the pressure rule see it).
            self.written(0, data.len(), timer.now());
            let io = select(
                w.write(data),
                self.pool.dead(self.slot, self.generation, Waiter::Writer),
            );
            match with_deadline(timer, deadline, io).await {
                Err(TimedOut) => {
                    self.written(0, data.len(), timer.now());
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
            self.written(taken, data.len(), timer.now());
        }
        if push {
            let io = select(
                w.flush(),
                self.pool.dead(self.slot, self.generation, Waiter::Writer),
            );
            match with_deadline(timer, deadline, io).await {
                // The bytes were taken; the flush simply did not finish in time.
                Err(TimedOut) | Ok(Either::Second(())) | Ok(Either::First(Ok(()))) => {}
                Ok(Either::First(Err(e))) => {
                    self.pool
                        .on_error(self.slot, self.generation, class_of(&e), timer.now())
                }
            }
        }
        Ok(taken)
    }
}

/// A connection's claim on its slot: freed when dropped.
struct SlotGuard<'p, const N: usize, const L: usize> {
    pool: &'p AsyncPool<N, L>,
    slot: usize,
    generation: u32,
    /// How the slot is released when the guard drops.
    reason: CloseReason,
}

impl<const N: usize, const L: usize> Drop for SlotGuard<'_, N, L> {
    /// Frees the slot. Without a clock here, the time is the latest the pool saw.
    fn drop(&mut self) {
        let now = self.pool.with(|t| t.core.clock());
        self.pool.free(self.slot, self.generation, self.reason, now);
    }
}

/// A connection: its socket and its slot. Dropping it frees the slot (the socket is
/// dropped right after: the stack closes or aborts it as its own `Drop` does).
pub struct Conn<'p, S, const N: usize, const L: usize = 1> {
    guard: SlotGuard<'p, N, L>,
    socket: S,
}

impl<'p, S, const N: usize, const L: usize> Conn<'p, S, N, L> {
    fn new(pool: &'p AsyncPool<N, L>, handle: ConnHandle, socket: S) -> Self {
        Conn {
            guard: SlotGuard {
                pool,
                slot: handle.slot(),
                generation: handle.generation(),
                reason: CloseReason::Closed,
            },
            socket,
        }
    }

    fn side(&self) -> Side<'p, N, L> {
        Side {
            pool: self.guard.pool,
            slot: self.guard.slot,
            generation: self.guard.generation,
        }
    }

    /// The handle of this connection's slot (for reports and wire protocols).
    pub fn handle(&self) -> ConnHandle {
        ConnHandle {
            slot: self.guard.slot as u8,
            generation: self.guard.generation,
        }
    }

    /// The connection's state as the pool sees it.
    pub fn state(&self) -> ConnState {
        let (slot, generation) = (self.guard.slot, self.guard.generation);
        self.guard.pool.with(|t| {
            let s = t.core.slot(slot);
            if s.generation == generation {
                s.state
            } else {
                ConnState::Free
            }
        })
    }

    /// The peer's address.
    pub fn remote(&self) -> Option<SocketAddr> {
        let slot = self.guard.slot;
        self.guard.pool.with(|t| t.core.slot(slot).remote.addr())
    }

    /// The socket, for what netpool does not wrap.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }

    /// How this connection's socket is released when the application closes it
    /// (the core's rule); RST if its slot was freed and reused meanwhile (abandoned).
    fn release(&self) -> Release {
        let (slot, generation) = (self.guard.slot, self.guard.generation);
        self.guard.pool.with(|t| {
            if t.core.slot(slot).generation == generation {
                t.core.release_on_close(slot)
            } else {
                Release::Abort
            }
        })
    }
}

impl<S: Read + Write, const N: usize, const L: usize> Conn<'_, S, N, L> {
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

impl<S: TcpShutdown, const N: usize, const L: usize> Conn<'_, S, N, L> {
    /// Close: the slot is free at once, and the socket goes to `closer`, which sends
    /// FIN and, if the close has not finished within
    /// [`Config::close_linger`], RST. When every one of the closer's `K` places is
    /// busy, this waits for one — at most `close_linger` +
    /// [`Config::release_deadline`], the longest a close there can take — and resets
    /// the connection only if none freed by then or `K` closes already wait (counted
    /// in [`CloserCounters`]: `waited`, `overflow`). It never waits for this
    /// connection's peer.
    ///
    /// A connection the pool or the stack already gave up on (send stall, fatal
    /// error, abandoned) is aborted instead, as the sync pool does when it reaps:
    /// its queued bytes are not worth sending.
    pub async fn close<T: Timer, const K: usize>(self, closer: &Closer<S, K>, timer: &T) {
        if self.release() == Release::Abort {
            return self.abort(timer).await;
        }
        let Conn { guard, socket } = self;
        let pool = guard.pool;
        let config = pool.config();
        drop(guard); // frees the slot: reason Closed
        let until = timer.now() + config.close_linger + config.release_deadline;
        if let Err(mut socket) = closer.hand_over(socket, pool, timer, until).await {
            let _ = with_deadline(timer, timer.now() + config.release_deadline, socket.abort()).await;
        }
    }

    /// Abort (RST) now; the slot is free when this returns.
    pub async fn abort<T: Timer>(self, timer: &T) {
        let Conn {
            mut guard,
            mut socket,
        } = self;
        guard.reason = CloseReason::Aborted;
        let within = guard.pool.config().release_deadline;
        drop(guard);
        let _ = with_deadline(timer, timer.now() + within, socket.abort()).await;
    }
}

impl<S: TcpSplit, const N: usize, const L: usize> Conn<'_, S, N, L> {
    /// Split into a reader and a writer for two tasks. When either learns the
    /// connection is dead, the other wakes with the error.
    pub fn split(
        &mut self,
    ) -> (
        ConnReader<'_, S::Read<'_>, N, L>,
        ConnWriter<'_, S::Write<'_>, N, L>,
    ) {
        let (side, side2) = (self.side(), self.side());
        let (r, w) = self.socket.split();
        (ConnReader { side, r }, ConnWriter { side: side2, w })
    }
}

/// The reading half of a [`Conn`] (see [`Conn::split`]).
pub struct ConnReader<'p, R, const N: usize, const L: usize = 1> {
    side: Side<'p, N, L>,
    r: R,
}

/// The writing half of a [`Conn`] (see [`Conn::split`]).
pub struct ConnWriter<'p, W, const N: usize, const L: usize = 1> {
    side: Side<'p, N, L>,
    w: W,
}

impl<R: Read, const N: usize, const L: usize> ConnReader<'_, R, N, L> {
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

impl<W: Write, const N: usize, const L: usize> ConnWriter<'_, W, N, L> {
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

impl AcceptError {
    /// The [`ErrorClass`] of this error (see [`ConnError::class`]): `Stack(c)` is `c`,
    /// `TimedOut` is `Timeout` (a retry class), `NotListening` is `InvalidInput`.
    ///
    /// ```
    /// use netpool::asynch::AcceptError;
    /// use netpool::ErrorClass;
    /// assert_eq!(AcceptError::Stack(ErrorClass::OutOfResources).class(), ErrorClass::OutOfResources);
    /// assert!(AcceptError::TimedOut.class().is_retry());
    /// ```
    pub const fn class(&self) -> ErrorClass {
        match self {
            AcceptError::Stack(c) => *c,
            AcceptError::TimedOut => ErrorClass::Timeout,
            AcceptError::NotListening => ErrorClass::InvalidInput,
        }
    }
}

impl core::fmt::Display for AcceptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcceptError::Stack(c) => write!(f, "the acceptor failed ({c})"),
            AcceptError::TimedOut => f.write_str("deadline passed"),
            AcceptError::NotListening => f.write_str("not listening on the port"),
        }
    }
}

impl core::error::Error for AcceptError {}

/// [`AcceptError::class`](AcceptError::class).
impl Classify for AcceptError {
    fn class(&self) -> ErrorClass {
        AcceptError::class(self)
    }
}

#[cfg(test)]
mod accept_error_tests {
    use super::AcceptError;
    use crate::error::{Classify, ErrorClass};

    #[test]
    fn accept_error_class() {
        let cases = [
            (
                AcceptError::Stack(ErrorClass::OutOfResources),
                ErrorClass::OutOfResources,
            ),
            (AcceptError::TimedOut, ErrorClass::Timeout),
            (AcceptError::NotListening, ErrorClass::InvalidInput),
        ];
        for (e, class) in cases {
            assert_eq!(e.class(), class, "{e}");
            assert_eq!(Classify::class(&e), class, "{e}");
        }
    }

    #[test]
    fn accept_errors_say_what_happened() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(AcceptError::TimedOut.to_string(), "deadline passed");
        assert_eq!(AcceptError::NotListening.to_string(), "not listening on the port");
        assert!(AcceptError::Stack(ErrorClass::Reset)
            .to_string()
            .starts_with("the acceptor failed ("));
    }
}
