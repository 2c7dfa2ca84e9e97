#!/usr/bin/env bash
# Cross-builds the host binary `cadence` for aarch64 Linux (aarch64-unknown-linux-gnu,
# an SoC's application cores) and runs it under qemu-aarch64:
#  1. builds it without the `tract` feature: the CPU backend needs no tract, and tract
#     cross-built alone takes ~20 min on 2 cores;
#     cadence-dut (targets/host, the HIL rig's host DUT) is built alongside and
#     only started (`--help`): the rig drives it;
#  2. prints the binaries' `file`, size and sections;
#  3. runs `cadence selftest` on every bundled package (models/**/*.cpk, built on the
#     host by tools/build-models.sh): the package's test vectors, made by tract on the
#     host, are the reference the aarch64 CPU backend must meet;
#  4. runs `cadence run-scenario scenarios/highway.toml` for CADENCE_AARCH64_SECONDS
#     (default 5) seconds: every released frame must end in exactly one state and none
#     may fail. Deadlines are printed, not judged: qemu is an emulator, not the SoC;
#  5. runs the HIL rig hil-tests/rigs/qemu-aarch64.toml (`tools/hil.sh qemu-aarch64`):
#     cadence-dut under qemu-aarch64 as the device under test, about 60 s of frames,
#     JUnit and report in out/hil/qemu-aarch64/.
# Needs tools/setup-cross.sh run once. Exits non-zero on any failed step; prints the
# wall time of each.
#
# No build-std and no `.cargo/config.toml`: Debian ships the arm64 standard library
# prebuilt (libstd-rust-web-dev:arm64), for its own rustc 1.96 only (rustc refuses a
# library from another release; setup-cross.sh checks the versions match). rustup's
# toolchain here has no aarch64 target and cannot download one, and its proxies come
# first on PATH, so the build calls /usr/bin/cargo with RUSTC=/usr/bin/rustc. The linker
# and runner are given as CARGO_TARGET_<triple>_* variables, which touch nothing but
# this target, and the build has its own target directory: another compiler's
# artifacts, and no waiting on the host build's lock.
#
# The runner's library prefix is `/`, not /usr/aarch64-linux-gnu: the arm64 libstd
# package pulls in libc6:arm64, so the host's /etc/ld.so.cache (which the guest's loader
# reads) lists /usr/lib/aarch64-linux-gnu/libc.so.6. With the cross prefix the cross
# package's ld.so (glibc 2.36-8cross1) loads that libc (2.36-9+deb12u14), and the first
# pthread_create spins forever; with `/` the loader and libc are libc6:arm64's own pair.
set -euo pipefail
cd "$(dirname "$0")/.."

triple=aarch64-unknown-linux-gnu
target_dir=target/aarch64
binary=$target_dir/$triple/release/cadence
dut=$target_dir/$triple/release/cadence-dut
runner=(qemu-aarch64 -L /)
seconds=${CADENCE_AARCH64_SECONDS:-5}
# Emulated runs that take longer than this have hung (see above): they fail the step.
run_limit=${CADENCE_AARCH64_RUN_LIMIT:-600}

for tool in /usr/bin/cargo /usr/bin/rustc aarch64-linux-gnu-gcc qemu-aarch64 jq; do
    if ! command -v "$tool" >/dev/null; then
        echo "aarch64: $tool not found; run tools/setup-cross.sh first" >&2
        exit 1
    fi
done
mapfile -t packages < <(find models -name '*.cpk' | sort)
if [ ${#packages[@]} -eq 0 ]; then
    echo "aarch64: no models/**/*.cpk; run tools/build-models.sh first" >&2
    exit 1
fi

# Runs "$@" and prints its wall time after it (on stderr: stdout may be redirected);
# the step's exit status is kept.
timed() {
    local start status
    start=$(date +%s.%N)
    status=0
    "$@" || status=$?
    awk -v start="$start" -v end="$(date +%s.%N)" -v what="$*" \
        'BEGIN { printf "aarch64: %.1f s: %s\n", end - start, what }' >&2
    return "$status"
}

step() { printf '\n=== aarch64: %s ===\n' "$*"; }

step "build cadence (no tract) and cadence-dut for $triple"
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# `cargo run --target $triple` uses it too.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="${runner[*]}"
crates=(-p cadence-cli -p cadence-host --no-default-features)
timed /usr/bin/cargo build --release --locked --target "$triple" --target-dir "$target_dir" \
    "${crates[@]}" --bin cadence --bin cadence-dut
if /usr/bin/cargo tree --locked --target "$triple" "${crates[@]}" -e normal --prefix none |
    grep -q '^tract'; then
    echo "aarch64: tract is in the build; the cross build must not need it" >&2
    exit 1
fi

step "binaries"
file "$binary" "$dut"
ls -l "$binary" "$dut"
aarch64-linux-gnu-size "$binary" "$dut"
timed timeout "$run_limit" "${runner[@]}" "$dut" --help >/dev/null

step "selftest under qemu-aarch64 (reference: each package's test vectors)"
for package in "${packages[@]}"; do
    timed timeout "$run_limit" "${runner[@]}" "$binary" selftest "$package"
done

step "scenarios/highway.toml for $seconds s under qemu-aarch64"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
timed timeout "$run_limit" "${runner[@]}" "$binary" run-scenario scenarios/highway.toml \
    --seconds "$seconds" --json >"$report"
jq -r '.tasks[] | "\(.name): released \(.released), met \(.met), late \(.late), skipped \(.skipped), failed \(.failed), response p50 \(.response_ms.p50) ms"' "$report"
# Every released frame ended in exactly one state, none failed, and each task finished
# at least one frame through its real frame path.
if ! jq -e 'all(.tasks[]; .met + .late + .skipped + .failed == .released
        and .failed == 0 and .met + .late > 0)' "$report" >/dev/null; then
    echo "aarch64: the scenario lost, failed or never finished a frame:" >&2
    cat "$report" >&2
    exit 1
fi

step "HIL rig qemu-aarch64 (cadence-dut under qemu-aarch64 as the device under test)"
# hil.sh builds the host's cadence-hil with the host toolchain: not with the RUSTC
# exported above for the cross build (Debian's rustc would rebuild target/release).
timed env -u RUSTC bash tools/hil.sh qemu-aarch64
echo "aarch64: all passed"
