#!/usr/bin/env bash
# The main job: compile the bundled camera and lidar models, check them against their
# reference outputs, run them on the bundled sample sensor data, benchmark the Cadence
# CPU backend against onnxruntime and tract in the same process (onnxruntime from
# ORT_DYLIB_PATH, else tools/setup-onnxruntime.sh installs it), then run the bundled
# scenario (camera at 30 Hz, lidar at 10 Hz, each on its own worker) against its
# deadlines: the schedulability verdict, a reproducible simulation, and the deadline
# profiler's report on the host's clock.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/build-models.sh
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH="$(bash tools/setup-onnxruntime.sh)"
fi
export ORT_DYLIB_PATH
cadence=target/release/cadence
out=out/main
mkdir -p "$out"

echo; echo "=== camera detector on a real photograph (models/data/camera/frame_000.npy) ==="
"$cadence" inspect models/camera/camera_det.cpk
"$cadence" run models/camera/camera_det.cpk --input image=models/data/camera/frame_000.npy --output-dir "$out/camera"

echo; echo "=== lidar pillar feature net on a real sweep (models/data/lidar) ==="
"$cadence" run models/lidar/pfn.cpk --input pillars=models/data/lidar/sweep_000.npy --output-dir "$out/lidar"

echo; echo "=== Cadence CPU backend vs onnxruntime and tract, same process ==="
for pkg in models/camera/camera_det.cpk models/camera/camera_det_pruned.cpk \
           models/lidar/pfn.cpk models/lidar/backbone.cpk models/lidar/backbone_pruned.cpk; do
    "$cadence" bench "$pkg" --frames "${CADENCE_BENCH_FRAMES:-30}"
done

echo; echo "=== the bundled scenario: is it schedulable? (scenarios/highway.toml) ==="
# Exit status 1 means a task can miss its deadline: the verdict is the output here.
"$cadence" schedule scenarios/highway.toml || true

echo; echo "=== simulated clock, recorded budgets, from the critical instant ==="
"$cadence" sim scenarios/highway.toml --frames 3000 --trace "$out/highway.trace.json"

echo; echo "=== host clock, real frame paths: the deadline profiler ==="
"$cadence" profile scenarios/highway.toml --seconds "${CADENCE_SCENARIO_SECONDS:-10}" \
    --frames 20 --out "$out/report"
echo "open $out/report/report.html for the histograms, timeline and per-layer profile"
