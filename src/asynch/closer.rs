//! The background closer: FIN without holding a slot, RST at a deadline, and the one
//! policy for a close that finds it full.

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use critical_section::Mutex;
use edge_nal::TcpShutdown;

use super::{with_deadline, AsyncPool, Timer};
use crate::report::CloserCounters;
use crate::time::Instant;

struct State<S, const K: usize> {
    queue: heapless::Deque<S, K>,
    /// Sockets taken by a worker and still closing.
    in_progress: usize,
    /// Idle workers waiting for a socket.
    workers: [Option<Waker>; K],
    /// Closes waiting for a place, woken when one frees, each with its ticket.
    room: [Option<(u32, Waker)>; K],
    /// The ticket of the next close that waits.
    tickets: u32,
}

impl<S, const K: usize> State<S, K> {
    fn busy(&self) -> usize {
        self.queue.len() + self.in_progress
    }
}

/// A bounded background closer for the async driver: up to `K` sockets closing at
/// once, each given [`Config::close_linger`](crate::Config::close_linger) to finish
/// its FIN, then reset.
///
/// Give it a task of its own that runs [`run`](Self::run) forever, with the pool
/// whose connections it closes; connections closed with
/// [`Conn::close`](super::Conn::close) free their slot at once and their socket
/// finishes here. What it did is in the pool's counters
/// ([`AsyncPool::closer_counters`], [`Report::closer`](crate::Report::closer)).
///
/// When all `K` places are busy, a close waits for one (up to `K` closes wait; each is
/// woken when a place frees) at most `close_linger` +
/// [`release_deadline`](crate::Config::release_deadline), the longest any close in
/// the closer can take; only a close that finds no place by then, or finds `K` closes
/// already waiting, resets its connection (counted in
/// [`CloserCounters::overflow`](crate::CloserCounters::overflow)).
///
/// Memory: `K` sockets of type `S` in the queue, `2 K` wakers, plus `K` close
/// futures in `run`; on embassy-net each closing socket also keeps its TCP buffers,
/// so give edge-nal-embassy's `TcpBuffers` room for `N + K` sockets.
///
/// ```
/// # #[cfg(feature = "std")] {
/// use netpool::asynch::{AsyncPool, Closer};
/// use netpool::{Config, Duration};
/// // Each closed connection gets 2 s to finish its FIN.
/// static POOL: AsyncPool<8> = AsyncPool::new(Config::new().with_close_linger(Duration::from_secs(2)));
/// // Up to 4 sockets closing at once.
/// static CLOSER: Closer<edge_nal_std::TcpSocket, 4> = Closer::new();
/// assert_eq!(CLOSER.closing(), 0);
/// assert_eq!(POOL.closer_counters().handed, 0);
/// # }
/// ```
///
/// A `static` needs a `Sync` closer, so a `Send` socket type. With one that is not
/// `Send` (edge-nal-embassy's `TcpSocket` holds raw pointers into its stack), build the
/// closer with `new` (a plain `const fn`) in a `StaticCell` or any other `'static`
/// place on the executor that owns the sockets, and pass the `&'static Closer` to the
/// tasks that close and to the one that runs it: embassy-executor's `Spawner::spawn`
/// takes tasks whose arguments are not `Send`. The sockets it takes must be `'static`
/// as well: edge-nal-embassy's sockets borrow their `TcpAccept`, so that needs a
/// `'static` place too. The Pico W furnace example (`examples/pico-w-furnace/src/net.rs`)
/// does both.
pub struct Closer<S, const K: usize> {
    state: Mutex<RefCell<State<S, K>>>,
}

