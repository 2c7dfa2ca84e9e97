#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine, in two halves because the GPU machine
# has no Rust toolchain and no network:
#
#   tools/gpu-check.sh prepare            # here (x86-64, Rust): builds what travels
#   tools/gpu-check.sh run [PACKAGE...]   # there, from the repository root
#
# `prepare` builds the `cadence` binary with the cuda feature (stripped) and the
# hal CUDA test binary into .gpu/ (ignored by git), and prints its size: carry `.gpu`
# and the packages to check (models/**/*.cpk are gitignored: carry them too; the
# device tool carries 64 MiB per call, so the lidar packages go one call each).
#
# `run` prints the device, runs the op-by-op GPU tests against the CPU backend,
# `cadence selftest --backend cuda` on each package, then `cadence bench --backend
# cuda` over $FRAMES frames (default 10000) and a table of p50/p99/p99.9 and
# p99.9/p50; with onnxruntime-gpu importable (wheels carried, see the device README)
# it adds the same figures for onnxruntime's CUDA provider on the package's source
# ONNX next to it. Exits non-zero when any test or self-test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

out=.gpu
frames=${FRAMES:-10000}
warmup=${WARMUP:-100}

prepare() {
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    mkdir -p "$out/bin"
    # Without tract where the CLI has that feature: packages are compiled already, and
    # the binary is smaller and builds faster.
    if grep -q '^tract = ' tools/cli/Cargo.toml; then
        cargo build --release -p cadence-cli --no-default-features --features cuda
    else
        cargo build --release -p cadence-cli --features cuda
    fi
    strip -o "$out/bin/cadence" target/release/cadence
    local test_binary
    test_binary=$(cargo test --release -p cadence-hal --features cuda --test cuda --no-run \
        --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda":
        print(m["executable"])')
    strip -o "$out/bin/hal-cuda-tests" "$test_binary"
    du -sh "$out"
    echo "carry: .gpu plus the packages to check, e.g. models/camera/camera_det.cpk"
}

# Percentiles of onnxruntime-gpu on `onnx`, as JSON like `cadence bench --json`.
ort_bench() {
    python3 - "$1" "$frames" "$warmup" <<'PY'
import json, math, sys, time
import numpy as np
import onnxruntime as ort
path, frames, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
session = ort.InferenceSession(path, providers=["CUDAExecutionProvider"])
if session.get_providers()[0] != "CUDAExecutionProvider":
    sys.exit("onnxruntime fell back to the CPU")
rng = np.random.default_rng(0)
feed = {
    i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
    for i in session.get_inputs()
}
for _ in range(warmup):
    session.run(None, feed)
times = []
for _ in range(frames):
    start = time.perf_counter()
    session.run(None, feed)
    times.append((time.perf_counter() - start) * 1e3)
times.sort()
pick = lambda p: times[min(len(times), max(1, math.ceil(p / 100 * len(times)))) - 1]  # nearest rank, as cadence bench
print(json.dumps({"onnxruntime-gpu": {"p50_ms": pick(50), "p99_ms": pick(99), "p999_ms": pick(99.9), "max_ms": times[-1]}}))
PY
}

run() {
    local cadence=$out/bin/cadence
    local status=0
    [ -x "$cadence" ] || { echo "no $cadence: run \`tools/gpu-check.sh prepare\` where Rust is and carry .gpu" >&2; exit 2; }
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
    echo "== op-by-op: CUDA kernels against the CPU backend"
    "$out/bin/hal-cuda-tests" --include-ignored || status=1
    local packages=("$@")
    if [ ${#packages[@]} -eq 0 ]; then
        for p in models/camera/camera_det.cpk models/lidar/pfn.cpk models/lidar/backbone.cpk; do
            [ -f "$p" ] && packages+=("$p")
        done
    fi
    [ ${#packages[@]} -gt 0 ] || { echo "no packages: carry models/**/*.cpk or name them" >&2; exit 2; }
    local results=()
    for pkg in "${packages[@]}"; do
        echo "== selftest $pkg on cuda"
        "$cadence" selftest "$pkg" --backend cuda || status=1
        echo "== bench $pkg on cuda, $frames frames"
        local json
        json=$("$cadence" bench "$pkg" --backend cuda --frames "$frames" --warmup "$warmup" --json) || { status=1; continue; }
        results+=("$pkg" "$json")
        local onnx=${pkg%.cpk}.onnx
        if [ -f "$onnx" ] && python3 -c 'import onnxruntime as o; assert "CUDAExecutionProvider" in o.get_available_providers()' 2>/dev/null; then
            results+=("$pkg" "$(ort_bench "$onnx")")
        fi
    done
    python3 - "${results[@]}" <<'PY'
import json, sys
args = sys.argv[1:]
print(f"{'package':36} {'backend':16} {'p50 ms':>9} {'p99 ms':>9} {'p99.9 ms':>9} {'p99.9/p50':>9}")
for pkg, blob in zip(args[::2], args[1::2]):
    for backend, f in json.loads(blob).items():
        if isinstance(f, dict) and "p50_ms" in f:
            print(f"{pkg:36} {backend:16} {f['p50_ms']:9.3f} {f['p99_ms']:9.3f} {f['p999_ms']:9.3f} {f['p999_ms'] / f['p50_ms']:9.3f}")
PY
    return $status
}

case "${1:-}" in
    prepare) prepare ;;
    run) shift; run "$@" ;;
    *) echo "usage: tools/gpu-check.sh prepare | run [PACKAGE...]" >&2; exit 2 ;;
esac
