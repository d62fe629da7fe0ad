//! Three short servers on netpool, between the 52-line echo server
//! (`examples/echo_server.rs`) and a whole product (the ESP8266 bridge, the Pico W
//! furnace). Each is one file that wires netpool to one stack; they share the
//! application (a status endpoint, [`http`]) so that they differ only in that wiring.
//!
//! | example | driver | stack | built for | run in a test |
//! |---|---|---|---|---|
//! | `embassy_http` (feature `embassy`) | `AsyncPool` + `Backlog` + `Closer` | embassy-net | thumbv6m | over TAP |
//! | `smoltcp_server` (feature `smoltcp`) | `Pool` | `SmoltcpStack` | riscv32imc | the test kit's simulated network |
//! | `lwip_server` (feature `lwip`) | `Pool` | netpool-lwip's `LwipStack` | the host (real lwIP 2.2) | the test kit's simulated network |
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "embassy")]
pub mod embassy_http;
pub mod http;
#[cfg(feature = "lwip")]
pub mod lwip_server;
#[cfg(any(feature = "smoltcp", feature = "lwip"))]
pub mod service;
#[cfg(feature = "smoltcp")]
pub mod smoltcp_server;
