# Helpers for .ci/run (sourced, not executed).
#
# Everything here is idempotent: each ensure_* checks first and only touches
# the network when something is actually missing, so a warm machine spends
# well under a second on the install section.

# ---------------------------------------------------------------- sections ---

_CI_START=$SECONDS
_CI_SECTION=""
_CI_SECTION_START=$SECONDS
_CI_TIMES=()

_ci_close_section() {
    if [[ -n "$_CI_SECTION" ]]; then
        _CI_TIMES+=("$(printf '%5ds  %s' $((SECONDS - _CI_SECTION_START)) "$_CI_SECTION")")
    fi
}

# section "name": print a header and start timing a new section.
section() {
    _ci_close_section
    _CI_SECTION="$1"
    _CI_SECTION_START=$SECONDS
    printf '\n=============================================================\n'
    printf '=== %s\n' "$1"
    printf '=============================================================\n'
}

_ci_on_exit() {
    local rc=$?
    _ci_close_section
    printf '\n=== timings\n'
    local t
    for t in "${_CI_TIMES[@]}"; do printf '%s\n' "$t"; done
    printf '%5ds  total\n' $((SECONDS - _CI_START))
    if [[ $rc -eq 0 ]]; then
        printf '\nCI PASSED\n'
    else
        printf '\nCI FAILED (exit %d) in section: %s\n' "$rc" "${_CI_SECTION:-<setup>}" >&2
    fi
}
trap _ci_on_exit EXIT

# run CMD...: echo the command, then run it (set -e aborts on failure).
run() {
    printf '+ %s\n' "$*"
    "$@"
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# retry CMD...: up to 3 attempts for network-bound installs.
retry() {
    local n
    for n in 1 2 3; do
        if "$@"; then return 0; fi
        printf 'warning: attempt %d failed: %s\n' "$n" "$*" >&2
        sleep $((n * 5))
    done
    die "giving up after 3 attempts: $*"
}

# ------------------------------------------------------------------ rustup ---
# Output is captured into variables before grepping: `rustup ... | grep -q`
# under `pipefail` can fail spuriously with SIGPIPE.

_host_triple() {
    rustc -vV | sed -n 's/^host: //p'
}

# ensure_component TOOLCHAIN COMPONENT... (TOOLCHAIN "" = the active one)
ensure_component() {
    local tc=$1; shift
    local tcarg=() installed c missing=()
    [[ -n "$tc" ]] && tcarg=(--toolchain "$tc")
    installed=$(rustup component list --installed "${tcarg[@]}")
    for c in "$@"; do
        # installed names look like `clippy-x86_64-unknown-linux-gnu`, `rust-src`
        if ! grep -qxF -e "$c" -e "$c-$(_host_triple)" <<<"$installed"; then
            missing+=("$c")
        fi
    done
    if ((${#missing[@]})); then
        retry rustup component add "${tcarg[@]}" "${missing[@]}"
    else
        printf 'components present%s: %s\n' "${tc:+ ($tc)}" "$*"
    fi
}

# ensure_target TRIPLE... (active toolchain)
ensure_target() {
    local installed t missing=()
    installed=$(rustup target list --installed)
    for t in "$@"; do
        grep -qxF "$t" <<<"$installed" || missing+=("$t")
    done
    if ((${#missing[@]})); then
        retry rustup target add "${missing[@]}"
    else
        printf 'targets present: %s\n' "$*"
    fi
}

# ensure_toolchain NAME COMPONENT...: minimal profile plus extra components.
ensure_toolchain() {
    local tc=$1; shift
    local list
    list=$(rustup toolchain list)
    if grep -qE "^${tc}-[a-z0-9_]+-" <<<"$list"; then
        printf 'toolchain present: %s\n' "$tc"
        ensure_component "$tc" "$@"
    else
        local comps=() c
        for c in "$@"; do comps+=(-c "$c"); done
        retry rustup toolchain install "$tc" --profile minimal "${comps[@]}" --no-self-update
    fi
}

# --------------------------------------------------------------------- apt ---
# ensure_apt PACKAGE...: install Debian packages that are not yet installed.
# (Unused for now; for later issues, e.g. gcc-xtensa-lx106, qemu-system-misc.)
ensure_apt() {
    local p missing=()
    for p in "$@"; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) == *"ok installed"* ]] ||
            missing+=("$p")
    done
    if ((${#missing[@]})); then
        local sudo=()
        [[ $(id -u) -ne 0 ]] && sudo=(sudo)
        retry "${sudo[@]}" apt-get update -qq
        retry "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        printf 'apt packages present: %s\n' "$*"
    fi
}
