//! The accept backlog: listening sockets kept armed beyond the tasks that serve.

use core::cell::RefCell;
use core::future::poll_fn;
use core::net::SocketAddr;
use core::task::{Poll, Waker};

use critical_section::Mutex;
use edge_nal::{TcpAccept, TcpShutdown};

use super::{class_of, select, with_deadline, AsyncPool, Either, TimedOut, Timer, ACCEPT_RETRY};
use crate::time::{Duration, Instant};

/// What the accept backlogs of an [`AsyncPool`] did ([`AsyncPool::backlog_counters`]).
/// They only grow (wrapping at `u32::MAX`), except `high_water`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct BacklogCounters {
    /// Connections a [`Backlog`] accepted and parked for a serving task.
    pub parked: u32,
    /// Parked connections a task took with [`AsyncPool::accept_from`] and the pool
    /// admitted (each is also counted in [`Counters::accepted`](crate::Counters)).
    pub served: u32,
    /// Parked connections the pool turned away when a task took them (port cap, no
    /// free slot: also counted in [`Counters::rejected`](crate::Counters)), released
    /// at once.
    pub refused: u32,
    /// Parked connections no task took within the backlog's wait: released (RST).
    pub expired: u32,
    /// Most connections ever parked at once in one backlog.
    pub high_water: u32,
}

impl BacklogCounters {
    /// All zero.
    pub const ZERO: BacklogCounters = BacklogCounters {
        parked: 0,
        served: 0,
        refused: 0,
        expired: 0,
        high_water: 0,
    };
}

/// A connection accepted by a worker and waiting for a task.
struct Entry<S> {
    socket: S,
    remote: SocketAddr,
    /// Order of arrival: tasks take the oldest first.
    seq: u32,
}

struct State<S, const K: usize> {
    /// Worker `i`'s parked connection.
    entries: [Option<Entry<S>>; K],
    /// Worker `i`, waiting for its parked connection to be taken.
    workers: [Option<Waker>; K],
    /// Tasks waiting in [`AsyncPool::accept_from`] (the first `K` of them).
    takers: [Option<Waker>; K],
    next_seq: u32,
}

impl<S, const K: usize> State<S, K> {
    fn waiting(&self) -> usize {
        self.entries.iter().filter(|e| e.is_some()).count()
    }

    /// The oldest parked connection, with the waker of the worker that parked it.
    fn take_oldest(&mut self) -> Option<(Entry<S>, Option<Waker>)> {
        let next = self.next_seq;
        let i = (0..K)
            .filter(|&i| self.entries[i].is_some())
            .max_by_key(|&i| self.entries[i].as_ref().map_or(0, |e| next.wrapping_sub(e.seq)))?;
        let entry = self.entries[i].take()?;
        Some((entry, self.workers[i].take()))
    }
}

/// Listening sockets kept armed beyond the tasks that serve, so a burst larger than
/// the serving tasks waits instead of being refused.
///
/// Stacks without a SYN queue of their own (embassy-net/smoltcp through
/// edge-nal-embassy: a socket in LISTEN absorbs one SYN, and a SYN that finds no
/// socket listening is answered with RST) refuse every connection that arrives while
/// all the tasks that would accept it are serving. A `Backlog` keeps `K` accepts
/// armed on the acceptor in a task of its own ([`run`](Self::run)); a connection they
/// accept is parked (at most `K`: a worker whose connection is parked does not
/// listen) until a serving task takes it with [`AsyncPool::accept_from`], or, when
/// no task took it within [`new`](Self::new)'s `wait`, released (RST) and counted.
/// Admission is the pool's, decided when a task takes the connection (port cap, free
/// slot, [`Config::reject`](crate::Config::reject)), exactly as for
/// [`AsyncPool::accept`]. What the backlogs did is counted in
/// [`AsyncPool::backlog_counters`].
///
/// Cost: `K` sockets more than the serving tasks hold (on edge-nal-embassy each
/// armed accept takes a socket and its buffers from `TcpBuffers`, so give it room for
/// the serving tasks' sockets, the backlog's `K` and a [`Closer`](super::Closer)'s),
/// `K` parked entries (a socket, an address, 4 bytes) and `2K` wakers here, and `K`
/// accept futures in `run`.
///
/// Each armed accept is given [`REARM`] and then armed again, so an accept the stack
/// leaves half-open (a SYN whose handshake never completes) cannot hold a worker for
/// ever. That alone cannot outlast a flood of such SYNs (each re-armed accept is
/// taken again at once); on embassy-net, arm the backlog on netpool's own acceptor,
/// `asynch::embassy::LeasedTcp` (feature `embassy-net`), which keeps the handshake
/// lease across the backlog's accepts. While no listener is registered for the port ([`AsyncPool::listen`]) the
/// workers do not arm; connections parked when the listener stops wait for a task
/// (which gets [`AcceptError::NotListening`](super::AcceptError::NotListening)) until
/// they expire.
///
/// As with [`Closer`](super::Closer), a `static` needs a `Send` socket type; keep a
/// backlog of edge-nal-embassy sockets in a `StaticCell` on the executor that owns
/// them (the Pico W furnace example does).
///
/// ```
/// # #[cfg(feature = "std")] {
/// use netpool::asynch::Backlog;
/// use netpool::Duration;
/// // Up to 4 connections accepted ahead of the serving tasks on port 80, each
/// // waiting at most 3 s for one.
/// static BACKLOG: Backlog<edge_nal_std::TcpSocket, 4> = Backlog::new(80, Duration::from_secs(3));
/// assert_eq!(BACKLOG.waiting(), 0);
/// # }
/// ```
pub struct Backlog<S, const K: usize> {
    state: Mutex<RefCell<State<S, K>>>,
    port: u16,
    wait: Duration,
}

