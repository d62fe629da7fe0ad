//! The self-test under QEMU (`qemu-system-xtensa -M sim -cpu lx106 -semihosting`):
//! every test, output and exit code through QEMU's Xtensa semihosting (`simcall`),
//! and the stack each test used (the free stack is painted before each test).
//!
//! Exit code 0: every test passed; 1: a test failed; 101: a panic (a broken
//! invariant inside the bridge package's mock harness, or a bug here); 102: the
//! stack outgrew its region.
#![no_std]
#![no_main]

use core::fmt::{self, Write};
use core::ptr::{addr_of, read_volatile, write_volatile};

use esp8266_bridge_selftest::{run, Console, Scope};

/// QEMU Xtensa semihosting call numbers (`simcall` with the number in a2).
const SYS_EXIT: u32 = 1;
const SYS_WRITE: u32 = 4;
const STDOUT: u32 = 1;

extern "C" {
    /// `start.S`: executes `simcall` with a2 = `call`, a3..a5 = the arguments, and
    /// returns a2.
    fn semihost_call(call: u32, a: u32, b: u32, c: u32) -> i32;
    /// `ld/link.x`: the stack region (the stack grows down from `_stack_top`).
    static _stack_bottom: u32;
    static _stack_top: u32;
}

/// Write `bytes` to QEMU's stdout.
fn write_stdout(bytes: &[u8]) {
    // SAFETY: SYS_WRITE reads `len` bytes at `ptr`, a live slice; simcall touches no
    // other memory and returns its result in a2 like any CALL0 function.
    unsafe {
        semihost_call(SYS_WRITE, STDOUT, bytes.as_ptr() as u32, bytes.len() as u32);
    }
}

/// End the simulation with `code` as QEMU's exit status.
fn exit(code: u32) -> ! {
    // SAFETY: SYS_EXIT stops the emulator.
    unsafe {
        semihost_call(SYS_EXIT, code, 0, 0);
    }
    loop {}
}

/// Filler of the free stack; a word that still holds it was never used.
const PAINT: u32 = 0xA5A5_A5A5;
/// Bottom bytes of the stack region that must keep their paint (else: overflow).
const GUARD: usize = 256;
/// Bytes left unpainted below the painting function's own frame.
const MARGIN: usize = 512;

/// The console: semihosting stdout, plus stack measurement.
struct Semihosting;

impl Write for Semihosting {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_stdout(s.as_bytes());
        Ok(())
    }
}

impl Console for Semihosting {
    fn stack_reset(&mut self) {
        let bottom = addr_of!(_stack_bottom) as usize;
        let here = 0u32;
        let sp = addr_of!(here) as usize;
        let mut a = bottom;
        while a + MARGIN < sp {
            // SAFETY: `a` is word-aligned, inside the stack region and more than
            // MARGIN bytes below the deepest live frame (this one), so no live data is
            // overwritten; the stack region is RAM the linker reserved for nothing else.
            unsafe { write_volatile(a as *mut u32, PAINT) };
            a += 4;
        }
    }

    fn stack_peak(&mut self) -> Option<usize> {
        let bottom = addr_of!(_stack_bottom) as usize;
        let top = addr_of!(_stack_top) as usize;
        let mut a = bottom;
        // SAFETY: word-aligned reads inside the stack region.
        while a < top && unsafe { read_volatile(a as *const u32) } == PAINT {
            a += 4;
        }
        if a < bottom + GUARD {
            // The paint at the very bottom is gone: the stack reached the end of its
            // region (and may have run past it). Nothing after this can be trusted.
            let _ = writeln!(
                Semihosting,
                "\nSTACK OVERFLOW: the stack region ({} bytes) was exhausted\n\
                 SELFTEST SUMMARY: aborted by a stack overflow: FAIL",
                top - bottom
            );
            exit(102);
        }
        Some(top - a)
    }
}

#[no_mangle]
extern "C" fn selftest_main() -> ! {
    let summary = run(&mut Semihosting, Scope::All);
    exit(if summary.failed == 0 { 0 } else { 1 })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(
        Semihosting,
        "\nPANIC: {info}\nSELFTEST SUMMARY: aborted by a panic: FAIL"
    );
    exit(101)
}
