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
//!   `OtherEndClosed` 3, `Aborted` 4), stable for wire protocols; the numbers 5, 6 and
//!   7 are reserved.
//! - **You own time and the loop.** Call [`Pool::poll`] with `now` regularly; it accepts,
//!   connects, flushes, reaps. Then read, write, close. Nothing blocks, nothing spins.
//! - **Listeners** have a per-port cap; connections beyond it (or beyond the pool) are
//!   accepted and released at once, and counted — they never sit in the stack's backlog
//!   holding a PCB. One-shot listeners stop after their first connection.
//! - **Writes** return the bytes taken. `push == false` means MORE (coalesce),
//!   `push == true` means send now ([Writes](#writes-more-and-push)).
//! - **Errors** from any stack fold into one [`ErrorClass`] with one
//!   [`Disposition`]: retry, peer gone (→ `OtherEndClosed`, received data stays
//!   readable), or fatal (→ `Aborted`).
//! - **Close is immediate**: the slot is free on return, the stack finishes
//!   FIN/TIME-WAIT by itself.
//! - **Dead peers are reaped** from send progress ([Dead peers](#dead-peers)); a slow
//!   peer that keeps draining never is.
//! - **The link is read, never probed** ([`LinkStatus`](stack::LinkStatus)): connects fail fast while it is down.
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
//! ## Writes: MORE and push
//!
//! [`Pool::write`]`(handle, bytes, push, now)` returns the number of bytes *taken*,
//! never the number requested. `push == false` means MORE ("more data follows, you
//! may coalesce"); `push == true` means send now. A write that can make no progress
//! returns `WouldBlock` at once: netpool never retries inside a write.
//!
//! How MORE reaches the wire depends on the stack:
//!
//! - A stack with [`TcpSendFlags`](stack::TcpSendFlags) gets the flag itself:
//!   [`SendFlag::More`](stack::SendFlag::More) exactly when `push` is false,
//!   [`SendFlag::Push`](stack::SendFlag::Push) when it is true.
//! - A plain embedded-nal stack gets coalescing inside netpool: MORE bytes gather in a
//!   per-slot buffer of `TX` bytes, handed to the stack on push, when the buffer fills,
//!   when [`Config::coalesce_delay`] expires, and on close.
//!
//! Bytes taken into the buffer are bytes the stack will send: netpool hands them over
//! before anything written later. A push counts only bytes that reached the stack, so
//! after a push whose bytes were all taken, netpool's buffer is empty and a close
//! loses nothing ([`Pool::write_and_close`] relies on this). The one way to lose taken
//! bytes is to close right after MORE writes while the stack refuses them: the close
//! is still immediate, and those bytes are counted in
//! [`Counters::dropped_on_close`]. End a message with a push (or [`Pool::flush`]
//! until it succeeds) before closing.
//!
//! On a stack with a native flag, bytes sent with MORE belong to the stack, which
//! sends them on the next push or after its own coalescing delay (Linux: 200 ms).
//! [`Pool::flush`] asks it to send them now through [`TcpPush`](stack::TcpPush) (lwIP
//! `tcp_output`; Linux: a zero-byte send without `MSG_MORE`), so an application that
//! ends a message late does not need to keep a byte back to carry the push.
//!
//! ## Dead peers
//!
//! A peer that vanished without FIN or RST leaves the connection looking healthy:
//! nothing fails, the bytes just stop moving. The pool watches *send progress*, never
//! application-level acknowledgements:
//!
//! - with [`TcpSendQueue`](stack::TcpSendQueue), progress is a rise in the bytes the
//!   peer acknowledged (bytes handed to the stack minus its send queue);
//! - without it (the fallback), progress is the stack taking bytes at all.
//!
//! A connection is *stalled* when bytes are pending (in the stack's queue, in netpool's
//! coalescing buffer, or refused at the last write) and there has been no progress for
//! [`Config::stall_grace`]; it is then reaped (aborted, [`CloseReason::Stalled`]). A
//! slow peer that keeps draining makes progress within every grace period and is never
//! reaped. The pool reads progress on its own timer: [`Pool::poll_at`] includes the
//! next reading.
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
//! - `embassy-net`: `asynch::embassy`, netpool's own accept over embassy-net 0.9
//!   sockets, which keeps the handshake lease. Implies `async`.
//! - `smoltcp`: [`stack::smoltcp`], the backend over a smoltcp `SocketSet` (no_std).
//!
//! ## Sharing
//!
//! The pool lives in one task; other tasks and cores use a [`PoolShare`](shared::PoolShare) (atomics,
//! short critical sections, a command queue). See [`shared`].
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "async")]
pub mod asynch;
mod class;
mod config;
mod error;
mod event;
mod handle;
mod link;
mod listener;
mod pool;
mod report;
mod sansio;
pub mod shared;
pub mod stack;
mod state;
mod time;
mod write;

pub use config::{Config, RejectPolicy};
pub use error::{Classify, ConnError, ConnectError, Disposition, ErrorClass, ListenError};
pub use event::{Event, EventKind};
pub use handle::{CloseReason, ConnHandle, ListenerId};
pub use link::LinkState;
pub use listener::{ListenMode, ListenOutcome, ListenParams, Rejection};
pub use pool::{Accepted, PollSummary, Pool};
pub use report::{CloserCounters, Counters, ListenerReport, Report, SlotReport};
pub use stack::PcbCounters;
pub use state::{ConnState, InvalidState};
pub use time::{Duration, Instant};

/// Re-exported: the `nb` results every non-blocking call returns.
pub use embedded_nal::nb;

/// The README's examples are compiled and run as doc tests.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
