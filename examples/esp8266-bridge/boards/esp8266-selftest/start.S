/* Entry stub of the lx106 self-test images (CALL0 ABI, which Rust on this core and
 * Debian's xtensa-lx106-elf-gcc both use). Assembled twice by build.rs: as is for
 * QEMU, and with -DBOARD for a real ESP8266.
 *
 *   _start:        stack pointer (a1) to _stack_top, zero .bss, [board: map the
 *                  first MiB of flash at 0x40200000 through the mask ROM's
 *                  Cache_Read_Enable(0, 0, 1), where all Rust code lives], then
 *                  callx0 selftest_main (Rust, `extern "C" fn() -> !`); spin if it
 *                  ever returns.
 *   semihost_call: (QEMU) a2 = call number, a3..a5 = arguments; executes `simcall`
 *                  and returns its result in a2. The CALL0 ABI passes a function's
 *                  first four arguments in a2..a5, exactly where QEMU's semihosting
 *                  wants them, so the function is just the instruction.
 *
 * Everything here is in IRAM (.entry.text; the assembler puts its literals in
 * .entry.literal), which the ROM loads before jumping to _start.
 */
        .section .entry.text, "ax"
        .global _start
        .type   _start, @function
        .align  4
_start:
        movi    a1, _stack_top
        movi    a2, _bss_start
        movi    a3, _bss_end
        movi    a4, 0
1:      bgeu    a2, a3, 2f
        s32i    a4, a2, 0
        addi    a2, a2, 4
        j       1b
2:
#ifdef BOARD
        movi    a2, 0
        movi    a3, 0
        movi    a4, 1
        movi    a8, Cache_Read_Enable
        callx0  a8
#endif
        movi    a0, 0
        movi    a8, selftest_main
        callx0  a8
3:      j       3b
        .size   _start, . - _start

#ifndef BOARD
        .global semihost_call
        .type   semihost_call, @function
        .align  4
semihost_call:
        simcall
        ret
        .size   semihost_call, . - semihost_call
#endif
