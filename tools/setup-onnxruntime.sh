#!/usr/bin/env bash
# Installs the onnxruntime shared library that `cadence bench` loads as a peer, from the
# PyPI wheel (the same build the corpus references come from), into <repo>/.onnxruntime/
# (gitignored). Idempotent. Prints the library's path on stdout, to export as
# ORT_DYLIB_PATH:
#
#   export ORT_DYLIB_PATH="$(bash tools/setup-onnxruntime.sh)"
#
# Only the library is needed, so the wheel goes in with --no-deps into a plain folder:
# no venv (Debian's python3 may lack ensurepip) and no numpy or protobuf.
set -euo pipefail

version=1.32.0
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$repo/.onnxruntime"
py="${PYTHON:-python3}"

find_lib() {
    compgen -G "$dir/$version/onnxruntime/capi/libonnxruntime.so.*" | head -n 1
}

if [ -z "$(find_lib)" ]; then
    echo "installing onnxruntime $version into $dir/$version" >&2
    rm -rf "$dir/$version.part"
    PIP_ROOT_USER_ACTION=ignore "$py" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary :all: \
        --target "$dir/$version.part" "onnxruntime==$version" >&2
    mv "$dir/$version.part" "$dir/$version"
fi
lib="$(find_lib)"
if [ -z "$lib" ]; then
    echo "error: the onnxruntime $version wheel has no onnxruntime/capi/libonnxruntime.so.*" >&2
    exit 1
fi
echo "onnxruntime $version: export ORT_DYLIB_PATH=$lib" >&2
echo "$lib"
