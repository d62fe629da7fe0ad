//! The self-test on an ESP8266 board (untested on hardware): the tests that fit in
//! the chip's 80 KiB of DRAM (protocol and decoders; see `Scope::ChipRam`), the
//! results printed on UART0 through the mask ROM's `ets_putc` (74880 baud with a
//! 26 MHz crystal, the ROM's own boot-message rate), the ROM watchdog disabled first.
//! When done it prints the summary again every 5 s, forever.
#![no_std]
#![no_main]

use core::fmt::{self, Write};

use esp8266_bridge_selftest::{run, Console, Scope};

extern "C" {
    // ESP8266 mask-ROM functions (addresses in link.x).
    fn ets_putc(c: u8);
    fn ets_delay_us(us: u32);
    fn ets_wdt_disable();
}

/// The console: UART0 through the ROM.
struct RomUart;

impl Write for RomUart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if b == b'\n' {
                // SAFETY: ROM function; writes one byte to UART0, blocking while its FIFO is full.
                unsafe { ets_putc(b'\r') };
            }
            // SAFETY: as above.
            unsafe { ets_putc(b) };
        }
        Ok(())
    }
}

impl Console for RomUart {}

fn pause_ms(ms: u32) {
    // SAFETY: ROM busy-wait.
    unsafe { ets_delay_us(ms * 1000) };
}

#[no_mangle]
extern "C" fn selftest_main() -> ! {
    // SAFETY: ROM function; stops the watchdog the ROM loader left running, so a run
    // longer than its period does not reset the chip.
    unsafe { ets_wdt_disable() };
    pause_ms(100);
    let summary = run(&mut RomUart, Scope::ChipRam);
    loop {
        pause_ms(5000);
        let _ = writeln!(RomUart, "{summary}");
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(
        RomUart,
        "\nPANIC: {info}\nSELFTEST SUMMARY: aborted by a panic: FAIL"
    );
    loop {
        pause_ms(1000);
    }
}
