#!/usr/bin/env python3
"""Generate Cadence's bundled ONNX models and convert the bundled sample sensor data.

Run from anywhere:  python3 models/generate.py   (pinned deps: models/requirements.txt)

Writes (all relative to this file's folder, `models/`):
  camera/camera_det.onnx, camera/camera_det_pruned.onnx, camera/anchors.json
  lidar/pfn.onnx, lidar/backbone.onnx, lidar/backbone_pruned.onnx, lidar/anchors.json
  data/camera/frame_00N.npy, data/camera/frame_000_input.npy
  data/lidar/sweep_00N.npy, data/lidar/sweep_000_pillars.npz, data/lidar/sweep_000_coords.npy

Deterministic: one numpy Generator with a fixed seed, weights drawn in a fixed order,
BN statistics calibrated on the bundled sample data and rounded to 4 significant
digits (so last-bit differences between CPUs cannot leak into the files).
Running it twice gives byte-identical files.

The laspy test data comes from the laspy 2.7.0 sdist; pass --laspy-dir DIR to point at an
unpacked sdist's tests/data, otherwise the script runs
`pip download --no-deps --no-binary :all: laspy==2.7.0` into a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

HERE = Path(__file__).resolve().parent
SEED = 20240611
OPSET = 17
IR_VERSION = 8
f32 = np.float32

# ----------------------------------------------------------------------------------------
# Parameters: created lazily, in call order, from one seeded generator.
# ----------------------------------------------------------------------------------------


def sig4(a: np.ndarray) -> np.ndarray:
    """Round to 4 significant digits (decimal), deterministic across CPUs."""
    return np.array([float(f"{v:.4g}") for v in np.asarray(a, np.float64).ravel()],
                    dtype=np.float32).reshape(np.shape(a))


class Params:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.t: dict[str, np.ndarray] = {}

    def conv_w(self, name, shape, fan_in, gain=2.0):
        if name not in self.t:
            w = self.rng.standard_normal(shape) * np.sqrt(gain / fan_in)
            self.t[name] = w.astype(f32)
        return self.t[name]

    def bias(self, name, n, mean=0.0, std=0.05):
        if name not in self.t:
            self.t[name] = (mean + std * self.rng.standard_normal(n)).astype(f32)
        return self.t[name]

    def bn(self, name, c, act=True):
        """gamma, beta, running mean/var. mean/var are placeholders until calibrated; the
        perturbations applied after calibration are drawn now (fixed rng order)."""
        if name + ".gamma" not in self.t:
            r = self.rng
            self.t[name + ".gamma"] = r.uniform(0.6, 1.4, c).astype(f32)
            self.t[name + ".beta"] = (r.normal(0.1 if act else 0.0, 0.2, c)).astype(f32)
            self.t[name + ".mean"] = r.normal(0.0, 0.5, c).astype(f32)
            self.t[name + ".var"] = r.uniform(0.5, 2.0, c).astype(f32)
            self.t[name + ".dmean"] = r.normal(0.0, 0.05, c)  # perturbation, in std units
            self.t[name + ".dvar"] = r.uniform(0.8, 1.25, c)  # perturbation, factor
        return tuple(self.t[name + s] for s in (".gamma", ".beta", ".mean", ".var"))

    def set_bn_stats(self, name, mean, var):
        std = np.sqrt(var)
        self.t[name + ".mean"] = sig4(mean + self.t[name + ".dmean"] * std)
        self.t[name + ".var"] = sig4(np.maximum(var * self.t[name + ".dvar"], 1e-4))


# ----------------------------------------------------------------------------------------
# Graph builder with structured-pruning support.
# A tensor is (name, idx): idx = the indices, into the unpruned channel axis, that it holds.
# ----------------------------------------------------------------------------------------


class Builder:
    def __init__(self, P: Params, keep: dict | None = None):
        self.P = P
        self.keep = keep  # None: record mode (unpruned); else group -> kept index array
        self.groups: dict[str, list] = {}  # group -> [(weight name, kind, scored)]
        self.nodes, self.inits, self._names = [], [], set()
        self.bn_nodes: list[tuple[str, str]] = []  # (bn name, its input tensor)
        self._consts: dict = {}

    def uniq(self, base):
        n, i = base, 1
        while n in self._names:
            n, i = f"{base}_{i}", i + 1
        self._names.add(n)
        return n

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def const(self, key, arr):
        if key not in self._consts:
            self._consts[key] = self.init(key, arr)
        return self._consts[key]

    def node(self, op, inputs, name, **attrs):
        out = self.uniq(name)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def out_idx(self, group, cfull, wname, kind, scored=True):
        if group is None:
            return np.arange(cfull)
        if self.keep is None:
            self.groups.setdefault(group, []).append((wname, kind, scored))
            return np.arange(cfull)
        return self.keep[group]

    # -- layers ------------------------------------------------------------------------
    def conv(self, x, name, cout, k=1, stride=1, group=None, bias=False, depthwise=False,
             scored=True, gain=2.0, bias_mean=0.0):
        xn, in_idx = x
        pad = [k // 2] * 4
        if depthwise:
            cfull = self._cfull(x)
            W = self.P.conv_w(name + ".w", (cfull, 1, k, k), k * k, gain)
            oidx = in_idx
            Wp = W[oidx]
            g = len(oidx)
        else:
            cin_full = self._cfull(x)
            W = self.P.conv_w(name + ".w", (cout, cin_full, k, k), cin_full * k * k, gain)
            oidx = self.out_idx(group, cout, name + ".w", "conv", scored)
            Wp = W[oidx][:, in_idx]
            g = 1
        ins = [xn, self.init(name + ".w", Wp)]
        if bias:
            ins.append(self.init(name + ".b", self.P.bias(name + ".b", W.shape[0], bias_mean)[oidx]))
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=pad, dilations=[1, 1])
        if g != 1:
            attrs["group"] = g
        y = self.node("Conv", ins, name, **attrs)
        self._full[y] = W.shape[0]
        return (y, oidx)

    def conv_t(self, x, name, cout, k, stride, group):
        xn, in_idx = x
        cin_full = self._cfull(x)
        # kernel == stride: every output pixel sees exactly one tap of each input channel
        W = self.P.conv_w(name + ".w", (cin_full, cout, k, k), cin_full)
        oidx = self.out_idx(group, cout, name + ".w", "convT")
        Wp = W[in_idx][:, oidx]
        y = self.node("ConvTranspose", [xn, self.init(name + ".w", Wp)], name,
                      kernel_shape=[k, k], strides=[stride, stride])
        self._full[y] = cout
        return (y, oidx)

    def bn(self, x, name, act=True, eps=1e-5):
        xn, idx = x
        gam, bet, mu, var = self.P.bn(name, self._cfull(x), act)
        ins = [xn] + [self.init(f"{name}.{s}", a[idx]) for s, a in
                      zip(("gamma", "beta", "mean", "var"), (gam, bet, mu, var))]
        y = self.node("BatchNormalization", ins, name, epsilon=eps)
        self.bn_nodes.append((name, xn))
        self._full[y] = self._cfull(x)
        return (y, idx)

    def act(self, x, op, name, **attrs):
        xn, idx = x
        if op == "Relu6":
            lo = self.const("relu6.min", np.array(0.0, f32))
            hi = self.const("relu6.max", np.array(6.0, f32))
            y = self.node("Clip", [xn, lo, hi], name)
        else:
            y = self.node(op, [xn], name, **attrs)
        self._full[y] = self._cfull(x)
        return (y, idx)

    def add(self, a, b, name):
        assert np.array_equal(a[1], b[1]), f"{name}: residual channel sets differ"
        y = self.node("Add", [a[0], b[0]], name)
        self._full[y] = self._cfull(a)
        return (y, a[1])

    _full: dict

    def _cfull(self, x):
        return self._full[x[0]]

    def input(self, name, cfull):
        self._full = {name: cfull}
        return (name, np.arange(cfull))


def compute_keep(b: Builder, fraction=0.5) -> dict:
    """Structured pruning: per channel group keep the `fraction` of output channels with
    the largest L1 filter norm (summed over all scored convs that write the group, e.g.
    both sides of a residual Add), indices sorted ascending."""
    keep = {}
    for g, members in b.groups.items():
        score = None
        for wname, kind, scored in members:
            if not scored:
                continue
            W = np.abs(b.P.t[wname].astype(np.float64))
            s = W.sum(axis=(1, 2, 3)) if kind == "conv" else W.sum(axis=(0, 2, 3))
            score = s if score is None else score + s
        n = len(score)
        k = max(1, int(round(n * fraction)))
        order = np.argsort(-score, kind="stable")[:k]
        keep[g] = np.sort(order)
    return keep


def make_model(b: Builder, inputs, outputs, name, doc):
    graph = helper.make_graph(b.nodes, name, inputs, outputs, b.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="cadence-models/generate.py", producer_version="1",
                          doc_string=doc)
    m.ir_version = IR_VERSION
    return m


# ----------------------------------------------------------------------------------------
# ORT helpers, BN calibration, MAC counting
# ----------------------------------------------------------------------------------------


def ort_run(model: onnx.ModelProto, feeds: dict, extra_outputs=()):
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for t in extra_outputs:
        m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def calibrate(build_fn, P: Params, feeds: dict):
    """Set every BN's running mean/var (in network order) to the statistics of its input on
    the sample data, so activations are normalised (then perturbed, see Params.bn)."""
    b, model = build_fn(P, None)
    names = [n for n, _ in b.bn_nodes]
    for i, bn_name in enumerate(names):
        b, model = build_fn(P, None)
        x_name = dict(b.bn_nodes)[bn_name]
        x = ort_run(model, feeds, [x_name])[-1].astype(np.float64)
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        P.set_bn_stats(bn_name, mean, var)
    return build_fn(P, None)


def count_macs(model: onnx.ModelProto):
    m = shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    macs = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            w = inits[n.input[1]]
            macs += int(np.prod(shapes[n.output[0]])) * int(np.prod(w[1:]))
        elif n.op_type == "ConvTranspose":
            w = inits[n.input[1]]
            macs += int(np.prod(shapes[n.input[0]])) * int(np.prod(w[1:]))
        elif n.op_type in ("MatMul", "Gemm"):
            raise NotImplementedError(n.op_type)
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer
                 if t.data_type == TensorProto.FLOAT and len(t.dims) > 0)
    return macs, params


def finish(model: onnx.ModelProto, path: Path, feeds: dict):
    onnx.checker.check_model(model, full_check=True)
    shape_inference.infer_shapes(model, strict_mode=True, check_type=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    outs = ort_run(model, feeds)
    macs, params = count_macs(model)
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"{path.relative_to(HERE)}: {path.stat().st_size / 1e6:.2f} MB, "
          f"{macs / 1e9:.3f} GMACs, {params:,} params")
    print(f"  inputs : {[(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input]}")
    print(f"  outputs (onnxruntime): {[(o.name, list(v.shape), v.dtype.name) for o, v in zip(model.graph.output, outs)]}")
    print(f"  finite: {all(np.isfinite(v).all() for v in outs)}; "
          f"stats: {[(round(float(v.mean()), 4), round(float(v.std()), 4)) for v in outs]}")
    print(f"  ops: {ops}")
    return dict(macs=macs, params=params, ops=ops, outputs=outs)


def tv(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


# ----------------------------------------------------------------------------------------
# Camera detector
# ----------------------------------------------------------------------------------------

CAM_CLASSES = ["background", "car", "pedestrian", "cyclist"]
CAM_SIZE = 320
# (expansion, out channels, stride, squeeze-excite) per inverted-residual block
CAM_BLOCKS = [(6, 24, 2, False), (6, 24, 1, False),
              (6, 32, 2, False), (6, 32, 1, True),
              (6, 64, 2, False), (6, 64, 1, False),   # -> 20x20, stride 16
              (6, 96, 2, False), (6, 96, 1, False)]   # -> 10x10, stride 32
CAM_FPN = 64
CAM_SCALES = [  # feature map, stride, anchors (w, h) in input pixels
    dict(feature_size=[20, 20], stride=16, anchors_wh=[[48, 48], [34, 68], [68, 34]]),
    dict(feature_size=[10, 10], stride=32, anchors_wh=[[112, 112], [80, 160], [160, 80]]),
]
CAM_A = 3


def camera_net(P: Params, keep):
    b = Builder(P, keep)
    x = b.input("image", 3)
    x = b.conv(x, "stem.conv", 16, 3, 2, group="stem")
    x = b.bn(x, "stem.bn")
    x = b.act(x, "HardSwish", "stem.hswish")
    cin = 16
    feats = []
    for i, (t, c, s, se) in enumerate(CAM_BLOCKS):
        n = f"b{i}"
        inp = x
        hid = cin * t
        h = b.conv(x, n + ".expand", hid, 1, group=n + ".expand")
        h = b.bn(h, n + ".expand.bn")
        h = b.act(h, "Relu6", n + ".expand.relu6")
        h = b.conv(h, n + ".dw", hid, 3, s, depthwise=True)
        h = b.bn(h, n + ".dw.bn")
        h = b.act(h, "Relu6", n + ".dw.relu6")
        if se:
            g = b.act(h, "GlobalAveragePool", n + ".se.pool")
            g = b.conv(g, n + ".se.reduce", hid // 4, 1, group=n + ".se.reduce", bias=True)
            g = b.act(g, "Relu", n + ".se.relu")
            g = b.conv(g, n + ".se.expand", hid, 1, group=n + ".expand", bias=True, scored=False,
                       gain=1.0, bias_mean=1.0)
            g = b.act(g, "HardSigmoid", n + ".se.hsig", alpha=1.0 / 6.0, beta=0.5)
            assert np.array_equal(g[1], h[1])
            y = b.node("Mul", [h[0], g[0]], n + ".se.mul")
            b._full[y] = hid
            h = (y, h[1])
        stage_group = f"stage{c}"  # residual-aligned: all projects of a stage share channels
        h = b.conv(h, n + ".project", c, 1, group=stage_group, gain=1.0)
        h = b.bn(h, n + ".project.bn", act=False)
        if s == 1 and cin == c:
            h = b.add(inp, h, n + ".add")
        x, cin = h, c
        if i in (5, 7):
            feats.append(x)
    p4, p5 = feats
    l4 = b.conv(p4, "fpn.lat4", CAM_FPN, 1, group="fpn", bias=True, gain=1.0)
    l5 = b.conv(p5, "fpn.lat5", CAM_FPN, 1, group="fpn", bias=True, gain=1.0)
    scales = b.const("fpn.up.scales", np.array([1, 1, 2, 2], f32))
    up = b.node("Resize", [l5[0], "", scales], "fpn.up", mode="nearest",
                coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    b._full[up] = CAM_FPN
    f4 = b.add(l4, (up, l5[1]), "fpn.add")
    nc = len(CAM_CLASSES)
    box_parts, cls_parts = [], []
    for si, (f, sc) in enumerate(zip([f4, l5], CAM_SCALES)):
        hh, ww = sc["feature_size"]
        n_anch = hh * ww * CAM_A
        for kind, k, parts, bm in (("box", 4, box_parts, 0.0), ("cls", nc, cls_parts, 0.0)):
            o = b.conv(f, f"head{si}.{kind}", CAM_A * k, 3, group=None, bias=True, gain=1.0,
                       bias_mean=bm)
            t = b.node("Transpose", [o[0]], f"head{si}.{kind}.nhwc", perm=[0, 2, 3, 1])
            shp = b.const(f"head{si}.{kind}.shape", np.array([1, n_anch, k], np.int64))
            r = b.node("Reshape", [t, shp], f"head{si}.{kind}.flat")
            parts.append(r)
    boxes = b.node("Concat", box_parts, "boxes_concat", axis=1)
    b.nodes[-1].output[0] = "boxes"
    logits = b.node("Concat", cls_parts, "scores_concat", axis=1)
    b.nodes.append(helper.make_node("Softmax", [logits], ["scores"], name="scores_softmax", axis=2))
    total = sum(s["feature_size"][0] * s["feature_size"][1] * CAM_A for s in CAM_SCALES)
    m = make_model(b, [tv("image", [1, 3, CAM_SIZE, CAM_SIZE])],
                   [tv("boxes", [1, total, 4]), tv("scores", [1, total, nc])],
                   "camera_det" + ("_pruned" if keep else ""),
                   "Cadence camera detector (MobileNetV2-style SSD, untrained seeded weights). "
                   "See models/README.md.")
    return b, m


# ----------------------------------------------------------------------------------------
# Lidar: PointPillars pillar feature net and BEV backbone
# ----------------------------------------------------------------------------------------

GRID = dict(x_range=[-51.2, 51.2], y_range=[-51.2, 51.2], z_range=[-5.0, 3.0], voxel=0.4,
            nx=256, ny=256, max_pillars=12000, max_points=32)
PFN_C = 64
LID_CLASSES = ["car", "pedestrian", "cyclist"]
# anchor (w, l, h) metres and centre z, per class; two yaws each
LID_ANCHORS = [dict(cls="car", wlh=[1.6, 3.9, 1.56], z=-1.0),
               dict(cls="pedestrian", wlh=[0.6, 0.8, 1.73], z=-0.9),
               dict(cls="cyclist", wlh=[0.6, 1.76, 1.73], z=-0.9)]
LID_YAWS = [0.0, 1.5707963]
LID_A = len(LID_ANCHORS) * len(LID_YAWS)


def pfn_net(P: Params, keep):
    b = Builder(P, keep)
    x = b.input("pillars", 9)  # channel bookkeeping for the features axis
    t = b.node("Transpose", ["pillars"], "pfn.nchw", perm=[0, 3, 1, 2])  # [1,9,P,32]
    b._full[t] = 9
    h = b.conv((t, x[1]), "pfn.linear", PFN_C, 1, group=None)
    h = b.bn(h, "pfn.bn", eps=1e-3)
    h = b.act(h, "Relu", "pfn.relu")
    y = b.node("MaxPool", [h[0]], "pfn.maxpool", kernel_shape=[1, GRID["max_points"]])
    b.nodes[-1].output[0] = "pillar_features"
    m = make_model(b, [tv("pillars", [1, GRID["max_pillars"], GRID["max_points"], 9])],
                   [tv("pillar_features", [1, PFN_C, GRID["max_pillars"], 1])], "pfn",
                   "Cadence PointPillars pillar feature net (untrained seeded weights).")
    return b, m


BB_BLOCKS = [(32, 2), (64, 3), (128, 3)]  # (channels, convs incl. the strided one)
BB_UP = [(1, 64), (2, 64), (4, 64)]  # (ConvTranspose stride = kernel, out channels)


def backbone_net(P: Params, keep):
    b = Builder(P, keep)
    x = b.input("bev", PFN_C)
    outs = []
    for bi, (c, n) in enumerate(BB_BLOCKS):
        for j in range(n):
            nm = f"block{bi}.{j}"
            x = b.conv(x, nm + ".conv", c, 3, 2 if j == 0 else 1, group=nm)
            x = b.bn(x, nm + ".bn", eps=1e-3)
            x = b.act(x, "Relu", nm + ".relu")
        outs.append(x)
    ups = []
    for ui, ((s, c), o) in enumerate(zip(BB_UP, outs)):
        nm = f"up{ui}"
        u = b.conv_t(o, nm + ".deconv", c, s, s, group=nm)
        u = b.bn(u, nm + ".bn", eps=1e-3)
        u = b.act(u, "Relu", nm + ".relu")
        ups.append(u)
    # Concat: the consumer sees the kept channels of each branch at the branch's offset
    idx, off = [], 0
    for (s, c), u in zip(BB_UP, ups):
        idx.append(u[1] + off)
        off += c
    cat = b.node("Concat", [u[0] for u in ups], "neck.concat", axis=1)
    b._full[cat] = off
    cat = (cat, np.concatenate(idx))
    nc = len(LID_CLASSES)
    cls = b.conv(cat, "head.cls", LID_A * nc, 1, group=None, bias=True, gain=1.0, bias_mean=-2.0)
    b.nodes.append(helper.make_node("Sigmoid", [cls[0]], ["cls_scores"], name="head.cls.sigmoid"))
    box = b.conv(cat, "head.box", LID_A * 7, 1, group=None, bias=True, gain=0.1)
    b.nodes[-1].output[0] = "box_preds"
    dr = b.conv(cat, "head.dir", LID_A * 2, 1, group=None, bias=True, gain=1.0)
    b.nodes[-1].output[0] = "dir_scores"
    H = GRID["ny"] // 2
    W = GRID["nx"] // 2
    m = make_model(b, [tv("bev", [1, PFN_C, GRID["ny"], GRID["nx"]])],
                   [tv("cls_scores", [1, LID_A * nc, H, W]), tv("box_preds", [1, LID_A * 7, H, W]),
                    tv("dir_scores", [1, LID_A * 2, H, W])],
                   "backbone" + ("_pruned" if keep else ""),
                   "Cadence PointPillars BEV backbone + SSD head (untrained seeded weights).")
    return b, m


# ----------------------------------------------------------------------------------------
# Sample data
# ----------------------------------------------------------------------------------------

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], f32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], f32)
CAMERA_FRAMES = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]


def resize_bilinear_f32(img: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """uint8 [H,W,C] -> float32 [oh,ow,C], half-pixel centres, edge clamp, all in float32
    (see models/README.md for the exact operation order)."""
    h, w, _ = img.shape
    src = img.astype(f32)

    def coords(o, n):
        s = (np.arange(o, dtype=f32) + f32(0.5)) * (f32(n) / f32(o)) - f32(0.5)
        s = np.maximum(s, f32(0.0))
        i0 = np.floor(s).astype(np.int64)
        i0 = np.minimum(i0, n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        fr = (s - i0.astype(f32)).astype(f32)
        return i0, i1, fr

    y0, y1, fy = coords(oh, h)
    x0, x1, fx = coords(ow, w)
    fx_ = fx[None, :, None]
    fy_ = fy[:, None, None]
    top = (f32(1) - fx_) * src[y0][:, x0] + fx_ * src[y0][:, x1]
    bot = (f32(1) - fx_) * src[y1][:, x0] + fx_ * src[y1][:, x1]
    out = (f32(1) - fy_) * top + fy_ * bot
    assert out.dtype == f32
    return out


def camera_preprocess(img: np.ndarray) -> np.ndarray:
    r = resize_bilinear_f32(img, CAM_SIZE, CAM_SIZE)
    r = (r / f32(255.0) - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(r.transpose(2, 0, 1)[None]).astype(f32)


def write_camera_data(out: Path):
    import skimage
    from skimage import io
    d = Path(skimage.__file__).parent / "data"
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, fn in enumerate(CAMERA_FRAMES):
        img = io.imread(d / fn)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, (fn, img.shape)
        assert img.shape[1] <= 640
        np.save(out / f"frame_{i:03d}.npy", np.ascontiguousarray(img))
        frames.append(img)
        print(f"data/camera/frame_{i:03d}.npy <- skimage/data/{fn} {img.shape}")
    inp = camera_preprocess(frames[0])
    np.save(out / "frame_000_input.npy", inp)
    return inp


def get_laspy_dir(arg: str | None, tmp: Path) -> Path:
    if arg:
        return Path(arg)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "-d", str(tmp), "laspy==2.7.0"], check=True, stdout=subprocess.DEVNULL)
    with tarfile.open(tmp / "laspy-2.7.0.tar.gz") as t:
        t.extractall(tmp, filter="data")
    return tmp / "laspy-2.7.0" / "tests" / "data"


SENSOR_HEIGHT = 1.8
FOOT = 0.3048
# Autzen crops: centres as offsets (metres) from the file's min x/min y
AUTZEN_CROPS = [(60.0, 85.0), (180.0, 85.0), (300.0, 85.0)]


def _xyzi(path):
    import laspy
    las = laspy.read(path)
    x = np.asarray(las.x, np.float64)
    y = np.asarray(las.y, np.float64)
    z = np.asarray(las.z, np.float64)
    it = np.asarray(las.intensity, np.float64)
    cls = np.asarray(las.classification)
    return x, y, z, it, cls


def write_lidar_sweeps(lasdir: Path, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    sweeps, info = [], []
    # autzen_trim.laz: airborne, Oregon State Plane (international feet)
    x, y, z, it, cls = _xyzi(lasdir / "autzen_trim.laz")
    x, y, z = x * FOOT, y * FOOT, z * FOOT
    inorm = it / it.max()
    for cx, cy in AUTZEN_CROPS:
        X = x - (x.min() + cx)
        Y = y - (y.min() + cy)
        m = (X >= -51.2) & (X < 51.2) & (Y >= -51.2) & (Y < 51.2)
        ground = np.median(z[m & (cls == 2)])  # ASPRS class 2 = ground
        Z = z - ground - SENSOR_HEIGHT
        pts = np.stack([X[m], Y[m], Z[m], inorm[m]], 1).astype(f32)
        sweeps.append(pts)
        info.append(dict(src="autzen_trim.laz", centre_offset_m=[cx, cy],
                         ground_m=round(float(ground), 3), n=len(pts)))
    # vegetation_1_3.las: mobile-mapping scanner, small patch
    x, y, z, it, _ = _xyzi(lasdir / "vegetation_1_3.las")
    X = x - (x.min() + x.max()) / 2
    Y = y - (y.min() + y.max()) / 2
    Z = z - z.min() - SENSOR_HEIGHT
    pts = np.stack([X, Y, Z, it / it.max()], 1).astype(f32)
    sweeps.append(pts)
    info.append(dict(src="vegetation_1_3.las", n=len(pts)))
    # sweep_000 = the vegetation patch (dense: pillars overflow 32 points) placed at
    # (+12, +6) m, followed by Autzen crop 0 (fills the 12000-pillar capacity): the reference
    # pillarisation of sweep_000 exercises both capacity rules.
    veg = pts.copy()
    veg[:, 0] += f32(12.0)
    veg[:, 1] += f32(6.0)
    sweeps[0] = np.concatenate([veg, sweeps[0]], 0)
    info[0] = dict(src="vegetation_1_3.las moved by (+12, +6) m, then " + info[0]["src"],
                   centre_offset_m=info[0]["centre_offset_m"], ground_m=info[0]["ground_m"],
                   n=len(sweeps[0]))
    for i, p in enumerate(sweeps):
        np.save(out / f"sweep_{i:03d}.npy", p)
        print(f"data/lidar/sweep_{i:03d}.npy: {info[i]} z [{p[:, 2].min():.2f}, {p[:, 2].max():.2f}]")
    return sweeps, info


def pillarise(pts: np.ndarray):
    """Reference pillarisation (bit-exact rule documented in models/README.md)."""
    P, N = GRID["max_pillars"], GRID["max_points"]
    xmin, ymin, zmin = f32(-51.2), f32(-51.2), f32(-5.0)
    xmax, ymax, zmax = f32(51.2), f32(51.2), f32(3.0)
    vs = f32(0.4)
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    inr = (x >= xmin) & (x < xmax) & (y >= ymin) & (y < ymax) & (z >= zmin) & (z < zmax)
    ix = np.minimum(np.floor((x - xmin) / vs).astype(np.int64), GRID["nx"] - 1)
    iy = np.minimum(np.floor((y - ymin) / vs).astype(np.int64), GRID["ny"] - 1)
    buf = np.zeros((P, N, 9), f32)
    coords = np.full((P, 2), -1, np.int32)
    count = np.zeros(P, np.int64)
    pid = {}
    for n in range(len(pts)):
        if not inr[n]:
            continue
        key = int(iy[n]) * GRID["nx"] + int(ix[n])
        p = pid.get(key)
        if p is None:
            if len(pid) >= P:
                continue
            p = len(pid)
            pid[key] = p
            coords[p] = (iy[n], ix[n])
        if count[p] >= N:
            continue
        buf[p, count[p], :4] = pts[n, :4]
        count[p] += 1
    used = len(pid)
    valid = np.arange(N)[None, :] < count[:, None]  # [P, N]
    for c in range(3):  # mean of kept points, summed sequentially in float32
        s = np.zeros(P, f32)
        for k in range(N):
            s = s + buf[:, k, c]
        cnt = np.maximum(count, 1).astype(f32)
        mean = s / cnt
        buf[:, :, 4 + c] = np.where(valid, buf[:, :, c] - mean[:, None], f32(0))
    cx = coords[:, 1].astype(f32) * vs + f32(-51.0)
    cy = coords[:, 0].astype(f32) * vs + f32(-51.0)
    buf[:, :, 7] = np.where(valid, buf[:, :, 0] - cx[:, None], f32(0))
    buf[:, :, 8] = np.where(valid, buf[:, :, 1] - cy[:, None], f32(0))
    stats = dict(points_in_range=int(inr.sum()), pillars=used,
                 points_kept=int(count.sum()), max_points_in_pillar=int(count.max()))
    return buf[None], coords, stats


def scatter(feat: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """pillar_features [1,C,P,1] + coords [P,2] -> bev [1,C,ny,nx]."""
    C = feat.shape[1]
    bev = np.zeros((1, C, GRID["ny"], GRID["nx"]), f32)
    u = coords[:, 0] >= 0
    bev[0][:, coords[u, 0], coords[u, 1]] = feat[0][:, u, 0]
    return bev


# ----------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--laspy-dir", help="laspy 2.7.0 sdist tests/data folder (default: pip download)")
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    P = Params(rng)
    summary = {}

    # --- sample data ---------------------------------------------------------------------
    cam_in = write_camera_data(HERE / "data" / "camera")
    with tempfile.TemporaryDirectory() as tmp:
        lasdir = get_laspy_dir(args.laspy_dir, Path(tmp))
        sweeps, sweep_info = write_lidar_sweeps(lasdir, HERE / "data" / "lidar")
    pillars, coords, pst = pillarise(sweeps[0])
    # The dense PFN input is 13.8 MB but mostly zeros: stored compressed (key "pillars").
    np.savez_compressed(HERE / "data" / "lidar" / "sweep_000_pillars.npz", pillars=pillars)
    np.save(HERE / "data" / "lidar" / "sweep_000_coords.npy", coords)
    print(f"sweep_000 pillarisation: {pst}")

    # --- camera --------------------------------------------------------------------------
    cam_feeds = {"image": cam_in}
    b, cam = calibrate(camera_net, P, cam_feeds)
    summary["camera_det"] = finish(cam, HERE / "camera" / "camera_det.onnx", cam_feeds)
    keep = compute_keep(b)
    _, camp = camera_net(P, keep)
    summary["camera_det_pruned"] = finish(camp, HERE / "camera" / "camera_det_pruned.onnx", cam_feeds)

    # --- lidar PFN: BN statistics from the real (non-padding) points of sweep 0 -----------
    b, _ = pfn_net(P, None)
    W = P.t["pfn.linear.w"][:, :, 0, 0].astype(np.float64)  # [64, 9]
    pts = pillars[0].reshape(-1, 9).astype(np.float64)
    real = pts[np.abs(pts).sum(1) > 0] @ W.T
    P.set_bn_stats("pfn.bn", real.mean(0), real.var(0))
    _, pfn = pfn_net(P, None)
    pfn_feeds = {"pillars": pillars}
    summary["pfn"] = finish(pfn, HERE / "lidar" / "pfn.onnx", pfn_feeds)
    bev = scatter(summary["pfn"]["outputs"][0], coords)

    # --- lidar backbone --------------------------------------------------------------------
    bb_feeds = {"bev": bev}
    b, bb = calibrate(backbone_net, P, bb_feeds)
    summary["backbone"] = finish(bb, HERE / "lidar" / "backbone.onnx", bb_feeds)
    keep = compute_keep(b)
    _, bbp = backbone_net(P, keep)
    summary["backbone_pruned"] = finish(bbp, HERE / "lidar" / "backbone_pruned.onnx", bb_feeds)

    for a, b_ in (("camera_det", "camera_det_pruned"), ("backbone", "backbone_pruned")):
        r = summary[b_]["macs"] / summary[a]["macs"]
        q = summary[b_]["params"] / summary[a]["params"]
        print(f"{b_}: {r:.3f}x the MACs, {q:.3f}x the params of {a}")

    # --- anchors ---------------------------------------------------------------------------
    cam_anchors = dict(
        model="camera_det.onnx / camera_det_pruned.onnx",
        input=dict(name="image", shape=[1, 3, CAM_SIZE, CAM_SIZE], layout="NCHW", color="RGB",
                   resize="bilinear, half-pixel centres", scale=1 / 255,
                   mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        classes=CAM_CLASSES, background_class=0, score_activation="softmax over the class axis",
        anchors_per_location=CAM_A, scales=CAM_SCALES,
        num_anchors=sum(s["feature_size"][0] * s["feature_size"][1] * CAM_A for s in CAM_SCALES),
        order="scale (as listed), then row y, then column x, then anchor (as listed)",
        anchor_centre="((x + 0.5) * stride, (y + 0.5) * stride) in input pixels",
        box_encoding=dict(outputs="boxes[..., 0:4] = (dx, dy, dw, dh)", variances=[0.1, 0.2],
                          decode=["cx = acx + dx * 0.1 * aw", "cy = acy + dy * 0.1 * ah",
                                  "w = aw * exp(dw * 0.2)", "h = ah * exp(dh * 0.2)"],
                          units="input pixels of the 320x320 network input"),
    )
    lid_anchors = dict(
        model="backbone.onnx / backbone_pruned.onnx",
        grid=GRID, output_stride=2, feature_size=[GRID["ny"] // 2, GRID["nx"] // 2],
        classes=LID_CLASSES,
        anchors=[dict(cls=a["cls"], w=a["wlh"][0], l=a["wlh"][1], h=a["wlh"][2], z=a["z"], yaw=yw)
                 for a in LID_ANCHORS for yw in LID_YAWS],
        anchors_per_location=LID_A,
        anchor_centre="x = -51.2 + (col + 0.5) * 0.8, y = -51.2 + (row + 0.5) * 0.8 (metres)",
        channel_layout=dict(cls_scores="channel = a * 3 + class (sigmoid already applied)",
                            box_preds="channel = a * 7 + k, k = (dx, dy, dz, dw, dl, dh, dyaw)",
                            dir_scores="channel = a * 2 + bin (logits)"),
        flattened_order="row y, column x, anchor a (as listed)",
        box_encoding=dict(decode=["d = sqrt(wa^2 + la^2)", "x = xa + dx * d", "y = ya + dy * d",
                                  "z = za + dz * ha", "w = wa * exp(dw)", "l = la * exp(dl)",
                                  "h = ha * exp(dh)", "yaw = yaw_a + dyaw"],
                          direction="if argmax(dir bins) disagrees with (yaw > 0) flip yaw by pi "
                                    "(SECOND/PointPillars convention, dir_offset 0)"),
    )
    (HERE / "camera" / "anchors.json").write_text(json.dumps(cam_anchors, indent=2) + "\n")
    (HERE / "lidar" / "anchors.json").write_text(json.dumps(lid_anchors, indent=2) + "\n")
    sizes = sum(p.stat().st_size for p in HERE.rglob("*.onnx"))
    print(f"total .onnx: {sizes / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
