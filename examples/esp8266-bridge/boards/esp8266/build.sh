#!/usr/bin/env bash
# Build the ESP8266 bridge firmware: the Rust static library (rust/, pinned nightly,
# lx106 target JSON, build-std), then the ESP8266 RTOS SDK project around it (app,
# bootloader, partition table; `esptool elf2image` through the SDK's make), and print
# its sizes. Everything goes under <repo>/target/esp8266-bridge-sdk/.
#
# The SDK: $IDF_PATH if set (Espressif's toolchain on PATH, or a tree prepared for
# Debian's gcc-xtensa-lx106); otherwise a tree prepared by the SDK port's setup.sh
# (ESP8266_SDK_SETUP, default <repo>/../shared/tools/esp8266-sdk/setup.sh) into
# target/esp8266-bridge-sdk/sdk, made once and reused. See README.md.
#
# WIFI_SSID / WIFI_PASSWORD in the environment: the credentials built in (absent: the
# image says so at run time and stays offline).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../../../.." && pwd))
out=$repo/target/esp8266-bridge-sdk
jobs=${JOBS:-2}
mkdir -p "$out"

# --- the SDK
if [[ -n "${IDF_PATH:-}" ]]; then
    echo "SDK: IDF_PATH=$IDF_PATH"
    # A tree made by the port's setup.sh carries the SDK's Python environment.
    if [[ -x "$IDF_PATH/.venv/bin/python" ]]; then
        export PATH=$IDF_PATH/.venv/bin:$PATH
    fi
else
    sdk=$out/sdk
    setup=${ESP8266_SDK_SETUP:-$repo/../shared/tools/esp8266-sdk/setup.sh}
    if [[ ! -f "$sdk/.ready" ]]; then
        [[ -f "$setup" ]] || {
            echo "error: no IDF_PATH and no SDK setup script at $setup (README.md, \"Getting the SDK\")" >&2
            exit 1
        }
        echo "+ bash $setup $sdk"
        start=$SECONDS
        bash "$setup" "$sdk"
        touch "$sdk/.ready"
        echo "SDK prepared in $((SECONDS - start)) s"
    fi
    export IDF_PATH=$sdk
    export PATH=$sdk/.venv/bin:$PATH
    echo "SDK: $IDF_PATH (Debian toolchain, picolibc port)"
fi

# --- the Rust static library
echo "+ (cd rust && cargo build --release --target-dir $out)"
(cd "$here/rust" && cargo build --release -j"$jobs" --target-dir "$out")
lib=$out/xtensa-esp8266-none-elf/release/libbridge_esp8266.a

# --- the SDK project: app, bootloader, partition table, esptool elf2image
build=$out/build
make_args=(-C "$here" -j"$jobs" BUILD_DIR_BASE="$build" SDKCONFIG="$out/sdkconfig"
    BRIDGE_RUST_LIB="$lib")
# defconfig (sdkconfig from sdkconfig.defaults) only when the defaults are newer:
# it rewrites sdkconfig.h, which rebuilds every component.
if [[ ! -f "$out/sdkconfig" || "$here/sdkconfig.defaults" -nt "$out/sdkconfig" ]]; then
    echo "+ make ${make_args[*]} defconfig"
    make "${make_args[@]}" defconfig >/dev/null
fi
echo "+ make ${make_args[*]} all"
make "${make_args[@]}" all

elf=$build/bridge-esp8266.elf
bin=$build/bridge-esp8266.bin
map=$build/bridge-esp8266.map
[[ -f "$elf" && -f "$bin" ]] || { echo "error: no $elf / $bin" >&2; exit 1; }

