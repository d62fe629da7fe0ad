//! # netpool
//!
//! A `no_std`, allocation-free TCP connection manager for firmware. netpool owns a
//! fixed number of connection slots on top of any stack that speaks
//! [embedded-nal](embedded_nal), and gets right the parts every embedded TCP server
//! eventually gets wrong: exhaustion, half-open peers, lingering closes, partial
//! writes and error handling.
//!
//! ## The model in two minutes
//!
//! - A [`Pool<S, N, L, TX>`](Pool) has `N` connection **slots** and `L` **listener**
//!   slots, fixed at compile time. A connection is named by a [`ConnHandle`]
//!   (slot + generation): a handle kept after its connection ended is refused
//!   ([`ConnError::Stale`]), never pointed at the next connection.
//! - Every slot is in a numbered [`ConnState`] (`Free` 0, `Connecting` 1, `Connected` 2,
//!   `OtherEndClosed` 3, `Aborted` 4; `ClosePending` 5, `CloseReady` 6 and `Allocated` 7
//!   are reserved for wire compatibility), stable for wire protocols.
//! - **You own time and the loop.** Call [`Pool::poll`] with `now` regularly; it accepts,
//!   connects, flushes, reaps. Then read, write, close. Nothing blocks, nothing spins.
//! - **Listeners** have a per-port cap; connections beyond it (or beyond the pool) are
//!   accepted and released at once, and counted — they never sit in the stack's backlog
//!   holding a PCB. One-shot listeners stop after their first connection.
//! - **Writes** return the bytes taken. `push == false` means MORE (coalesce),
//!   `push == true` means send now ([`mod@write`] module).
//! - **Errors** from any stack fold into one [`ErrorClass`] with one
//!   [`Disposition`]: retry, peer gone (→ `OtherEndClosed`, received data stays
//!   readable), or fatal (→ `Aborted`).
//! - **Close is immediate**: the slot is free on return, the stack finishes
//!   FIN/TIME-WAIT by itself.
//! - **Dead peers are reaped** from send progress ([`reaper`]); a slow peer that keeps
//!   draining never is.
//! - **The link is read, never probed** ([`LinkStatus`]): connects fail fast while it is down.
//! - **Diagnostics** ([`Pool::report`]) are a `Copy` snapshot, O(N), no I/O.
//! - Stacks can do more than embedded-nal says (abort, MORE flag, push, send queue,
//!   peer status): the [`stack`] module's extension traits, each with a fallback.
//! - **One core, two drivers.** Every decision above is made once, in a sans-IO
//!   connection core both drivers feed with what happened and `now`: the sync
//!   [`Pool`] and the async `asynch::AsyncPool` (feature `async`)
//!   only do the I/O. [`Pool::poll_at`] is exactly the core's next deadline.
//! - **Wire protocols** can own slot numbers: [`Pool::connect_at`] opens into a chosen
//!   slot, [`Config::hold_ended`] keeps a reaped connection visible until closed, and
//!   [`Pool::poll_event`] drains per-connection [`Event`]s.
//!
//! ```
//! use netpool::{Config, Instant, ListenParams, Pool};
//! use netpool::stack::Stack;
//!
//! /// An echo server's service loop, one pass.
//! fn serve<S: Stack>(pool: &mut Pool<S, 4, 1>, now: Instant) {
//!     pool.poll(now);
//!     let handles: heapless::Vec<_, 4> = pool.handles().collect();
//!     for h in handles {
//!         let mut buf = [0u8; 256];
//!         match pool.read(h, &mut buf, now) {
//!             Ok(n) => match pool.write(h, &buf[..n], true, now) {
//!                 // `taken` may be less than `n`: a real server keeps the rest for the
//!                 // next pass (examples/echo_server.rs does).
//!                 Ok(taken) => debug_assert!(taken <= n),
//!                 Err(_) => {} // would-block, or the peer is gone: the next read says
//!             },
//!             Err(nb::Error::WouldBlock) => {}
//!             Err(nb::Error::Other(_peer_gone_or_failed)) => {
//!                 let _ = pool.close(h, now);
//!             }
//!         }
//!     }
//! }
//! # fn setup<S: Stack>(stack: S) -> Result<(), netpool::ListenError> {
//! let mut pool: Pool<S, 4, 1> = Pool::new(stack, Config::new());
//! pool.listen(7, ListenParams::new(4))?;
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! - `std`: [`stack::std_net`], a host backend over OS sockets with a non-blocking
//!   connect, and `std::io::ErrorKind` classification. Implies `ipv6`.
//! - `ipv6`: slots keep IPv6 peers' addresses (18 instead of 6 bytes a slot). Without
//!   it an IPv6 peer is released at once and counted, and a connect to an IPv6
//!   address is refused ([`ConnectError::UnsupportedAddress`]).
//! - `defmt`: `defmt::Format` for every public report, state and error type.
//! - `async`: [`asynch`], the async driver over embedded-nal-async and edge-nal.
//! - `smoltcp`: [`stack::smoltcp`], the backend over a smoltcp `SocketSet` (no_std).
//!
//! ## Sharing
//!
//! The pool lives in one task; other tasks and cores use a [`PoolShare`] (atomics,
//! short critical sections, a command queue). See [`shared`].
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "async")]
pub mod asynch;
mod config;
pub mod error;
pub mod event;
mod handle;
pub mod link;
mod listener;
mod pool;
pub mod reaper;
mod report;
mod sansio;
pub mod shared;
pub mod stack;
pub mod state;
pub mod time;
pub mod write;

pub use config::{Config, RejectPolicy};
pub use error::{Classify, ConnError, ConnectError, Disposition, ErrorClass, ListenError, LwipErr};
pub use event::{Event, EventKind};
pub use handle::{CloseReason, ConnHandle, ListenerId};
pub use link::{LinkState, LinkStatus};
pub use listener::{ListenMode, ListenOutcome, ListenParams, Rejection};
pub use pool::{Accepted, PollSummary, Pool};
pub use report::{Counters, ListenerReport, Report, SlotReport};
pub use shared::{Command, PoolShare, SharedCounters};
pub use stack::PcbCounters;
pub use state::ConnState;
pub use time::{Duration, Instant};

/// Re-exported: the `nb` results every non-blocking call returns.
pub use embedded_nal::nb;

/// The README's examples are compiled and run as doc tests.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
