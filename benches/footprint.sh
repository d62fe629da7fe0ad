#!/usr/bin/env bash
# Flash and RAM netpool adds to a small RP2040 (thumbv6m-none-eabi) firmware.
#
#   bash benches/footprint.sh            # table
#   bash benches/footprint.sh --json     # JSON on stdout
#
# Builds examples/footprint (its own workspace and Cargo.lock) twice -- the service loop
# on the raw stack, and the same loop through a netpool Pool (feature `pool`) --
# and prints the section sizes of both (llvm-size) and their difference, plus
# size_of of pools on this target, read from the firmware's symbol table (llvm-nm).
#
# Needs the thumbv6m-none-eabi target and llvm-tools:
#   rustup target add thumbv6m-none-eabi && rustup component add llvm-tools
# Target dir: $FOOTPRINT_TARGET_DIR, default target/footprint.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TARGET=thumbv6m-none-eabi
TARGET_DIR=${FOOTPRINT_TARGET_DIR:-$ROOT/target/footprint}
JSON=0
[[ "${1:-}" == "--json" ]] && JSON=1

HOST=$(rustc -vV | sed -n 's/^host: //p')
TOOLS="$(rustc --print sysroot)/lib/rustlib/$HOST/bin"
SIZE="$TOOLS/llvm-size"
NM="$TOOLS/llvm-nm"
for tool in "$SIZE" "$NM"; do
    [[ -x "$tool" ]] || {
        echo "error: $tool not found; run: rustup component add llvm-tools" >&2
        exit 1
    }
done

log() { ((JSON)) || echo "$@"; }

# Not --locked: the committed Cargo.lock pins cortex-m & co., but netpool's own
# dependencies may change without anyone touching this crate; say so if they did.
LOCK="$ROOT/examples/footprint/Cargo.lock"
LOCK_BEFORE=$(cksum <"$LOCK")
build() { # build FEATURES OUT
    local features=$1 out=$2
    (cd "$ROOT/examples/footprint" &&
        cargo build --release --quiet --target "$TARGET" --target-dir "$TARGET_DIR" \
            ${features:+--features "$features"}) >&2
    cp "$TARGET_DIR/$TARGET/release/footprint" "$out"
}

RAW_ELF="$TARGET_DIR/footprint-raw.elf"
POOL_ELF="$TARGET_DIR/footprint-pool.elf"
build "" "$RAW_ELF"
build pool "$POOL_ELF"
if [[ $(cksum <"$LOCK") != "$LOCK_BEFORE" ]]; then
    echo "note: cargo updated examples/footprint/Cargo.lock (netpool's dependencies changed); commit it" >&2
fi

# section ELF -> size in bytes (0 when absent)
section() {
    "$SIZE" -A "$2" | awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}
