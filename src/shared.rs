//! Sharing a pool between tasks and cores.
//!
//! A [`Pool`] owns its stack, and every stack call is I/O, so the pool lives in
//! exactly one task: the network task. Other tasks and cores never lock the pool.
//! They talk to it through a [`PoolShare`], a `static` that holds
//!
//! - the **counters**, as atomics the network task *stores* (never `fetch_add`: the
//!   ESP8266 has no compare-and-swap) and anyone *loads* without a lock;
//! - the latest **report**, in a `critical_section::Mutex<RefCell<…>>`: the network
//!   task copies it in, readers copy it out, O(N) each, no I/O inside;
//! - a small **command queue** (close, abort, listen) in another
//!   `critical_section::Mutex<RefCell<…>>`: O(1) push, applied by the network task
//!   at its next [`Pool::poll_shared`]. A full queue hands the command back.
//!
//! ```
//! use netpool::shared::{Command, PoolShare};
//! use netpool::{Instant, ListenParams};
//! // Sized like the pool: 8 connections, 2 listeners; room for 4 queued commands.
//! static SHARE: PoolShare<8, 2, 4> = PoolShare::new();
//!
//! // Any task, any core, never blocked by network I/O:
//! let accepted = SHARE.counters().accepted;
//! let report = SHARE.report(); // Option<Report<8, 2>>: None until first published
//! SHARE.post(Command::Listen { port: 80, params: ListenParams::new(0) }).ok(); // stop port 80
//! # let _ = (accepted, report);
//! // The network task: `pool.poll_shared(now, &SHARE)` instead of `pool.poll(now)`.
//! ```

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};

use critical_section::Mutex;
use heapless::Deque;

use crate::handle::ConnHandle;
use crate::listener::ListenParams;
use crate::pool::{PollSummary, Pool};
use crate::report::{Counters, Report};
use crate::stack::Stack;
use crate::time::Instant;

/// A request from another task, applied by the network task.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Command {
    /// [`Pool::close`].
    Close(ConnHandle),
    /// [`Pool::abort`].
    Abort(ConnHandle),
    /// [`Pool::listen`] (`max_conns == 0` stops the port).
    Listen {
        /// Port.
        port: u16,
        /// Parameters.
        params: ListenParams,
    },
}

macro_rules! define_shared_counters {
    ($($field:ident: $doc:literal,)*) => {
        /// [`Counters`] as atomics: one writer (the network task) *stores*, any number
        /// of readers *load*. Needs only 32-bit atomic loads and stores, which every
        /// target netpool supports (thumbv6m and the ESP8266 included).
        #[derive(Debug, Default)]
        pub struct SharedCounters {
            $($field: AtomicU32,)*
        }

        impl SharedCounters {
            /// All zero.
            pub const fn new() -> Self {
                SharedCounters { $($field: AtomicU32::new(0),)* }
            }

            /// Store a snapshot (single writer: a plain store, no read-modify-write).
            pub fn store(&self, c: &Counters) {
                $(self.$field.store(c.$field, Ordering::Relaxed);)*
            }

            /// Load a snapshot, lock-free. Fields are loaded one by one: a reader
            /// racing the writer may see a mix of two consecutive snapshots.
            pub fn load(&self) -> Counters {
                let mut c = Counters::ZERO;
                $(c.$field = self.$field.load(Ordering::Relaxed);)*
                c
            }
        }
    };
}
crate::report::counter_fields!(define_shared_counters);

/// What other tasks see of a pool `Pool<_, N, L, _>`, with room for `Q` commands.
/// Put it in a `static`; see the [module docs](self).
pub struct PoolShare<const N: usize, const L: usize, const Q: usize> {
    counters: SharedCounters,
    report: Mutex<RefCell<Option<Report<N, L>>>>,
    commands: Mutex<RefCell<Deque<Command, Q>>>,
}

impl<const N: usize, const L: usize, const Q: usize> PoolShare<N, L, Q> {
    /// Empty: zero counters, no report, no commands.
    pub const fn new() -> Self {
        PoolShare {
            counters: SharedCounters::new(),
            report: Mutex::new(RefCell::new(None)),
            commands: Mutex::new(RefCell::new(Deque::new())),
        }
    }

    /// The counters as last published. Lock-free.
    pub fn counters(&self) -> Counters {
        self.counters.load()
    }

    /// The report as last published (copied out in a short critical section).
    pub fn report(&self) -> Option<Report<N, L>> {
        critical_section::with(|cs| *self.report.borrow(cs).borrow())
    }

    /// Queue a command for the network task. A full queue hands the command back.
    pub fn post(&self, command: Command) -> Result<(), Command> {
        critical_section::with(|cs| self.commands.borrow(cs).borrow_mut().push_back(command))
    }

    fn take_command(&self) -> Option<Command> {
        critical_section::with(|cs| self.commands.borrow(cs).borrow_mut().pop_front())
    }

    fn publish(&self, report: Report<N, L>) {
        self.counters.store(&report.counters);
        critical_section::with(|cs| *self.report.borrow(cs).borrow_mut() = Some(report));
    }
}

impl<const N: usize, const L: usize, const Q: usize> Default for PoolShare<N, L, Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Stack, const N: usize, const L: usize, const TX: usize> Pool<S, N, L, TX> {
    /// [`poll`](Self::poll), plus: apply the commands other tasks posted to `share`
    /// (each taken in its own short critical section, applied outside it), then
    /// publish the counters and report. Command errors (stale handles, a full
    /// listener table) are dropped: the report shows the outcome.
    pub fn poll_shared<const Q: usize>(&mut self, now: Instant, share: &PoolShare<N, L, Q>) -> PollSummary {
        // Bounded: at most Q commands per poll, even if others keep posting.
        for _ in 0..Q {
            let Some(command) = share.take_command() else {
                break;
            };
            match command {
                Command::Close(h) => {
                    let _ = self.close(h, now);
                }
                Command::Abort(h) => {
                    let _ = self.abort(h, now);
                }
                Command::Listen { port, params } => {
                    let _ = self.listen(port, params);
                }
            }
        }
        let summary = self.poll(now);
        share.publish(self.report(now));
        summary
    }
}
