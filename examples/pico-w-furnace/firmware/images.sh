#!/usr/bin/env bash
# Builds the pico-w-furnace firmware images (ELF + UF2) and prints their flash and
# RAM sizes.
#
#   bash examples/pico-w-furnace/firmware/images.sh
#
# Images, in target/pico-w-furnace-firmware/images/:
#   pico-w-furnace-wifi.{elf,uf2}         feature `wifi` (the default): the one to flash.
#                                         WiFi credentials come from WIFI_SSID /
#                                         WIFI_PASSWORD in the environment, if set;
#                                         without them the network side stays off.
#   pico-w-furnace-no-wifi.{elf,uf2}      --no-default-features: the control firmware
#                                         without the CYW43 (for rp2040js).
#   pico-w-furnace-wifi-dummy-creds.{elf,uf2}
#                                         `wifi` built with WIFI_SSID=rp2040js-no-radio,
#                                         so its CYW43 bring-up runs: in rp2040js (no
#                                         CYW43 model) the network is dead. Never flash it.
#
# Needs the thumbv6m-none-eabi target, llvm-tools and elf2uf2-rs:
#   rustup target add thumbv6m-none-eabi && rustup component add llvm-tools
#   cargo install --locked --no-default-features elf2uf2-rs
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(cd ../../.. && pwd)
TARGET=thumbv6m-none-eabi
# The same target dir as .cargo/config.toml, spelled out for the paths below.
TARGET_DIR=$ROOT/target/pico-w-furnace-firmware
OUT=$TARGET_DIR/images
ELF=$TARGET_DIR/$TARGET/release/pico-w-furnace

HOST=$(rustc -vV | sed -n 's/^host: //p')
SIZE="$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-size"
[[ -x "$SIZE" ]] || {
    echo "error: $SIZE not found; run: rustup component add llvm-tools" >&2
    exit 1
}
command -v elf2uf2-rs >/dev/null || {
    echo "error: elf2uf2-rs not found; run: cargo install --locked --no-default-features elf2uf2-rs" >&2
    exit 1
}
mkdir -p "$OUT"

# Not --locked: Cargo.lock pins the embassy/cyw43 set, but netpool's and the
# pico-w-furnace package's own dependencies may change without anyone touching this
# crate; say so if they did.
LOCK_BEFORE=$(cksum <Cargo.lock)

build() { # build NAME [cargo args...]
    local name=$1
    shift
    echo "+ ${WIFI_SSID:+WIFI_SSID=$WIFI_SSID }cargo build --release --target-dir $TARGET_DIR $*  -> $name"
    cargo build --release --target "$TARGET" --target-dir "$TARGET_DIR" "$@"
    cp "$ELF" "$OUT/$name.elf"
    elf2uf2-rs "$OUT/$name.elf" "$OUT/$name.uf2" >/dev/null
}

if [[ -n "${WIFI_SSID:-}" ]]; then
    echo "note: WIFI_SSID is set: pico-w-furnace-wifi.uf2 joins \"$WIFI_SSID\""
else
    echo "note: WIFI_SSID not set: pico-w-furnace-wifi.uf2 has no credentials (network side stays off)"
fi
build pico-w-furnace-wifi
build pico-w-furnace-no-wifi --no-default-features
WIFI_SSID=rp2040js-no-radio WIFI_PASSWORD=unused build pico-w-furnace-wifi-dummy-creds

if [[ $(cksum <Cargo.lock) != "$LOCK_BEFORE" ]]; then
    echo "note: cargo updated examples/pico-w-furnace/firmware/Cargo.lock (a path dependency's dependencies changed); commit it" >&2
fi

# section ELF -> size in bytes (0 when absent)
section() {
    "$SIZE" -A "$2" | awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}

echo
echo "pico-w-furnace firmware sizes ($TARGET, opt-level s, fat LTO; llvm-size -A)"
echo "flash = .boot2 + .vector_table + .text + .rodata + .data (its initial values)"
echo "RAM   = .data + .bss + .uninit (static; the stack takes the rest of the 256 KiB)"
echo
printf '%-34s %8s %8s %8s %7s %7s %8s %8s %9s\n' image .text .rodata .data .bss .uninit flash RAM "UF2 file"
for name in pico-w-furnace-wifi pico-w-furnace-no-wifi pico-w-furnace-wifi-dummy-creds; do
    elf=$OUT/$name.elf
    text=$(section .text "$elf")
    rodata=$(section .rodata "$elf")
    data=$(section .data "$elf")
    bss=$(section .bss "$elf")
    uninit=$(section .uninit "$elf")
    vt=$(section .vector_table "$elf")
    boot2=$(section .boot2 "$elf")
    flash=$((boot2 + vt + text + rodata + data))
    ram=$((data + bss + uninit))
    uf2=$(stat -c %s "$OUT/$name.uf2")
    printf '%-34s %8d %8d %8d %7d %7d %8d %8d %9d\n' "$name" "$text" "$rodata" "$data" "$bss" "$uninit" \
        "$flash" "$ram" "$uf2"
done
echo
echo "full section list of the WiFi image:"
"$SIZE" -A "$OUT/pico-w-furnace-wifi.elf" | awk 'NR <= 2 || ($1 !~ /^\.debug/ && $1 !~ /^\.(comment|ARM|defmt|gnu)/ && NF == 3)'
echo
echo "images in $OUT"