impl<S, const K: usize> Default for Closer<S, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S, const K: usize> Closer<S, K> {
    /// An idle closer.
    pub const fn new() -> Self {
        Closer {
            state: Mutex::new(RefCell::new(State {
                queue: heapless::Deque::new(),
                in_progress: 0,
                workers: [const { None }; K],
                room: [const { None }; K],
                tickets: 0,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State<S, K>) -> R) -> R {
        critical_section::with(|cs| f(&mut self.state.borrow_ref_mut(cs)))
    }

    /// Sockets closing now (queued or in progress), at most `K`.
    pub fn closing(&self) -> usize {
        self.with(|s| s.busy())
    }

    /// Take `socket` if there is room (`K` closing at most); else hand it back.
    fn offer(&self, socket: S) -> Result<(), S> {
        let worker = self.with(|s| {
            if s.busy() >= K {
                return Err(socket);
            }
            // Room was checked: the queue has at least one free place.
            let _ = s.queue.push_back(socket);
            Ok(s.workers.iter_mut().find_map(Option::take))
        })?;
        if let Some(w) = worker {
            w.wake();
        }
        Ok(())
    }

    /// Hand `socket` over for `pool`'s counters: at once if a place is free, else
    /// after waiting for one until `until`. `Err(socket)` when none freed in time
    /// (or `K` closes already wait): the caller resets it.
    pub(super) async fn hand_over<T: Timer, const N: usize, const L: usize>(
        &self,
        socket: S,
        pool: &AsyncPool<N, L>,
        timer: &T,
        until: Instant,
    ) -> Result<(), S> {
        let mut socket = socket;
        let mut waited = false;
        loop {
            match self.offer(socket) {
                Ok(()) => {
                    pool.note_closer(CloserCounters::note_handed);
                    return Ok(());
                }
                // Full (or another close took the freed place first): wait for one.
                Err(back) => socket = back,
            }
            if !waited {
                waited = true;
                pool.note_closer(|c| c.waited = c.waited.wrapping_add(1));
            }
            if with_deadline(timer, until, self.place()).await != Ok(true) {
                pool.note_closer(|c| c.overflow = c.overflow.wrapping_add(1));
                return Err(socket);
            }
        }
    }

    /// Until a place is free: `true`; `false` when `K` other closes already wait.
    async fn place(&self) -> bool {
        let mut waiting = Waiting {
            closer: self,
            at: None,
        };
        poll_fn(|cx| {
            self.with(|s| {
                if s.busy() < K {
                    return Poll::Ready(true);
                }
                // Still registered (no place freed since): keep the newest waker.
                if let Some((at, ticket)) = waiting.at {
                    if let Some((t, waker)) = &mut s.room[at] {
                        if *t == ticket {
                            waker.clone_from(cx.waker());
                            return Poll::Pending;
                        }
                    }
                }
                let Some(at) = s.room.iter().position(Option::is_none) else {
                    return Poll::Ready(false);
                };
                let ticket = s.tickets;
                s.tickets = s.tickets.wrapping_add(1);
                s.room[at] = Some((ticket, cx.waker().clone()));
                waiting.at = Some((at, ticket));
                Poll::Pending
            })
        })
        .await
    }

    /// The next socket to close, for worker `id`.
    async fn next(&self, id: usize) -> S {
        poll_fn(|cx| {
            self.with(|s| match s.queue.pop_front() {
                Some(socket) => {
                    s.in_progress += 1;
                    Poll::Ready(socket)
                }
                None => {
                    s.workers[id] = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
        })
        .await
    }

    /// A worker is done with a socket: its place is free; wake the closes waiting for
    /// one (each looks again; those that find none wait on).
    fn release_place(&self) {
        let waiting: [Option<(u32, Waker)>; K] = self.with(|s| {
            s.in_progress -= 1;
            core::array::from_fn(|i| s.room[i].take())
        });
        for (_, w) in waiting.into_iter().flatten() {
            w.wake();
        }
    }
}

/// A close waiting for a place: takes its waker out when it stops waiting (a place
/// freed, or its deadline passed), unless a freed place already took it (and another
/// close may have registered there since).
struct Waiting<'c, S, const K: usize> {
    closer: &'c Closer<S, K>,
    /// Where it registered, with its ticket.
    at: Option<(usize, u32)>,
}

impl<S, const K: usize> Drop for Waiting<'_, S, K> {
    fn drop(&mut self) {
        if let Some((at, ticket)) = self.at {
            self.closer.with(|s| {
                if s.room[at].as_ref().is_some_and(|(t, _)| *t == ticket) {
                    s.room[at] = None;
                }
            });
        }
    }
}

impl<S: TcpShutdown, const K: usize> Closer<S, K> {
    /// Close sockets as they come, `K` at a time, forever, counting in `pool`'s
    /// [`closer_counters`](AsyncPool::closer_counters): FIN (and the stack's close)
    /// within [`Config::close_linger`](crate::Config::close_linger), else RST (given
    /// [`Config::release_deadline`](crate::Config::release_deadline) more).
    pub async fn run<T: Timer, const N: usize, const L: usize>(
        &self,
        pool: &AsyncPool<N, L>,
        timer: &T,
    ) -> ! {
        let workers: [_; K] = core::array::from_fn(|id| self.worker(id, pool, timer));
        embassy_futures::join::join_array(workers).await;
        // Workers never return.
        loop {
            timer.at(crate::time::Instant::from_millis(u64::MAX)).await;
        }
    }

    async fn worker<T: Timer, const N: usize, const L: usize>(
        &self,
        id: usize,
        pool: &AsyncPool<N, L>,
        timer: &T,
    ) {
        loop {
            let mut socket = self.next(id).await;
            // Counts the close as done even if `run` is dropped mid-close.
            let mut closing = Closing {
                closer: self,
                pool,
                finished: false,
            };
            let config = pool.config();
            let graceful = with_deadline(
                timer,
                timer.now() + config.close_linger,
                socket.close(edge_nal::Close::Both),
            )
            .await;
            closing.finished = matches!(graceful, Ok(Ok(())));
            if !closing.finished {
                let _ = with_deadline(timer, timer.now() + config.release_deadline, socket.abort()).await;
            }
            drop(socket);
            drop(closing);
        }
    }
}

/// One socket a worker is closing: leaves the closing count when dropped (the close
/// finished, or `run` was dropped mid-close), counted as finished or reset.
struct Closing<'c, 'p, S, const K: usize, const N: usize, const L: usize> {
    closer: &'c Closer<S, K>,
    pool: &'p AsyncPool<N, L>,
    finished: bool,
}

impl<S, const K: usize, const N: usize, const L: usize> Drop for Closing<'_, '_, S, K, N, L> {
    fn drop(&mut self) {
        let finished = self.finished;
        self.pool.note_closer(|c| c.note_ended(finished));
        self.closer.release_place();
    }
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;
    use core::future::{pending, Future};
    use core::pin::pin;
    use core::task::{Context, Waker};

    use super::*;
    use crate::config::Config;
    use crate::time::Duration;

    /// A socket whose graceful close never completes (a peer that never ACKs the FIN).
    #[derive(Debug, PartialEq)]
    struct Stuck;

    impl embedded_io_async::ErrorType for Stuck {
        type Error = embedded_io_async::ErrorKind;
    }

    impl TcpShutdown for Stuck {
        async fn close(&mut self, _: edge_nal::Close) -> Result<(), Self::Error> {
            pending().await
        }
        async fn abort(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// A socket whose close and abort both never complete (a stack that is stuck).
    struct Unresponsive;

    impl embedded_io_async::ErrorType for Unresponsive {
        type Error = embedded_io_async::ErrorKind;
    }

    impl TcpShutdown for Unresponsive {
        async fn close(&mut self, _: edge_nal::Close) -> Result<(), Self::Error> {
            pending().await
        }
        async fn abort(&mut self) -> Result<(), Self::Error> {
            pending().await
        }
    }

    /// A socket whose graceful close fails at once (the peer reset it); its abort works.
    struct Refused;

    impl embedded_io_async::ErrorType for Refused {
        type Error = embedded_io_async::ErrorKind;
    }

    impl TcpShutdown for Refused {
        async fn close(&mut self, _: edge_nal::Close) -> Result<(), Self::Error> {
            Err(embedded_io_async::ErrorKind::ConnectionReset)
        }
        async fn abort(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// A clock the test moves; `at` completes once it has reached the deadline, and
    /// the deadlines asked for are kept.
    #[derive(Default)]
    struct Manual {
        now: Cell<u64>,
        asked: core::cell::RefCell<heapless::Vec<u64, 16>>,
    }

    impl Manual {
        fn set(&self, ms: u64) {
            self.now.set(ms);
        }
    }

    impl Timer for Manual {
        fn now(&self) -> Instant {
            Instant::from_millis(self.now.get())
        }
        async fn at(&self, deadline: Instant) {
            let _ = self.asked.borrow_mut().push(deadline.as_millis());
            poll_fn(|_| {
                if self.now.get() >= deadline.as_millis() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await
        }
    }

    fn poll<F: Future>(f: core::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn config() -> Config {
        Config::new()
            .with_close_linger(Duration::from_millis(2_000))
            .with_release_deadline(Duration::from_millis(500))
    }

    #[test]
    fn a_run_dropped_mid_close_leaves_nothing_counted_as_closing() {
        let pool: AsyncPool<2> = AsyncPool::new(config());
        let closer: Closer<Stuck, 2> = Closer::new();
        let timer = Manual::default();
        assert!(poll(pin!(closer.hand_over(Stuck, &pool, &timer, Instant::ZERO))).is_ready());
        {
            let mut run = pin!(closer.run(&pool, &timer));
            assert!(poll(run.as_mut()).is_pending());
            assert_eq!(closer.closing(), 1, "the worker holds the socket");
            assert_eq!(pool.closer_counters().closing, 1);
        }
        let c = pool.closer_counters();
        assert_eq!((c.closing, c.handed, c.reset, c.finished), (0, 1, 1, 0));
        assert_eq!(closer.closing(), 0, "both places are free again");
    }

    #[test]
    fn a_close_is_given_the_configs_linger_then_the_release_deadline_for_its_reset() {
        let pool: AsyncPool<2> = AsyncPool::new(config());
        let closer: Closer<Unresponsive, 1> = Closer::new();
        let timer = Manual::default();
        timer.set(1_000);
        assert!(poll(pin!(closer.hand_over(Unresponsive, &pool, &timer, Instant::ZERO))).is_ready());
        let mut run = pin!(closer.run(&pool, &timer));
        assert!(poll(run.as_mut()).is_pending());
        assert_eq!(timer.asked.borrow().as_slice(), &[3_000], "linger from Config");
        timer.set(2_999);
        assert!(poll(run.as_mut()).is_pending());
        assert_eq!(timer.asked.borrow().len(), 1, "no reset before the linger");
        timer.set(3_000);
        assert!(poll(run.as_mut()).is_pending());
        assert_eq!(
            timer.asked.borrow()[1],
            3_500,
            "the reset is given the release deadline"
        );
        assert_eq!(pool.closer_counters().closing, 1);
        timer.set(3_500);
        assert!(poll(run.as_mut()).is_pending());
        let c = pool.closer_counters();
        assert_eq!((c.handed, c.reset, c.closing, c.high_water), (1, 1, 0, 1));
    }

    #[test]
    fn a_close_that_finds_the_closer_full_waits_for_a_place_and_is_handed_over_when_one_frees() {
        let pool: AsyncPool<2> = AsyncPool::new(config());
        let closer: Closer<Stuck, 1> = Closer::new();
        let timer = Manual::default();
        assert!(poll(pin!(closer.hand_over(Stuck, &pool, &timer, Instant::ZERO))).is_ready());
        let mut run = pin!(closer.run(&pool, &timer));
        assert!(poll(run.as_mut()).is_pending());

        let mut waiting = pin!(closer.hand_over(Stuck, &pool, &timer, Instant::from_millis(2_500)));
        assert!(poll(waiting.as_mut()).is_pending(), "the only place is busy");
        assert_eq!(pool.closer_counters().waited, 1);
        timer.set(2_000); // the first close's linger ends: reset, its place frees
        assert!(poll(run.as_mut()).is_pending());
        assert_eq!(
            poll(waiting.as_mut()),
            Poll::Ready(Ok(())),
            "handed over, not reset"
        );
        let c = pool.closer_counters();
        assert_eq!((c.handed, c.waited, c.overflow, c.closing), (2, 1, 0, 1));
    }

    #[test]
    fn a_close_that_finds_no_place_by_its_deadline_is_given_back_and_counted_as_overflow() {
        let pool: AsyncPool<2> = AsyncPool::new(config());
        let closer: Closer<Stuck, 1> = Closer::new();
        let timer = Manual::default();
        assert!(poll(pin!(closer.hand_over(Stuck, &pool, &timer, Instant::ZERO))).is_ready());
        // No `run`: the place never frees.
        let mut waiting = pin!(closer.hand_over(Stuck, &pool, &timer, Instant::from_millis(2_500)));
        assert!(poll(waiting.as_mut()).is_pending());
        timer.set(2_499);
        assert!(poll(waiting.as_mut()).is_pending(), "not before its deadline");
        timer.set(2_500);
        assert!(matches!(poll(waiting.as_mut()), Poll::Ready(Err(Stuck))));
        let c = pool.closer_counters();
        assert_eq!((c.handed, c.waited, c.overflow), (1, 1, 1));
        assert!(
            closer.with(|s| s.room.iter().all(Option::is_none)),
            "its waker is gone"
        );
    }

    #[test]
    fn a_close_that_fails_is_counted_as_reset_not_finished() {
        let pool: AsyncPool<2> = AsyncPool::new(config());
        let closer: Closer<Refused, 1> = Closer::new();
        let timer = Manual::default();
        assert!(poll(pin!(closer.hand_over(Refused, &pool, &timer, Instant::ZERO))).is_ready());
        let mut run = pin!(closer.run(&pool, &timer));
        assert!(poll(run.as_mut()).is_pending());
        let c = pool.closer_counters();
        assert_eq!((c.handed, c.finished, c.reset, c.closing), (1, 0, 1, 0));
    }

    #[test]
    fn no_more_than_k_closes_wait_for_a_place() {
        let pool: AsyncPool<4> = AsyncPool::new(config());
        let closer: Closer<Stuck, 1> = Closer::new();
        let timer = Manual::default();
        let until = Instant::from_millis(2_500);
        assert!(poll(pin!(closer.hand_over(Stuck, &pool, &timer, until))).is_ready());
        let mut first = pin!(closer.hand_over(Stuck, &pool, &timer, until));
        assert!(poll(first.as_mut()).is_pending());
        let second = poll(pin!(closer.hand_over(Stuck, &pool, &timer, until)));
        assert!(
            matches!(second, Poll::Ready(Err(Stuck))),
            "K = 1 close already waits"
        );
        let c = pool.closer_counters();
        assert_eq!((c.waited, c.overflow), (2, 1));
    }
}
