//! The background closer: FIN without holding a slot, RST at a deadline.

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use critical_section::Mutex;
use edge_nal::TcpShutdown;

use super::{with_deadline, Timer};
use crate::time::Duration;

/// What a [`Closer`] did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct CloserStats {
    /// Sockets handed over by [`Conn::close`](super::Conn::close).
    pub handed: u32,
    /// Closes the stack finished (FIN sent and the close completed) in time.
    pub finished: u32,
    /// Closes that did not finish by the deadline (or failed): aborted with RST.
    pub reset: u32,
    /// Sockets the closer had no room for: aborted by `close` at once.
    pub overflow: u32,
    /// Sockets closing now (queued or in progress).
    pub closing: u32,
    /// Most sockets ever closing at once.
    pub high_water: u32,
}

struct State<S, const K: usize> {
    queue: heapless::Deque<S, K>,
    /// Sockets taken by a worker and still closing.
    in_progress: usize,
    /// Idle workers waiting for a socket.
    waiters: [Option<Waker>; K],
    stats: CloserStats,
}

/// A bounded background closer for the async driver: up to `K` sockets closing at
/// once, each given [`linger`](Self::new) to finish its FIN, then reset.
///
/// Give it a task of its own that runs [`run`](Self::run) forever; connections
/// closed with [`Conn::close`](super::Conn::close) free their slot at once and
/// their socket finishes here. Memory: `K` sockets of type `S` in the queue plus `K`
/// close futures in `run`; on embassy-net each closing socket also keeps its TCP
/// buffers, so give edge-nal-embassy's `TcpBuffers` room for `N + K` sockets.
///
/// ```
/// # #[cfg(feature = "std")] {
/// use netpool::asynch::Closer;
/// use netpool::Duration;
/// // Up to 4 sockets closing at once, each given 2 s for its FIN.
/// static CLOSER: Closer<edge_nal_std::TcpSocket, 4> = Closer::new(Duration::from_secs(2));
/// assert_eq!(CLOSER.stats().closing, 0);
/// # }
/// ```
///
/// A `static` needs a `Sync` closer, so a `Send` socket type. With one that is not
/// `Send` (edge-nal-embassy's `TcpSocket` holds raw pointers into its stack), build the
/// closer with `new` (a plain `const fn`) in a `StaticCell` or any other `'static`
/// place on the executor that owns the sockets, and pass the `&'static Closer` to the
/// tasks that close and to the one that runs it: embassy-executor's `Spawner::spawn`
/// takes tasks whose arguments are not `Send`. Other threads then cannot reach it; if
/// they need the counters, copy [`stats`](Self::stats) out. The sockets it takes must
/// be `'static` as well: edge-nal-embassy's sockets borrow their `TcpAccept`, so that
/// needs a `'static` place too. The Pico W furnace example
/// (`examples/pico-w-furnace/src/net.rs`) does both.
pub struct Closer<S, const K: usize> {
    state: Mutex<RefCell<State<S, K>>>,
    linger: Duration,
}

impl<S, const K: usize> Closer<S, K> {
    /// An idle closer; each close gets `linger` before it is reset.
    pub const fn new(linger: Duration) -> Self {
        Closer {
            state: Mutex::new(RefCell::new(State {
                queue: heapless::Deque::new(),
                in_progress: 0,
                waiters: [const { None }; K],
                stats: CloserStats {
                    handed: 0,
                    finished: 0,
                    reset: 0,
                    overflow: 0,
                    closing: 0,
                    high_water: 0,
                },
            })),
            linger,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State<S, K>) -> R) -> R {
        critical_section::with(|cs| f(&mut self.state.borrow_ref_mut(cs)))
    }

    /// What the closer did so far.
    pub fn stats(&self) -> CloserStats {
        self.with(|s| {
            let mut stats = s.stats;
            stats.closing = (s.queue.len() + s.in_progress) as u32;
            stats
        })
    }

