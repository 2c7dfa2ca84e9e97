#!/usr/bin/env python3
"""One table over every model the repo knows: `cadence bench --json` on each package,
Cadence against onnxruntime and tract. Standard library only; tools/bench.sh runs it
after it has built `cadence`, the bundled packages, the corpus and onnxruntime.

    python3 tools/bench.py CADENCE [--frames N] [--warmup N]

Packages: the bundled ones (models/**/*.cpk) and the corpus models (.corpus/*/*.onnx,
tools/corpus/fetch.sh), compiled here into out/bench/packages/ with the corpus's
reference input as the test vector, so every peer runs on the corpus's own data.
A model Cadence cannot compile (e.g. LRN) gets a row saying why.
"""

import argparse
import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = REPO / "out" / "bench" / "packages"


def varint(buf, i):
    """Decodes the protobuf varint at `buf[i]`; returns (value, next index)."""
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def length_delimited(buf):
    """The (field number, bytes) of every length-delimited field of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        wire = key & 7
        if wire == 0:
            _, i = varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            size, i = varint(buf, i)
            yield key >> 3, buf[i : i + size]
            i += size
        else:
            raise ValueError(f"protobuf wire type {wire} is not in ONNX")


def first_string(message, field):
    return next(bytes(v).decode() for n, v in length_delimited(message) if n == field)


def graph_inputs(onnx):
    """The ONNX graph's input names, initializers excluded (ModelProto.graph = 7;
    GraphProto.initializer = 5, .input = 11; TensorProto.name = 8; ValueInfoProto.name = 1)."""
    model = memoryview(onnx.read_bytes())
    graph = next(v for n, v in length_delimited(model) if n == 7)
    fields = list(length_delimited(graph))
    initializers = {first_string(v, 8) for n, v in fields if n == 5}
    names = (first_string(v, 1) for n, v in fields if n == 11)
    return [name for name in names if name not in initializers]


def npy_shape(path):
    """The shape in a .npy file's header."""
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ValueError(f"{path} is not a .npy file")
        major = f.read(2)[0]
        size = int.from_bytes(f.read(2 if major == 1 else 4), "little")
        return ast.literal_eval(f.read(size).decode("latin1"))["shape"]


def failure(done):
    """The last line a failed command wrote on stderr (cadence's error), or its exit code."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {done.returncode}"


def compile_corpus_model(cadence, onnx):
    """Compiles `onnx` into out/bench/packages/ unless a package newer than it and the
    binary is there; returns (package, None) or (None, why not)."""
    package = PACKAGES / f"{onnx.stem}.cpk"
    newest_source = max(onnx.stat().st_mtime, Path(cadence).stat().st_mtime)
    if package.exists() and package.stat().st_mtime > newest_source:
        return package, None
    args = [cadence, "compile", str(onnx), "-o", str(package), "--test-cases", "1"]
    reference = onnx.with_name(f"{onnx.stem}_input_0.npy")
    if reference.exists():
        # The first graph input is the image or pillar tensor in every corpus model.
        name = graph_inputs(onnx)[0]
        dims = ",".join(str(d) for d in npy_shape(reference))
        args += ["--input-shape", f"{name}={dims}", "--test-input", f"{name}={reference}"]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        return None, "not compiled: " + failure(done)
    return package, None


def bench(cadence, package, frames, warmup):
    """`cadence bench --json` on `package`: (report, None) or (None, why not)."""
    args = [cadence, "bench", str(package), "--json", "--frames", str(frames), "--warmup", str(warmup)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        return None, "bench failed: " + failure(done)
    for line in done.stderr.splitlines():
        print(f"  {package.stem}: {line}", file=sys.stderr)
    return json.loads(done.stdout), None


def ms(figures):
    return f"{figures['p50_ms']:.2f}" if figures else "-"


def ratio(value):
    return f"{value:.2f}" if value is not None else "-"


def allocs(report):
    return "/".join(
        f"{report[peer]['allocs_per_frame']:.0f}" if peer in report else "-"
        for peer in ("cadence", "onnxruntime", "tract")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cadence", help="the cadence binary")
    parser.add_argument("--frames", type=int, default=10, help="timed frames per peer and model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames per peer and model")
    args = parser.parse_args()

    PACKAGES.mkdir(parents=True, exist_ok=True)
    models = [(p.stem, p, None) for p in sorted(REPO.glob("models/**/*.cpk"))]
    for onnx in sorted(REPO.glob(".corpus/*/*.onnx")):
        package, why_not = compile_corpus_model(args.cadence, onnx)
        models.append((onnx.stem, package, why_not))

    load_before = os.getloadavg()
    header = [
        "model",
        "cadence p50 ms",
        "onnxruntime p50 ms",
        "tract p50 ms",
        "cadence/ort",
        "tract/cadence",
        "allocs/frame c/o/t",
        "arena/bound",
    ]
    rows, over_onnxruntime, simd = [], [], None
    for name, package, why_not in models:
        print(f"bench {name}", file=sys.stderr)
        report = None
        if package is not None:
            report, why_not = bench(args.cadence, package, args.frames, args.warmup)
        if report is None:
            rows.append([name, why_not])
            continue
        simd = report["simd"]
        cadence_over_ort = report.get("cadence_over_onnxruntime_p50")
        if cadence_over_ort is not None:
            over_onnxruntime.append(cadence_over_ort)
        rows.append(
            [
                name,
                ms(report.get("cadence")),
                ms(report.get("onnxruntime")),
                ms(report.get("tract")),
                ratio(cadence_over_ort),
                ratio(report.get("tract_over_cadence_p50")),
                allocs(report),
                f"{report['arena_bytes'] / max(report['arena_lower_bound_bytes'], 1):.3f}",
            ]
        )

    widths = [max(len(r[i]) for r in [header] + rows if len(r) > 2) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    print(
        f"cadence bench, {args.frames} frames after {args.warmup} warm-up per peer, 1 thread each, "
        f"simd {simd}; load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after "
        f"on {os.cpu_count()} CPUs"
    )
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row) if len(row) > 2 else f"| {row[0].ljust(widths[0])} | {row[1]}")
    if over_onnxruntime:
        mean = math.exp(sum(math.log(r) for r in over_onnxruntime) / len(over_onnxruntime))
        print(
            f"geometric mean of cadence p50 / onnxruntime p50 over {len(over_onnxruntime)} models: {mean:.2f}"
        )
    else:
        print("no onnxruntime figures: is ORT_DYLIB_PATH set? (tools/bench.sh sets it)")
    print(
        "allocs/frame: cadence/onnxruntime/tract; onnxruntime's counts only its Rust wrapper, "
        "not its C++ heap. arena/bound: Cadence's arena over the liveness lower bound."
    )


if __name__ == "__main__":
    main()
