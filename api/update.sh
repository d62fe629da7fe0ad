#!/usr/bin/env bash
# The committed public-API listings, so that API changes show in review:
#   api/netpool.txt       netpool, all features
#   api/netpool-lwip.txt  netpool-lwip, default features (what firmware ships)
# Made from rustdoc's JSON (the pinned nightly .ci/run installs) by api/lister, a
# few lines over the `public-api` library that cargo-public-api 0.52.0 is built on:
# the listing is what `cargo public-api --omit blanket-impls` prints (blanket impls
# such as `impl<T> From<T> for T` left out, auto traits kept), and the tool builds in
# seconds instead of minutes.
#
#   bash api/update.sh          regenerate the listings (commit them with the change)
#   bash api/update.sh --check  fail, showing the difference, if a listing is out of date
#
# Needs the pinned nightly (`rustup toolchain install nightly-2026-10-29`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NIGHTLY=${NETPOOL_NIGHTLY:-nightly-2026-10-29}
# Nightly builds kept apart from the stable ones (see .ci/run's target-dir layout).
TARGET_DIR=${NETPOOL_API_TARGET_DIR:-$PWD/target/public-api}

check=false
case "${1:-}" in
    --check) check=true ;;
    "") ;;
    *)
        echo "usage: bash api/update.sh [--check]" >&2
        exit 2
        ;;
esac

echo "+ cargo build --locked --manifest-path api/lister/Cargo.toml" >&2
cargo build --quiet --locked --manifest-path api/lister/Cargo.toml --target-dir "$TARGET_DIR/lister"
LISTER=$TARGET_DIR/lister/debug/netpool-api-listing

# listing PACKAGE FILE ARGS...: write PACKAGE's listing to FILE, or compare with it.
stale=0
listing() {
    local package=$1 file=$2 json out
    shift 2
    json=$TARGET_DIR/doc/${package//-/_}.json
    echo "+ cargo +$NIGHTLY rustdoc -p $package --lib $* -- -Zunstable-options --output-format json" >&2
    cargo +"$NIGHTLY" rustdoc --quiet -p "$package" --lib --target-dir "$TARGET_DIR" "$@" \
        -- -Zunstable-options --output-format json
    out=$(mktemp)
    "$LISTER" "$json" >"$out"
    if $check; then
        if diff -u "$file" "$out" >&2; then
            echo "$file is up to date" >&2
        else
            echo "error: $file is out of date: run 'bash api/update.sh' and commit it" >&2
            stale=1
        fi
        rm -f "$out"
    else
        mv "$out" "$file"
        echo "wrote $file ($(wc -l <"$file") lines)" >&2
    fi
}

listing netpool api/netpool.txt --all-features
listing netpool-lwip api/netpool-lwip.txt
exit "$stale"