# symbol ELF -> size in bytes
symsize() {
    local hex
    hex=$("$NM" -S "$2" | awk -v s="$1" '$4 == s { print $2 }')
    [[ -n "$hex" ]] || {
        echo "error: symbol $1 not in $2" >&2
        exit 1
    }
    echo $((16#$hex))
}
# ELF -> bytes of compiler-builtins mem* routines (memcpy, memmove, memset, memclr...)
builtins() {
    local n=0 hex
    for hex in $("$NM" -S -C "$1" |
        awk '$3 ~ /^[tT]$/ && ($4 ~ /^__aeabi_mem/ || $4 ~ /^compiler_builtins::mem::/) { print $2 }'); do
        n=$((n + 16#$hex))
    done
    echo "$n"
}

declare -A RAW POOL
SECTIONS=(.vector_table .text .rodata .data .bss)
for s in "${SECTIONS[@]}"; do
    RAW[$s]=$(section "$s" "$RAW_ELF")
    POOL[$s]=$(section "$s" "$POOL_ELF")
done
flash() { # name of assoc array
    local -n a=$1
    echo $((a[.vector_table] + a[.text] + a[.rodata] + a[.data]))
}
RAW_FLASH=$(flash RAW)
POOL_FLASH=$(flash POOL)
RAW_MEM=$(builtins "$RAW_ELF")
POOL_MEM=$(builtins "$POOL_ELF")
TEXT_DELTA=$((POOL[.text] - RAW[.text]))
MEM_DELTA=$((POOL_MEM - RAW_MEM))

P820=$(symsize NETPOOL_SIZE_POOL_8_2_0 "$POOL_ELF")
P82T=$(symsize NETPOOL_SIZE_POOL_8_2_256 "$POOL_ELF")
P1620=$(symsize NETPOOL_SIZE_POOL_16_2_0 "$POOL_ELF")
P162T=$(symsize NETPOOL_SIZE_POOL_16_2_256 "$POOL_ELF")
P840=$(symsize NETPOOL_SIZE_POOL_8_4_0 "$POOL_ELF")
SOCKET=$(symsize NETPOOL_SIZE_SOCKET_SLOT "$POOL_ELF")
SLOT0=$(((P1620 - P820) / 8))
SLOTT=$(((P162T - P82T) / 8))
LISTENER=$(((P840 - P820) / 2))

if ((JSON)); then
    printf '{\n  "target": "%s",\n  "sections": {' "$TARGET"
    sep=""
    for s in "${SECTIONS[@]}"; do
        printf '%s\n    "%s": {"raw": %d, "pool": %d, "delta": %d}' "$sep" "$s" "${RAW[$s]}" "${POOL[$s]}" \
            $((POOL[$s] - RAW[$s]))
        sep=","
    done
    printf '\n  },\n  "flash": {"raw": %d, "pool": %d, "delta": %d},\n' "$RAW_FLASH" "$POOL_FLASH" \
        $((POOL_FLASH - RAW_FLASH))
    printf '  "text_delta": %d,\n  "text_delta_mem_builtins": %d,\n' "$TEXT_DELTA" "$MEM_DELTA"
    printf '  "size_of": {"pool_8_2_0": %d, "pool_8_2_256": %d, "per_slot_tx0": %d, "per_slot_tx256": %d, "per_slot_beyond_socket_tx0": %d, "per_listener": %d}\n}\n' \
        "$P820" "$P82T" "$SLOT0" "$SLOTT" $((SLOT0 - SOCKET)) "$LISTENER"
    exit 0
fi

echo "netpool footprint on $TARGET (opt-level s, fat LTO, codegen-units 1; examples/footprint)"
echo "raw  = service loop on a do-nothing embedded-nal stack"
echo "pool = the same loop through Pool<Plain<stack>, 4, 2, 256>: poll, accept_next, read, write, close, report"
echo
printf '%-14s %8s %8s %8s\n' section raw pool delta
for s in "${SECTIONS[@]}"; do
    printf '%-14s %8d %8d %+8d\n' "$s" "${RAW[$s]}" "${POOL[$s]}" $((POOL[$s] - RAW[$s]))
done
printf '%-14s %8d %8d %+8d\n' "flash total" "$RAW_FLASH" "$POOL_FLASH" $((POOL_FLASH - RAW_FLASH))
echo
echo ".text netpool adds: $TEXT_DELTA bytes, of which $MEM_DELTA are compiler-builtins mem* routines"
echo "(memcpy/memmove/memset, which most real firmware links anyway): $((TEXT_DELTA - MEM_DELTA)) bytes of netpool and glue"
echo
echo "size_of on $TARGET (socket handle: u32):"
printf '  %-22s %6d bytes\n' "Pool<S, 8, 2, 0>" "$P820" "Pool<S, 8, 2, 256>" "$P82T"
printf '  %-22s %6d bytes (TX = 0), %d bytes (TX = 256)\n' "per slot" "$SLOT0" "$SLOTT"
printf '  %-22s %6d bytes (TX = 0; plus %d for the slot'"'"'s Option<socket>)\n' "beyond the socket" $((SLOT0 - SOCKET)) "$SOCKET"
printf '  %-22s %6d bytes\n' "per listener" "$LISTENER"
echo
echo "ELF files: $RAW_ELF $POOL_ELF"
