#!/usr/bin/env bash
# Compiles the bundled camera and lidar models into .cpk packages (next to their .onnx
# sources) and runs each package's self-test. Idempotent; takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

# CADENCE names a binary already built (tools/test.sh passes the one `cargo test`
# built, so the release dependency graph is not built twice).
if [ -z "${CADENCE:-}" ]; then
    cargo build --release -p cadence-cli --quiet
fi
cadence=${CADENCE:-target/release/cadence}
data=models/data

compile() {
    local onnx=$1; shift
    "$cadence" compile "$onnx" -o "${onnx%.onnx}.cpk" "$@"
}

for variant in camera_det camera_det_pruned; do
    compile "models/camera/$variant.onnx" --family camera --preprocess camera-imagenet:320x320 \
        --test-input "image=$data/camera/frame_000_input.npy"
done
compile models/lidar/pfn.onnx --family lidar-pfn --preprocess lidar-pillars:12000x32
for variant in backbone backbone_pruned; do
    compile "models/lidar/$variant.onnx" --family lidar-backbone
done

for pkg in models/camera/camera_det.cpk models/camera/camera_det_pruned.cpk \
           models/lidar/pfn.cpk models/lidar/backbone.cpk models/lidar/backbone_pruned.cpk; do
    "$cadence" selftest "$pkg"
done
