//! The control loop: MAX6675 → [`ControlLoop::cycle`] → relays → watchdog.
//!
//! It runs alone on a high-priority interrupt executor, so it preempts everything on
//! the thread-mode executor (CYW43, embassy-net, the web tasks) — even a network task
//! that spins. It touches nothing the network holds: the SPI bus, the relay pins and
//! the watchdog are its own, and the only shared state is [`pico_w_furnace::shared`]
//! (atomics and copy-in/copy-out critical sections). Its one await is its own ticker.
//!
//! The hardware watchdog is fed only here, after a completed cycle: if this loop stops
//! for any reason (a wedged peripheral, a panic anywhere, a starved executor), the
//! RP2040 resets within [`WATCHDOG_TIMEOUT`] and the relays come up de-energised.

use defmt::{info, warn};
use embassy_rp::gpio::{Level, Output};
use embassy_rp::peripherals::SPI0;
use embassy_rp::spi::{Blocking, Spi};
use embassy_rp::watchdog::{ResetReason, Watchdog};
use embassy_time::{Duration, Instant, Ticker};
use pico_w_furnace::control::{Config, Controller, Mode, Outputs};
use pico_w_furnace::cycle::{ControlLoop, CONTROL_PERIOD_MS};

use crate::SharedState;

/// The watchdog resets the chip if no control cycle completes for this long
/// (four control periods).
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_millis(4 * CONTROL_PERIOD_MS);

/// SPI clock for the MAX6675 (at most 4.3 MHz; SPI mode 0, 16-bit frame, MSB first).
pub const MAX6675_SPI_HZ: u32 = 1_000_000;

/// What the control loop owns.
pub struct Hardware {
    /// SPI0 (SCK GP18, MISO GP16), receive only.
    pub spi: Spi<'static, SPI0, Blocking>,
    /// MAX6675 chip select (GP17), active low.
    pub cs: Output<'static>,
    /// Element relay coil (GP14), high = energised = element on.
    pub element: Output<'static>,
    /// Cutoff relay coil (GP15), high = energised = supply enabled (fail-safe).
    pub supply: Output<'static>,
    /// The RP2040 hardware watchdog.
    pub watchdog: Watchdog,
}

impl Hardware {
    /// One MAX6675 frame. Bounded: the SPI master clocks 16 bits at
    /// [`MAX6675_SPI_HZ`] (≈ 16 µs); nothing external can make it wait. Pulling CS
    /// high again starts the next conversion (≈ 220 ms, shorter than the period).
    fn read_frame(&mut self) -> u16 {
        let mut buf = [0u8; 2];
        self.cs.set_low();
        // t_CSS ≥ 100 ns from CS low to the first clock edge.
        cortex_m::asm::delay(32);
        let ok = self.spi.blocking_read(&mut buf).is_ok();
        self.cs.set_high();
        if ok {
            u16::from_be_bytes(buf)
        } else {
            // Not a frame a MAX6675 can send: decoded as a sensor fault (element off).
            0xFFFF
        }
    }

    /// Drive the relays. Switching off, the element goes first; switching on, the
    /// supply goes first — the element relay never switches the load alone.
    fn apply(&mut self, out: Outputs) {
        if out.element_on {
            self.supply.set_level(Level::from(out.supply_enabled));
            self.element.set_high();
        } else {
            self.element.set_low();
            self.supply.set_level(Level::from(out.supply_enabled));
        }
    }
}

/// The control task. Never returns.
#[embassy_executor::task]
pub async fn control_task(mut hw: Hardware, shared: &'static SharedState) -> ! {
    match hw.watchdog.reset_reason() {
        Some(ResetReason::TimedOut) => {
            warn!("reset by the watchdog: the control loop had stopped cycling")
        }
        Some(ResetReason::Forced) => info!("reset forced through the watchdog"),
        None => info!("not a watchdog reset (power-on, RUN pin or debugger)"),
    }
    // A debugger halting the core must not reset the board under it.
    hw.watchdog.pause_on_debug(true);
    hw.watchdog.start(WATCHDOG_TIMEOUT);
    info!(
        "control loop: period {} ms, watchdog {} ms",
        CONTROL_PERIOD_MS,
        WATCHDOG_TIMEOUT.as_millis()
    );

    let mut control = ControlLoop::new(Controller::new(Config::DEFAULT), shared);
    let mut last = (Mode::Idle, Outputs::SAFE);
    let mut ticker = Ticker::every(Duration::from_millis(CONTROL_PERIOD_MS));
    loop {
        // First: the MAX6675 needs one conversion time (≈ 220 ms) after power-up, and
        // then one after every read, before its frame is fresh.
        ticker.next().await;
        let frame = hw.read_frame();
        let now_ms = Instant::now().as_millis();
        let out = control.cycle(now_ms, frame);
        hw.apply(out);
        // The cycle is complete: only now does the watchdog get fed.
        hw.watchdog.feed(WATCHDOG_TIMEOUT);

        let ctl = control.controller();
        if (ctl.mode(), out) != last {
            last = (ctl.mode(), out);
            info!(
                "t={}ms frame={=u16:#06x} mode={} element={} supply={} temp_q={} setpoint_q={}",
                now_ms,
                frame,
                ctl.mode().name(),
                out.element_on,
                out.supply_enabled,
                ctl.temperature().map(|t| t.quarters()),
                ctl.setpoint().quarters(),
            );
        }
    }
}
