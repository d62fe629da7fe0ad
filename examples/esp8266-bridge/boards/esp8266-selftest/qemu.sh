#!/usr/bin/env bash
# Run the lx106 self-test under QEMU and check it.
#
#   qemu.sh [ELF]   (default: target/xtensa-esp8266-none-elf/release/selftest-qemu)
#
# QEMU's `sim` machine with the lx106 core (Debian: qemu-system-misc); the image
# reports through semihosting: its output is QEMU's stdout, its exit code QEMU's.
# Passes only if QEMU exits 0 within the timeout AND the last line is
# `SELFTEST SUMMARY: N passed, 0 failed: PASS` with N > 0.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
elf=${1:-$here/target/xtensa-esp8266-none-elf/release/selftest-qemu}
timeout_s=${SELFTEST_TIMEOUT:-120}
[[ -f $elf ]] || { echo "error: $elf not found (cargo build --release first)" >&2; exit 2; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
timeout "$timeout_s" qemu-system-xtensa -M sim -cpu lx106 -nographic -semihosting \
    -monitor none -device "loader,file=$elf,cpu-num=0" >"$log" 2>&1
rc=$?
set -e
cat "$log"
summary=$(tail -n 1 "$log")
if [[ $rc -eq 124 ]]; then
    echo "error: the self-test did not finish within ${timeout_s}s" >&2
    exit 1
fi
if [[ $rc -ne 0 ]]; then
    echo "error: the self-test exited with $rc (1: a test failed, 101: panic, 102: stack overflow)" >&2
    exit 1
fi
if ! [[ $summary =~ ^SELFTEST\ SUMMARY:\ ([0-9]+)\ passed,\ 0\ failed:\ PASS$ ]] || ((BASH_REMATCH[1] == 0)); then
    echo "error: unexpected summary line: $summary" >&2
    exit 1
fi
echo "self-test passed under QEMU (exit code 0, ${BASH_REMATCH[1]} tests)"
