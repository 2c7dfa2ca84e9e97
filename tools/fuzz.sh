#!/usr/bin/env bash
# Fuzzes every parser that reads outside input (fuzz/fuzz_targets: cpk, wire, scenario,
# npy) for SECONDS each (default 30) with libFuzzer through cargo-fuzz, starting from the
# seeds (fuzz/seeds/<target>; the scenario target reads scenarios/ and its bad/ fixtures)
# plus what earlier runs kept (fuzz/corpus/<target>).
# Exits non-zero if any target crashes, times out or breaks its contract; the input
# that did it is in fuzz/artifacts/<target>/ and the log in fuzz/logs/<target>.log.
#
#   bash tools/fuzz.sh          # CI: 30 s per target
#   bash tools/fuzz.sh 600      # by hand: 10 minutes per target
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-30}"
targets=(cpk wire scenario npy)

step() { printf '\n=== %s ===\n' "$*"; }

step "toolchain"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly --version
cargo fuzz --version

step "build (release, debug assertions, AddressSanitizer; own target dir fuzz/target)"
cargo +nightly fuzz build

# Packages the firmware build made (small ones only: a large seed slows every run).
mkdir -p corpus/cpk logs
: >logs/summary.txt
if compgen -G "../out/firmware/*.cpk" >/dev/null; then
    find ../out/firmware -maxdepth 1 -name '*.cpk' -size -256k -exec cp {} corpus/cpk/ \;
fi

failed=()
for target in "${targets[@]}"; do
    step "fuzz $target for ${seconds}s"
    mkdir -p "corpus/$target"
    log="logs/$target.log"
    # The scenario target resolves package paths against the current directory: here
    # (fuzz/) none exist, so a fuzzed file never loads a multi-megabyte model per run.
    seeds="seeds/$target"
    [ "$target" = scenario ] && seeds=../scenarios
    if cargo +nightly fuzz run "$target" "corpus/$target" "$seeds" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        verdict=ok
    else
        verdict=FAILED
        failed+=("$target")
        tail -n 40 "$log"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(find "corpus/$target" -type f | wc -l)
    printf '%-9s %-6s execs=%s cov=%s ft=%s corpus=%s\n' \
        "$target" "$verdict" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corpus" | tee -a logs/summary.txt
done

if ((${#failed[@]})); then
    printf '\nfuzzing failed: %s (inputs in fuzz/artifacts/, logs in fuzz/logs/)\n' "${failed[*]}"
    exit 1
fi
printf '\nevery target ran %ss with no crash\n' "$seconds"
