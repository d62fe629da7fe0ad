//! # netpool-lwip
//!
//! The lwIP backend of [netpool]: [`LwipStack`], an embedded-nal
//! [`TcpFullStack`](embedded_nal::TcpFullStack) over lwIP's raw TCP API with every
//! netpool extension trait native, for firmware that runs lwIP (ESP8266 RTOS SDK,
//! ESP-IDF, the Pico SDK's `pico_cyw43_arch_lwip_*`).
//!
//! The default features are what a firmware uses: the backend alone, against the
//! firmware's own lwIP. With feature `bundled` (off by default), the crate compiles real lwIP —
//! the C sources shipped by the `lwip` crate on crates.io, lwIP
//! `LWIP_VERSION` — for the host, configured like the ESP8266 bridge of the
//! incident that motivated netpool (10 TCP PCBs, MSS 1460, 7300-byte send buffer and
//! window, listen backlog 8; `c/lwipopts.h`), with `sys_now()` driven by the
//! simulation's virtual clock. Feature `sim` joins that lwIP to netpool-testkit's
//! in-memory network (module `sim`), so the smoltcp peers of `netpool_testkit::sim`
//! (pollers, an uploader, half-open clients) talk to a netpool server running on real
//! lwIP.
//!
//! # The model
//!
//! | embedded-nal / netpool | lwIP raw API |
//! |---|---|
//! | `socket` | `tcp_new` (may reclaim a TIME-WAIT PCB or `tcp_kill_prio` a lower-priority connection) |
//! | `bind`, `listen` | `tcp_bind`, `tcp_listen_with_backlog` ([`LwipStack::with_backlog`], default 8) |
//! | `accept` | pops a connection the accept callback queued (`tcp_backlog_delayed` there, `tcp_backlog_accepted` here) |
//! | `connect` | `tcp_connect`; `WouldBlock` until the connected callback |
//! | `send_flagged(More)` / `send_flagged(Push)`, `send` | `tcp_write(COPY \| MORE)` / `tcp_write(COPY)` + `tcp_output` |
//! | `receive` | copies out of the pbufs the recv callback queued, then `tcp_recved` |
//! | `close` / `abort` | `tcp_close` / `tcp_abort` |
//! | `send_queue` | `TCP_SND_BUF - tcp_sndbuf` |
//! | `peer_status` | recv callback's FIN, err callback |
//!
//! * **Callbacks feed a table, the application reads it.** lwIP calls back from inside
//!   `tcp_input` and its timers; the callbacks only record (queue a pbuf, note a FIN,
//!   queue an accepted connection, note that lwIP freed a PCB). Callback arguments are
//!   table indices (`tcp_arg`), never pointers to Rust objects.
//! * **A PCB lwIP freed is never touched.** lwIP frees a PCB on its own only through
//!   the err callback (a reset, a retransmission timeout, `tcp_kill_prio` reclaiming it
//!   for a newcomer: `ERR_ABRT`). The callback marks the socket dead before anything
//!   else runs; every later call on it reports the error (after the data received
//!   before it, which stays readable).
//! * **Received data is queued per connection** as the pbuf chain lwIP delivered,
//!   until read; it stays readable after the peer's FIN, and `receive` returns `Ok(0)`
//!   only once it is drained (netpool's end-of-stream convention). The window opens
//!   (`tcp_recved`) as the application reads.
//! * **MORE/push.** `TCP_WRITE_FLAG_MORE` is passed exactly when the pool says MORE
//!   (then lwIP sets no PSH and the data may wait, unsent, to be coalesced with the
//!   next write); a push writes without it (PSH on the last segment) and calls
//!   `tcp_output`. Data left waiting by MORE goes out with the next push, or when the
//!   pool's [`coalesce_delay`](netpool::Config::coalesce_delay) expires: the pool then
//!   calls [`TcpPush::push`](netpool::stack::TcpPush::push), an empty push
//!   (`tcp_output`). The backend keeps no timer of its own. Nagle is off on every
//!   connection: the application decides.
//! * **Partial writes are exact.** A write takes at most `tcp_sndbuf` bytes and returns
//!   what lwIP took; `ERR_MEM` from `tcp_write` (segment queue full) is a would-block,
//!   not an error.
//! * **Close is immediate.** `tcp_close` (or `tcp_abort` when lwIP has no memory for
//!   the FIN); lwIP finishes FIN-WAIT/TIME-WAIT on its own and the socket is free for
//!   the application at once.
//!
//! # Using it
//!
//! ```no_run
//! use netpool::{Config, Instant, ListenParams, Pool};
//! use netpool_lwip::LwipStack;
//!
//! // Once, in the context that runs lwIP (NO_SYS main loop, or with the core lock).
//! let stack = LwipStack::new().expect("one LwipStack per process");
//! let mut pool: Pool<LwipStack, 8, 1, 0> = Pool::new(stack, Config::new());
//! pool.listen(80, ListenParams::new(8)).unwrap();
//!
//! // The main loop, with the firmware's millisecond clock.
//! # let now = Instant::ZERO;
//! pool.stack_mut().poll(now); // lwIP clock (bundled)
//! pool.poll(now);
//! while let Some(conn) = pool.accept_next() {
//!     let _ = pool.write(conn.handle, b"hello\r\n", true, now);
//!     let _ = pool.close(conn.handle, now);
//! }
//! ```
//!
//! `TX = 0`: with a native MORE flag the pool needs no coalescing buffer of its own.
//! See the README for firmware builds (ESP8266 RTOS SDK, ESP-IDF, Pico SDK) and for
//! what was verified.
//!
//! # Features
//!
//! - `bundled`: compile lwIP (host) with `c/lwipopts.h`; `sys_now()` from
//!   [`LwipStack::poll`]. Without it, link the firmware's own lwIP (see the README).
//! - `sim`: module `sim`, lwIP on the test kit's simulated network (std; implies
//!   `bundled` and depends on the unpublished netpool-testkit). Off by default; the
//!   crate's tests and the `churn-lwip` example need it.
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(any(test, feature = "sim"))]
extern crate std;

mod diagnostics;
mod error;
mod ffi;
mod lease;
#[cfg(feature = "sim")]
pub mod sim;
mod socket;
mod stack;

pub use diagnostics::{Events, LwipConfig, SendQueue};
pub use error::{LwipErr, LwipError};
pub use ffi::MAX_SOCKETS;
pub use socket::LwipSocket;
pub use stack::{LwipStack, LwipStats, TcpState, DEFAULT_BACKLOG};

/// The version of the lwIP compiled in (feature `bundled`), as lwIP's
/// `LWIP_VERSION_STRING` spells it ("d": a development snapshot after the release).
#[cfg(feature = "bundled")]
pub const LWIP_VERSION: &str = env!("NETPOOL_LWIP_VERSION");
