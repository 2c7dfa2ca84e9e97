#!/usr/bin/env bash
# One table over every model the repo knows, Cadence against onnxruntime and tract in
# the same process (`cadence bench --json` on each): the bundled packages
# (tools/build-models.sh) and the external corpus (tools/corpus/fetch.sh, compiled into
# out/bench/packages/). Prints p50s, ratios, the geometric mean of Cadence/onnxruntime,
# allocations per frame and the arena against its liveness bound (tools/bench.py).
#
#   bash tools/bench.sh                # 10 timed frames per peer and model: about 5 minutes
#   bash tools/bench.sh --frames 100   # steadier figures, longer
#
# CADENCE names a binary already built; ORT_DYLIB_PATH, if set, the onnxruntime library
# (else tools/setup-onnxruntime.sh installs and names it).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CADENCE:-}" ]; then
    cargo build --release -p cadence-cli --quiet
fi
cadence=${CADENCE:-target/release/cadence}
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH="$(bash tools/setup-onnxruntime.sh)"
fi
export ORT_DYLIB_PATH

# The bundled packages, rebuilt when missing or older than the binary (its compiler may
# have changed the format).
for onnx in models/camera/*.onnx models/lidar/*.onnx; do
    if [ ! "${onnx%.onnx}.cpk" -nt "$cadence" ]; then
        CADENCE="$cadence" bash tools/build-models.sh >&2
        break
    fi
done
bash tools/corpus/fetch.sh >&2

python3 tools/bench.py "$cadence" "$@"
