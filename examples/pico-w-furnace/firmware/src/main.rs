//! Raspberry Pi Pico W furnace controller firmware (see README.md).
//!
//! Two executors:
//!
//! - **control** — an [`InterruptExecutor`] on `SWI_IRQ_1` at priority 1, running only
//!   [`control::control_task`]: MAX6675 → control logic → relays → watchdog. Being
//!   interrupt-driven, it preempts everything below, so nothing on the network side
//!   (not even a task that never yields) can stall it.
//! - **network** — the thread-mode [`Executor`]: CYW43, embassy-net, DHCP, the WiFi
//!   join loop and the web server on port 80 through netpool's `AsyncPool`
//!   (feature `wifi`). Without `wifi` it has nothing to run.
//!
//! The two meet only in [`SHARED`] (`pico_w_furnace::shared::Shared`): atomics and
//! copy-in/copy-out critical sections.
//!
//! Pins: see README.md ("Pin map").

#![no_std]
#![no_main]

mod control;
#[cfg(feature = "wifi")]
mod net;

use cortex_m_rt::entry;
use defmt::{info, unwrap};
use embassy_executor::{Executor, InterruptExecutor};
use embassy_rp::gpio::{Level, Output};
use embassy_rp::interrupt;
use embassy_rp::interrupt::{InterruptExt, Priority};
use embassy_rp::spi::{self, Spi};
use embassy_rp::watchdog::Watchdog;
use pico_w_furnace::shared::Shared;
use static_cell::StaticCell;
use {defmt_rtt as _, panic_probe as _};

/// History samples kept for the web UI's chart.
pub const HISTORY_LEN: usize = 120;
/// One history sample every this many milliseconds (120 × 10 s = the last 20 min).
pub const HISTORY_PERIOD_MS: u32 = 10_000;

/// The state shared by the control loop and the network side.
pub type SharedState = Shared<HISTORY_LEN>;
/// The one instance.
pub static SHARED: SharedState = Shared::new(HISTORY_PERIOD_MS);

static CONTROL_EXECUTOR: InterruptExecutor = InterruptExecutor::new();
static NETWORK_EXECUTOR: StaticCell<Executor> = StaticCell::new();

#[interrupt]
unsafe fn SWI_IRQ_1() {
    // SAFETY: the interrupt the control executor was started on (below).
    unsafe { CONTROL_EXECUTOR.on_interrupt() }
}

/// GPIO numbers of the relays (see README.md, "Pin map").
const ELEMENT_RELAY_GPIO: u32 = 14;
const CUTOFF_RELAY_GPIO: u32 = 15;

/// A panic (panic-probe logs it, then executes `udf`) or any fault ends here:
/// de-energise both relays at once — element off, supply cut — straight through the
/// SIO, whatever state the rest of the firmware is in, then wait for the watchdog
/// (nothing feeds it any more) to reset the chip.
#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    embassy_rp::pac::SIO
        .gpio_out(0)
        .value_clr()
        .write_value((1 << ELEMENT_RELAY_GPIO) | (1 << CUTOFF_RELAY_GPIO));
    loop {
        cortex_m::asm::nop();
    }
}

#[entry]
fn main() -> ! {
    let p = embassy_rp::init(Default::default());

    // Relays first, de-energised: element off, supply cut (the safe state), before
    // anything else runs.
    let element = Output::new(p.PIN_14, Level::Low);
    let supply = Output::new(p.PIN_15, Level::Low);

    // MAX6675 on SPI0: SCK GP18, SO (MISO) GP16, CS GP17. Mode 0, MSB first.
    let mut spi_config = spi::Config::default();
    spi_config.frequency = control::MAX6675_SPI_HZ;
    spi_config.polarity = spi::Polarity::IdleLow;
    spi_config.phase = spi::Phase::CaptureOnFirstTransition;
    let max6675 = Spi::new_blocking_rxonly(p.SPI0, p.PIN_18, p.PIN_16, spi_config);
    let cs = Output::new(p.PIN_17, Level::High);

    info!(
        "pico-w-furnace firmware {} ({})",
        env!("CARGO_PKG_VERSION"),
        if cfg!(feature = "wifi") { "wifi" } else { "no-wifi" }
    );

    // The control loop: started first, at the highest priority we use.
    interrupt::SWI_IRQ_1.set_priority(Priority::P1);
    let control_spawner = CONTROL_EXECUTOR.start(interrupt::SWI_IRQ_1);
    control_spawner.spawn(unwrap!(control::control_task(
        control::Hardware {
            spi: max6675,
            cs,
            element,
            supply,
            watchdog: Watchdog::new(p.WATCHDOG),
        },
        &SHARED,
    )));

    // The network side, in thread mode.
    #[cfg(feature = "wifi")]
    let net = net::Peripherals {
        pwr: p.PIN_23,
        cs: p.PIN_25,
        dio: p.PIN_24,
        clk: p.PIN_29,
        pio: p.PIO0,
        dma: p.DMA_CH0,
    };
    let executor = NETWORK_EXECUTOR.init(Executor::new());
    executor.run(|spawner| {
        #[cfg(feature = "wifi")]
        spawner.spawn(unwrap!(net::net_main(spawner, net)));
        #[cfg(not(feature = "wifi"))]
        {
            let _ = spawner;
            // No network in this build: say so in the UI state.
            SHARED.set_link(netpool::LinkState::Down);
            info!("no-wifi build: control loop only");
        }
    })
}
