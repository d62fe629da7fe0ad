//! # esp8266-bridge
//!
//! The Duet WiFi-to-SPI bridge (the firmware of the WiFi module between browsers and
//! a RepRapFirmware main board, "the SAM") rebuilt on netpool.
//!
//! - [`protocol`]: every message and enum of the SPI protocol (format version `0x3E`),
//!   little-endian codecs that never panic, errors that map to response codes.
//! - [`bridge`]: the service loop, generic over netpool's sync [`Pool`](netpool::Pool),
//!   an embedded-hal 1.0 [`SpiDevice`](embedded_hal::spi::SpiDevice) and the handshake
//!   pins.
//! - [`mock`]: the SAM's end of the SPI link and (feature `testkit`, on by default)
//!   the test stack — netpool-testkit's `no_std` scripted stack at this bridge's size —
//!   with the dispatcher's harness, for tests, fuzzing and on-target self-tests.
//! - `host` (feature `host`, on by default): the `bridge-sim` simulator: the bridge on
//!   OS sockets, a virtual SPI bus and a simulated RepRapFirmware board serving a
//!   subset of the Duet HTTP API; and the `decode` tool.
//!
//! Without the `host` feature the crate is `no_std` and allocation-free.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "host")]
extern crate std;

pub mod bridge;
#[cfg(feature = "host")]
pub mod host;
pub mod mock;
pub mod protocol;

pub use bridge::{pool_config, Bridge, BridgeConfig, BridgeStats, ModeRequest, Serviced};
