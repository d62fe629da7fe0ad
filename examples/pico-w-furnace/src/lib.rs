//! The Pico W furnace controller: everything that knows no hardware.
//!
//! A wood furnace with a MAX6675 thermocouple on SPI, a heating-element relay, a
//! fail-safe overheat-cutoff relay in series with the element's supply, ember banking
//! when the fire would die, and a small web UI. This crate is the part that runs
//! unchanged on the RP2040 and on the host: `no_std`, no allocation, no `unsafe`, and
//! no async outside the web server (`net`).
//!
//! | Module | What |
//! |---|---|
//! | [`max6675`] | 16-bit frame decode (temperature, open thermocouple, bad frames) |
//! | [`control`] | the rules: hysteresis, latching overheat cutoff, ember banking, safe boot |
//! | [`cycle`] | one control cycle: commands in, decision, snapshot and history out |
//! | [`state`] | [`Snapshot`](state::Snapshot), the `Copy` state the UI shows |
//! | [`history`] | the ring buffer of recent temperatures |
//! | [`shared`] | how state crosses between the control loop and the network side |
//! | [`web`] | the HTTP handlers: request bytes + snapshot → response bytes (+ command) |
//! | `net` | (feature `net`) the firmware's web server on netpool's `AsyncPool`, accept `Backlog` and `Closer`, generic over the edge-nal stack: embassy-net on the board and in `furnace-net-host`, the host's TCP in `furnace-sim` |
//! | [`thermal`] | a furnace thermal model for tests and the host simulator |
//! | [`temp`] | temperatures in quarter °C |
//!
//! The control loop never waits on the network: it shares state only through
//! [`shared::Shared`] (atomics and copy-in/copy-out critical sections), and the web
//! side renders from copies. The host simulator (`furnace-sim`, feature `host`) runs
//! this control logic against [`thermal::Furnace`] and serves [`web`] through the
//! firmware's own web server (`net`), over the host's TCP.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod control;
pub mod cycle;
pub mod history;
pub mod max6675;
#[cfg(feature = "net")]
pub mod net;
pub mod shared;
pub mod state;
pub mod temp;
pub mod thermal;
pub mod web;

#[cfg(test)]
mod simulation;