/// How long one armed accept of a [`Backlog`] waits before it is armed again.
pub const REARM: Duration = Duration::from_secs(30);
/// While the port has no listener, a worker looks again after this long.
const UNLISTENED_RETRY: Duration = Duration::from_millis(100);
/// After an accept error that is not "try again", a worker waits this long.
const ACCEPT_FAILED_RETRY: Duration = Duration::from_millis(100);

impl<S, const K: usize> Backlog<S, K> {
    /// An empty backlog for the listener on `port`; a parked connection waits at most
    /// `wait` for a task.
    pub const fn new(port: u16, wait: Duration) -> Self {
        Backlog {
            state: Mutex::new(RefCell::new(State {
                entries: [const { None }; K],
                workers: [const { None }; K],
                takers: [const { None }; K],
                next_seq: 0,
            })),
            port,
            wait,
        }
    }

    /// The port whose listener this backlog serves.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How long a parked connection waits for a task.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Connections parked now.
    pub fn waiting(&self) -> usize {
        self.with(|s| s.waiting())
    }

    fn with<R>(&self, f: impl FnOnce(&mut State<S, K>) -> R) -> R {
        critical_section::with(|cs| f(&mut self.state.borrow_ref_mut(cs)))
    }

    /// Park worker `i`'s connection and wake the waiting tasks. Returns how many are
    /// parked now.
    fn park(&self, i: usize, socket: S, remote: SocketAddr) -> usize {
        let (waiting, takers) = self.with(|s| {
            let seq = s.next_seq;
            s.next_seq = seq.wrapping_add(1);
            s.entries[i] = Some(Entry { socket, remote, seq });
            let takers: [Option<Waker>; K] = core::array::from_fn(|t| s.takers[t].take());
            (s.waiting(), takers)
        });
        for w in takers.into_iter().flatten() {
            w.wake();
        }
        waiting
    }

    /// Take worker `i`'s parked connection back (not taken by a task).
    fn unpark(&self, i: usize) -> Option<S> {
        self.with(|s| s.entries[i].take()).map(|e| e.socket)
    }

