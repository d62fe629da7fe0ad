//! Self-test of the `esp8266-bridge` protocol and bridge logic on the ESP8266's CPU
//! (Xtensa lx106): the protocol checks, the bridge's command semantics on the
//! package's test TCP stack (netpool-testkit's scripted stack, `no_std`) and simulated
//! SAM (`esp8266_bridge::mock`), and the
//! dispatcher's invariants on the fuzz regression inputs and generated scripts.
//!
//! [`run`] writes one line per test and a summary line to a [`Console`]; the
//! binaries provide it (QEMU semihosting, or the mask ROM's UART output) and the
//! exit.
#![no_std]
#![forbid(unsafe_code)]

mod bridge_tests;
pub mod harness;
mod protocol_tests;
mod robustness_tests;

pub use harness::{Console, Summary};

/// The line that starts a run.
pub const BANNER: &str = "esp8266-bridge self-test on Xtensa lx106";

/// Which tests a run includes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything: protocol, decoders, bridge semantics, dispatcher scripts. The
    /// bridge and dispatcher tests run on the bridge package's test stack, which needs
    /// about 75 KiB of RAM by itself (QEMU's lx106 core has enough; the ESP8266 chip
    /// has 80 KiB of DRAM in all).
    All,
    /// What fits in the ESP8266's own RAM: the protocol and decoder tests.
    ChipRam,
}

/// Run the tests of `scope`; the last line printed is the summary
/// (`SELFTEST SUMMARY: N passed, M failed: PASS|FAIL`).
pub fn run(out: &mut dyn Console, scope: Scope) -> Summary {
    let _ = writeln!(out, "{BANNER}");
    bridge_tests::print_sizes(out);
    let mut summary = Summary::default();
    harness::run_group(out, "protocol", protocol_tests::TESTS, &mut summary);
    harness::run_group(out, "decode", robustness_tests::DECODE, &mut summary);
    match scope {
        Scope::All => {
            harness::run_group(out, "bridge", bridge_tests::TESTS, &mut summary);
            harness::run_group(out, "dispatch", robustness_tests::DISPATCH, &mut summary);
        }
        Scope::ChipRam => {
            let _ = writeln!(
                out,
                "(bridge and dispatch tests skipped: the test stack they run on needs more \
                 RAM than the ESP8266 has; they run under QEMU)"
            );
        }
    }
    if let Some(peak) = summary.stack_peak {
        let _ = writeln!(out, "stack: at most {peak} bytes used by a test");
    }
    let _ = writeln!(out, "{}", summary);
    summary
}
