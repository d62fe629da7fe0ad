//! # netpool-testkit
//!
//! Test doubles and a network simulator for [netpool], kept out of the
//! shipped library. Unpublished (`publish = false`): use it from this workspace as a
//! path dependency in `[dev-dependencies]`.
//!
//! - [`scripted`]: [`ScriptedStackIn`](scripted::ScriptedStackIn), a deterministic
//!   in-memory TCP stack in fixed arrays (`no_std`, no allocator) with every netpool
//!   extension trait, where the test plays every remote peer (`peer_connect`,
//!   `peer_send`, `peer_fin`, `peer_reset`...) and scripts the stack (connect outcomes,
//!   send windows, one-shot errors, a PCB budget with lwIP's kill-the-oldest, MORE bytes
//!   held until a push, no send-queue reading). Its const parameters are its capacities
//!   (sockets, connection records, receive and kept sent bytes per connection); a full
//!   container is a typed refusal or a short count, never a panic.
//!   [`ScriptedStack`](scripted::ScriptedStack) is the size the workspace's tests use;
//!   [`PlainScripted`](scripted::PlainScripted) hides the extension traits to exercise
//!   netpool's fallbacks. No time, no network.
//! - `accept_log` (feature `std`): `AcceptLog`, the scripted stack with a record of
//!   every connection its `accept` handed out.
//! - `http` (feature `std`): reading HTTP/1.1 responses with httparse, one framing
//!   for every test of a server built on netpool (simulators, TAP tests).
//! - `sim` (feature `sim`, on by default): smoltcp hosts on an in-memory IPv4 link
//!   with seeded loss, delay and partitions, in virtual time; scripted smoltcp peers
//!   (pollers, an uploader, half-open clients, connect storms); a netpool server on the
//!   smoltcp backend behind `PcbLimited`, which emulates lwIP's PCB allocation under
//!   exhaustion; the churn workload of `examples/churn.rs`.
//!
//! ## Features
//!
//! - `std` (default): the scripted stack's call log and `Vec`-returning inspectors,
//!   `accept_log`, `http`, and connection records on the heap. Without it (and without `sim`)
//!   the crate is `#![no_std]` and needs no allocator: it builds for bare-metal targets
//!   (`thumbv6m-none-eabi`, the ESP8266's lx106) and runs the scripted stack in
//!   on-target self-tests and fuzz harnesses.
//! - `sim` (default, implies `std`): the network simulator; turns on netpool's
//!   `smoltcp` feature.
//!
//! ## In your own tests
//!
//! ```toml
//! [dev-dependencies]
//! # Scripted stack only: leaves netpool's features as your crate sets them.
//! netpool-testkit = { path = "crates/netpool-testkit", default-features = false, features = ["std"] }
//! # The same without std (no call log), e.g. for a no_std test image.
//! # netpool-testkit = { path = "crates/netpool-testkit", default-features = false }
//! # With the simulator (turns on netpool's `smoltcp` feature).
//! # netpool-testkit = { path = "crates/netpool-testkit" }
//! ```
//!
//! ```
//! use netpool::{Config, Instant, ListenParams, Pool};
//! use netpool_testkit::scripted::ScriptedStack;
//!
//! let mut pool: Pool<ScriptedStack, 2, 1> = Pool::new(ScriptedStack::default(), Config::new());
//! pool.listen(80, ListenParams::new(2)).unwrap();
//! let peer = pool.stack_mut().peer_connect(80, "127.0.0.1:40000".parse().unwrap()).unwrap();
//! pool.poll(Instant::ZERO);
//! let accepted = pool.accept_next().expect("the pool accepts the scripted peer");
//! pool.stack_mut().peer_send(peer, b"GET /");
//! let mut buf = [0u8; 8];
//! assert_eq!(pool.read(accepted.handle, &mut buf, Instant::ZERO), Ok(5));
//! assert_eq!(&buf[..5], b"GET /");
//! ```
//!
//! A test crate that depends on netpool-testkit must reach netpool's types through
//! the same netpool crate as the kit: integration tests (`tests/*.rs`) of netpool
//! itself do, netpool's own unit tests (`src/**`) cannot (Cargo builds the library a
//! second time for them), so they do not use the kit.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
pub mod accept_log;
#[cfg(feature = "std")]
pub mod browser;
#[cfg(feature = "std")]
pub mod http;
pub mod scripted;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "wire")]
pub mod wire;