    /// Resolves once worker `i`'s parked connection was taken.
    async fn taken(&self, i: usize) {
        poll_fn(|cx| {
            self.with(|s| {
                if s.entries[i].is_none() {
                    Poll::Ready(())
                } else {
                    s.workers[i] = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
        })
        .await
    }

    /// Take the oldest parked connection (waking the worker that parked it), or put
    /// `waker` in `place`.
    fn take_or_register(
        &self,
        place: &mut TakerPlace<'_, S, K>,
        waker: &Waker,
    ) -> Result<(SocketAddr, S), bool> {
        let (got, worker) = self.with(|s| match s.take_oldest() {
            Some((entry, worker)) => (Ok((entry.remote, entry.socket)), worker),
            None => (Err(place.register(s, waker)), None),
        });
        if let Some(w) = worker {
            w.wake();
        }
        got
    }

    /// The oldest parked connection, waiting for one until `deadline` (`None` then).
    pub(crate) async fn take<T: Timer>(&self, timer: &T, deadline: Instant) -> Option<(SocketAddr, S)> {
        let mut place = TakerPlace {
            backlog: self,
            at: None,
        };
        loop {
            let now = timer.now();
            if now >= deadline {
                return None;
            }
            let registered = poll_fn(|cx| Poll::Ready(self.take_or_register(&mut place, cx.waker()))).await;
            let registered = match registered {
                Ok(got) => {
                    place.clear();
                    return Some(got);
                }
                Err(registered) => registered,
            };
            // Nothing parked: wait for a park (woken) or the deadline; a task that found
            // no place for its waker (more than K tasks waiting) looks again shortly.
            let wake_at = if registered {
                deadline
            } else {
                (now + ACCEPT_RETRY).min(deadline)
            };
            let next = poll_fn(|cx| match self.take_or_register(&mut place, cx.waker()) {
                Ok(got) => Poll::Ready(got),
                Err(_) => Poll::Pending,
            });
            if let Either::First(got) = select(next, timer.at(wake_at)).await {
                place.clear();
                return Some(got);
            }
        }
    }
}

/// A waiting task's place among the backlog's wakers; left when dropped.
struct TakerPlace<'b, S, const K: usize> {
    backlog: &'b Backlog<S, K>,
    at: Option<(usize, Waker)>,
}

impl<S, const K: usize> TakerPlace<'_, S, K> {
    /// Put `waker` in this task's place (or a free one). `false`: none was free.
    fn register(&mut self, s: &mut State<S, K>, waker: &Waker) -> bool {
        // The place this task had, unless a park emptied it (and woke this task).
        let mine = self
            .at
            .as_ref()
            .filter(|(i, mine)| s.takers[*i].as_ref().is_some_and(|w| w.will_wake(mine)))
            .map(|(i, _)| *i);
        let Some(i) = mine.or_else(|| s.takers.iter().position(Option::is_none)) else {
            self.at = None;
            return false;
        };
        s.takers[i] = Some(waker.clone());
        self.at = Some((i, waker.clone()));
        true
    }

    fn clear(&mut self) {
        if let Some((i, mine)) = self.at.take() {
            self.backlog.with(|s| {
                if s.takers[i].as_ref().is_some_and(|w| w.will_wake(&mine)) {
                    s.takers[i] = None;
                }
            });
        }
    }
}

impl<S, const K: usize> Drop for TakerPlace<'_, S, K> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Worker `i`'s parked connection while it waits: taken back and dropped (closed by
/// the socket's drop) if the worker is dropped first.
struct Parked<'b, S, const K: usize> {
    backlog: &'b Backlog<S, K>,
    i: usize,
}

impl<S, const K: usize> Drop for Parked<'_, S, K> {
    fn drop(&mut self) {
        // Dropped outside the critical section.
        drop(self.backlog.unpark(self.i));
    }
}

impl<S: TcpShutdown, const K: usize> Backlog<S, K> {
    /// Keep `K` accepts armed on `acceptor` (listening on [`port`](Self::port), for
    /// `pool`), park what they accept for [`AsyncPool::accept_from`], release what
    /// waits longer than [`wait`](Self::wait); forever. Give it a task of its own.
    pub async fn run<'a, A, T, const N: usize, const L: usize>(
        &self,
        pool: &AsyncPool<N, L>,
        acceptor: &'a A,
        timer: &T,
    ) -> !
    where
        A: TcpAccept<Socket<'a> = S>,
        T: Timer,
    {
        let workers: [_; K] = core::array::from_fn(|i| self.worker(i, pool, acceptor, timer));
        embassy_futures::join::join_array(workers).await;
        // Workers never return.
        loop {
            timer.at(Instant::from_millis(u64::MAX)).await;
        }
    }

    async fn worker<'a, A, T, const N: usize, const L: usize>(
        &self,
        i: usize,
        pool: &AsyncPool<N, L>,
        acceptor: &'a A,
        timer: &T,
    ) where
        A: TcpAccept<Socket<'a> = S>,
        T: Timer,
    {
        // The first windows are staggered, so the workers are not all re-armed at once.
        let mut window = Duration::from_millis(REARM.as_millis() * (i as u64 + 1) / K as u64);
        loop {
            if pool.with(|t| t.core.listener_index(self.port)).is_none() {
                timer.at(timer.now() + UNLISTENED_RETRY).await;
                continue;
            }
            let accepted = with_deadline(timer, timer.now() + window, acceptor.accept()).await;
            window = REARM;
            let (remote, socket) = match accepted {
                Err(TimedOut) => continue,
                Ok(Err(e)) => {
                    let class = class_of(&e);
                    pool.with(|t| t.core.handle_accept_error(class));
                    let pause = if class.is_retry() {
                        ACCEPT_RETRY
                    } else {
                        ACCEPT_FAILED_RETRY
                    };
                    timer.at(timer.now() + pause).await;
                    continue;
                }
                Ok(Ok(accepted)) => accepted,
            };
            let expires = timer.now() + self.wait;
            let waiting = self.park(i, socket, remote);
            pool.with(|t| {
                let c = &mut t.backlog;
                c.parked = c.parked.wrapping_add(1);
                c.high_water = c.high_water.max(waiting as u32);
            });
            let parked = Parked { backlog: self, i };
            if let Either::Second(()) = select(self.taken(i), timer.at(expires)).await {
                if let Some(mut socket) = self.unpark(i) {
                    pool.with(|t| t.backlog.expired = t.backlog.expired.wrapping_add(1));
                    let within = pool.config().release_deadline;
                    let _ = with_deadline(timer, timer.now() + within, socket.abort()).await;
                }
            }
            drop(parked);
        }
    }
}