# --- sizes
echo
echo "=== sizes ($elf)"
sec() { xtensa-lx106-elf-size -A "$elf" | awk -v s="$1" '$1 == s { print $2 + 0; f = 1 } END { if (!f) print 0 }'; }
iram=$(sec .iram0.text)
data=$(sec .dram0.data)
bss=$(sec .dram0.bss)
rodata=$(sec .flash.rodata)
text=$(sec .flash.text)
# The heap at boot: DRAM above the end of .bss (the SDK's linker script: dram0_0_seg
# 0x3FFE8000, 96 KiB; the heap starts at _bss_end), before anything is allocated.
bss_end=$(xtensa-lx106-elf-nm "$elf" | awk '$3 == "_bss_end" { print $1 }')
heap=$((0x3FFE8000 + 0x18000 - 0x$bss_end))
# The IRAM heap (32-bit accesses only): the IRAM region above .iram0.text/.iram0.bss.
iram_size=$(sed -n 's/^CONFIG_SOC_IRAM_SIZE=//p' "$out/sdkconfig")
iram_end=$(xtensa-lx106-elf-nm "$elf" | awk '$3 == "_iram_end" { print $1 }')
iram_heap=$((0x40100000 + ${iram_size:-0xC000} - 0x$iram_end))
printf '%-28s %8s\n' "section" "bytes"
printf '%-28s %8d  (IRAM region: %d)\n' ".iram0.text" "$iram" "$((${iram_size:-0xC000}))"
printf '%-28s %8d\n' ".dram0.data" "$data" ".dram0.bss" "$bss" ".flash.text" "$text" ".flash.rodata" "$rodata"
printf '%-28s %8d  (DRAM above .bss at boot, before any allocation)\n' "DRAM heap at boot" "$heap"
printf '%-28s %8d  (IRAM above .iram0.text/.bss: 32-bit accesses only)\n' "IRAM heap at boot" "$iram_heap"
printf '%-28s %8d\n' "app image (.bin)" "$(stat -c %s "$bin")"
printf '%-28s %8d\n' "bootloader (.bin)" "$(stat -c %s "$build/bootloader/bootloader.bin")"
printf '%-28s %8d\n' "partition table (.bin)" "$(stat -c %s "$build/partitions.bin")"
# What the Rust library (netpool, netpool-lwip, the bridge, core) and netpool-lwip's
# shim add, by output section, from the linker's map file.
python3 - "$map" <<'PY'
import re, sys
totals, out = {}, None
pending = None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^(\.[\w.]+)\s+0x[0-9a-f]+\s+0x[0-9a-f]+", line)
    if m:
        out = m.group(1)
        continue
    m = re.match(r"^ (\.[^\s]+)\s*$", line)
    if m:
        pending = True
        continue
    m = re.match(r"^ (?:\.[^\s]+)?\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+(.+)$", line)
    if m and out and ("libbridge_esp8266.a" in m.group(2) or "netpool_shim.o" in m.group(2)):
        totals[out] = totals.get(out, 0) + int(m.group(1), 16)
    pending = None
keep = [s for s in (".iram0.text", ".dram0.data", ".dram0.bss", ".flash.text", ".flash.rodata") if s in totals]
print("Rust library + netpool-lwip shim (map): " + ", ".join(f"{s} {totals[s]}" for s in keep))
PY
# The tcpip thread's stack: a static worst case over the call graph from lwIP's
# tcpip_thread (stack_depth.py), with the calls lwIP makes through function pointers
# on this path added by hand: its timers and callback messages (the bridge's pass and
# its start, which builds the bridge in place in its static),
# packet input, the netif output chain, and netpool-lwip's TCP callbacks.
echo
echo "=== tcpip thread stack (static estimate; CONFIG_LWIP_TCPIP_TASK_STACK_SIZE=$(sed -n 's/^CONFIG_LWIP_TCPIP_TASK_STACK_SIZE=//p' "$out/sdkconfig"))"
python3 "$here/stack_depth.py" "$elf" tcpip_thread \
    --edge sys_check_timeouts=pass_timer --edge 'tcpip_thread_handle_msg|tcpip_thread=pass_msg' \
    --edge 'tcpip_thread_handle_msg|tcpip_thread=start_in_tcpip' \
    --edge 'tcpip_thread_handle_msg|tcpip_thread=ethernet_input' --edge ip4_output_if_opt_src=etharp_output \
    --edge ip4_frag=etharp_output --edge ethernet_output=low_level_output \
    --edge tcp_input=ffi7on_recv --edge tcp_input=ffi7on_sent --edge tcp_input=ffi6on_err \
    --edge tcp_input=ffi9on_accept --edge tcp_input=ffi12on_connected --edge tcp_process=ffi7on_recv \
    --edge tcp_abandon=ffi6on_err --edge tcp_slowtmr=ffi6on_err --edge tcp_slowtmr=ffi7on_sent \
    --edge bridge_pass=take_m122 | awk 'NR <= 10 || /^reachable|^recursion/'
echo
echo "=== main task stack, printing the M122 report (static estimate; CONFIG_ESP_MAIN_TASK_STACK_SIZE=$(sed -n 's/^CONFIG_ESP_MAIN_TASK_STACK_SIZE=//p' "$out/sdkconfig"))"
python3 "$here/stack_depth.py" "$elf" app_main --edge app_main=bridge_print_report \
    --edge '4core3fmt5write=Display3fmt' --edge '4core3fmt5write=Debug3fmt' \
    --edge '4core3fmt5write=7Console' --edge 'Formatter3pad=7Console' --edge 'pad_integral=7Console' |
    awk 'NR == 1 || /^reachable/'
echo
echo "flash image: $bin (+ bootloader at 0x0, partition table at 0x8000; make print_flash_cmd)"