    /// Take `socket` if there is room (`K` closing at most); else hand it back.
    pub(crate) fn offer(&self, socket: S) -> Result<(), S> {
        let waiter = self.with(|s| {
            if s.queue.len() + s.in_progress >= K {
                s.stats.overflow = s.stats.overflow.wrapping_add(1);
                return Err(socket);
            }
            // Room was checked: the queue has at least one free place.
            let _ = s.queue.push_back(socket);
            s.stats.handed = s.stats.handed.wrapping_add(1);
            let closing = (s.queue.len() + s.in_progress) as u32;
            s.stats.high_water = s.stats.high_water.max(closing);
            Ok(s.waiters.iter_mut().find_map(Option::take))
        })?;
        if let Some(w) = waiter {
            w.wake();
        }
        Ok(())
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
                    s.waiters[id] = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
        })
        .await
    }
}

impl<S: TcpShutdown, const K: usize> Closer<S, K> {
    /// Close sockets as they come, `K` at a time, forever: FIN (and the stack's
    /// close) within the linger time, else RST (given 1 s more).
    pub async fn run<T: Timer>(&self, timer: &T) -> ! {
        let workers: [_; K] = core::array::from_fn(|id| self.worker(id, timer));
        embassy_futures::join::join_array(workers).await;
        // Workers never return.
        loop {
            timer.at(crate::time::Instant::from_millis(u64::MAX)).await;
        }
    }

    async fn worker<T: Timer>(&self, id: usize, timer: &T) {
        loop {
            let mut socket = self.next(id).await;
            // Counts the close as done even if `run` is dropped mid-close.
            let mut closing = Closing {
                closer: self,
                finished: false,
            };
            let graceful = with_deadline(
                timer,
                timer.now() + self.linger,
                socket.close(edge_nal::Close::Both),
            )
            .await;
            closing.finished = matches!(graceful, Ok(Ok(())));
            if !closing.finished {
                let _ = with_deadline(timer, timer.now() + Duration::from_secs(1), socket.abort()).await;
            }
            drop(socket);
            drop(closing);
        }
    }
}

/// One socket a worker is closing: leaves the closing count when dropped (the close
/// finished, or `run` was dropped mid-close), counted as finished or reset.
struct Closing<'c, S, const K: usize> {
    closer: &'c Closer<S, K>,
    finished: bool,
}

impl<S, const K: usize> Drop for Closing<'_, S, K> {
    fn drop(&mut self) {
        let finished = self.finished;
        self.closer.with(|s| {
            s.in_progress -= 1;
            if finished {
                s.stats.finished = s.stats.finished.wrapping_add(1);
            } else {
                s.stats.reset = s.stats.reset.wrapping_add(1);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use core::future::{pending, Future};
    use core::pin::pin;
    use core::task::{Context, Waker};

    use super::*;
    use crate::time::Instant;

    /// A socket whose graceful close never completes (a peer that never ACKs the FIN).
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

    /// A clock that stands still: no deadline ever passes.
    struct Still;

    impl Timer for Still {
        fn now(&self) -> Instant {
            Instant::ZERO
        }
        async fn at(&self, _: Instant) {
            pending().await
        }
    }

    #[test]
    fn a_run_dropped_mid_close_leaves_nothing_counted_as_closing() {
        let closer: Closer<Stuck, 2> = Closer::new(Duration::from_secs(2));
        assert!(closer.offer(Stuck).is_ok());
        {
            let mut run = pin!(closer.run(&Still));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(run.as_mut().poll(&mut cx).is_pending());
            assert_eq!(closer.stats().closing, 1, "the worker holds the socket");
        }
        let stats = closer.stats();
        assert_eq!((stats.closing, stats.handed, stats.reset), (0, 1, 1));
        // Both places are free again.
        assert!(closer.offer(Stuck).is_ok() && closer.offer(Stuck).is_ok());
        assert!(closer.offer(Stuck).is_err());
    }
}
