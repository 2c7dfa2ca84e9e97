//! Problem specs: parsing with precise errors, placeholders that implement them, the
//! bundled models implementing theirs (interchangeable packages), and mismatches
//! reported in full.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cadence_compiler::placeholder::{COUPLING, PlaceholderError, placeholder};
use cadence_compiler::spec::{Difference, Place, ProblemSpec, Role, SpecError, check};
use cadence_compiler::{CompileOptions, Compiled, compile};
use cadence_hal::DType;
use cadence_hal::plan::TensorRecord;
use cadence_runtime::package::{AlignedBytes, Package};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bundled_spec(name: &str) -> ProblemSpec {
    ProblemSpec::read(&repo().join("models/specs").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn one_case() -> CompileOptions {
    CompileOptions {
        test_cases: 1,
        embed_source: false,
        ..CompileOptions::default()
    }
}

fn differences(compiled: &Compiled, spec: &ProblemSpec) -> Vec<Difference> {
    let bytes = common::package_bytes(compiled);
    check(&Package::parse(bytes.as_slice()).unwrap(), spec)
}

const CAMERA: &str = r#"
name = "camera-detector"

[dims]
A = { value = 1500 }

[[input]]
name = "image"
dtype = "f32"
shape = [1, 3, 320, 320]

[[output]]
name = "boxes"
dtype = "f32"
shape = [1, "A", 4]

[[output]]
name = "scores"
dtype = "f32"
shape = [1, "A", 4]
"#;

fn camera() -> ProblemSpec {
    ProblemSpec::parse(CAMERA, Path::new("camera.toml")).unwrap()
}

fn parse_error(text: &str) -> SpecError {
    ProblemSpec::parse(text, Path::new("bad.toml")).expect_err("the spec is refused")
}

#[test]
fn placeholders_of_the_bundled_specs_implement_them_and_pass_selftest() {
    for name in ["camera_det.toml", "lidar_backbone.toml", "lidar_pfn.toml"] {
        let spec = bundled_spec(name);
        let compiled = placeholder(&spec, &HashMap::new(), &one_case())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(differences(&compiled, &spec), [], "{name}");
        common::assert_matches_reference(&compiled);
    }
}

#[test]
fn placeholder_outputs_are_the_documented_seeded_constants() {
    let spec = camera();
    let first = placeholder(&spec, &HashMap::new(), &one_case()).unwrap();
    let again = placeholder(&spec, &HashMap::new(), &one_case()).unwrap();
    let case = &first.package.test_cases[0];
    assert_eq!(
        case.outputs, again.package.test_cases[0].outputs,
        "deterministic"
    );
    let mean =
        case.inputs[0].iter().map(|&v| f64::from(v)).sum::<f64>() / case.inputs[0].len() as f64;
    let term = f64::from(COUPLING) * mean;
    assert!(term != 0.0, "the outputs follow the input");
    for output in &case.outputs {
        assert_eq!(output.len(), 1500 * 4);
        for &v in output {
            let constant = f64::from(v) - term;
            assert!((-1e-6..1.0 + 1e-6).contains(&constant), "{constant}");
        }
    }
    assert_ne!(
        case.outputs[0], case.outputs[1],
        "each output has its own seed"
    );

    let renamed = ProblemSpec {
        name: "another-detector".into(),
        ..spec.clone()
    };
    let other = placeholder(&renamed, &HashMap::new(), &one_case()).unwrap();
    assert_ne!(
        other.package.test_cases[0].outputs[0], case.outputs[0],
        "the spec's name seeds the outputs"
    );
}

#[test]
fn dims_given_at_build_time_override_the_spec() {
    let spec = camera();
    let dims = HashMap::from([("A".to_owned(), 100)]);
    let compiled = placeholder(&spec, &dims, &one_case()).unwrap();
    assert_eq!(differences(&compiled, &spec), []);
    assert_eq!(compiled.package.outputs[0].dims.len(), 3);
    assert_eq!(compiled.package.test_cases[0].outputs[1].len(), 400);

    let unknown = HashMap::from([("B".to_owned(), 100)]);
    assert!(matches!(
        placeholder(&spec, &unknown, &one_case()),
        Err(PlaceholderError::UnknownDim(s)) if s == "B"
    ));
    let no_size = ProblemSpec::parse(
        &CAMERA.replace("A = { value = 1500 }", "A = {}"),
        Path::new("c.toml"),
    )
    .unwrap();
    assert!(matches!(
        placeholder(&no_size, &HashMap::new(), &one_case()),
        Err(PlaceholderError::UnboundDim(s)) if s == "A"
    ));
    let bytes = ProblemSpec::parse(
        &CAMERA.replacen("\"f32\"", "\"u8\"", 1),
        Path::new("c.toml"),
    )
    .unwrap();
    assert!(matches!(
        placeholder(&bytes, &HashMap::new(), &one_case()),
        Err(PlaceholderError::UnsupportedDType {
            role: "input",
            dtype: DType::U8,
            ..
        })
    ));
}

#[test]
fn symbolic_input_dims_are_recorded_as_symbols() {
    let spec = bundled_spec("lidar_pfn.toml");
    let dims = HashMap::from([("P".to_owned(), 64)]);
    let compiled = placeholder(&spec, &dims, &one_case()).unwrap();
    let bytes = common::package_bytes(&compiled);
    let package = Package::parse(bytes.as_slice()).unwrap();
    let input = package.input(0).unwrap();
    let symbols: Vec<_> = input.dims().map(|d| format!("{d:?}")).collect();
    assert_eq!(symbols[1], r#"Symbolic { name: "P", value: 64 }"#);
    assert_eq!(check(&package, &spec), []);
}

#[test]
fn the_bundled_models_and_their_pruned_variants_implement_their_specs() {
    for (spec, models) in [
        (
            "camera_det.toml",
            &[
                "models/camera/camera_det.onnx",
                "models/camera/camera_det_pruned.onnx",
            ][..],
        ),
        (
            "lidar_backbone.toml",
            &[
                "models/lidar/backbone.onnx",
                "models/lidar/backbone_pruned.onnx",
            ][..],
        ),
        ("lidar_pfn.toml", &["models/lidar/pfn.onnx"][..]),
    ] {
        let spec = bundled_spec(spec);
        for model in models {
            let compiled = compile(&repo().join(model), &one_case())
                .unwrap_or_else(|e| panic!("{model}: {e}"));
            assert_eq!(differences(&compiled, &spec), [], "{model}");
        }
    }
}

#[test]
fn a_wrong_dtype_and_a_disagreeing_symbol_are_both_reported_where_they_are() {
    // A detector whose `scores` has another anchor count than its `boxes`.
    let other_count = ProblemSpec::parse(
        &CAMERA.replace(
            "shape = [1, \"A\", 4]\n\n[[output]]\nname = \"scores\"\ndtype = \"f32\"\nshape = [1, \"A\", 4]",
            "shape = [1, \"A\", 4]\n\n[[output]]\nname = \"scores\"\ndtype = \"f32\"\nshape = [1, \"B\", 4]",
        )
        .replace("A = { value = 1500 }", "A = { value = 1500 }\nB = { value = 1200 }"),
        Path::new("two-counts.toml"),
    )
    .unwrap();
    let mut compiled = placeholder(&other_count, &HashMap::new(), &one_case()).unwrap();
    // ...that also takes raw bytes for its image.
    let image = &mut compiled.package.inputs[0];
    image.dtype = DType::U8;
    let tensor = image.tensor as usize;
    let record = compiled.package.tensors[tensor];
    compiled.package.tensors[tensor] = TensorRecord {
        dtype: DType::U8 as u32,
        ..record
    };
    let bytes = AlignedBytes::from_slice(&compiled.package.to_bytes().unwrap());
    let package = Package::parse(bytes.as_slice()).unwrap();
    assert_eq!(
        check(&package, &camera()),
        [
            Difference::DType {
                role: Role::Input,
                name: "image".into(),
                spec: "f32",
                package: "u8",
            },
            Difference::SymbolConflict {
                symbol: "A".into(),
                first: Place {
                    role: Role::Output,
                    tensor: "boxes".into(),
                    axis: 1,
                    size: 1500,
                },
                second: Place {
                    role: Role::Output,
                    tensor: "scores".into(),
                    axis: 1,
                    size: 1200,
                },
            },
        ]
    );
    let message = check(&package, &camera())[1].to_string();
    assert_eq!(
        message,
        "symbol `A`: 1200 at output `scores` dim 1 (= 1200), but 1500 at output `boxes` dim 1 (= 1500)"
    );
}

#[test]
fn every_difference_is_reported_not_only_the_first() {
    let compiled = placeholder(&camera(), &HashMap::new(), &one_case()).unwrap();
    let spec = ProblemSpec::parse(
        r#"
name = "other"
[dims]
A = {}
[[input]]
name = "image"
dtype = "f32"
shape = [1, 3, 320]
[[output]]
name = "scores"
dtype = "f32"
shape = [1, "A", 5]
[[output]]
name = "boxes"
dtype = "f32"
shape = [2, "A", 4]
[[output]]
name = "labels"
dtype = "i32"
shape = ["A"]
"#,
        Path::new("other.toml"),
    )
    .unwrap();
    let found = differences(&compiled, &spec);
    assert_eq!(
        found,
        [
            Difference::Rank {
                role: Role::Input,
                name: "image".into(),
                spec: "[1, 3, 320]".into(),
                package: "[1, 3, 320, 320]".into(),
            },
            Difference::Missing {
                role: Role::Output,
                name: "labels".into(),
            },
            Difference::FixedDim {
                role: Role::Output,
                name: "scores".into(),
                axis: 2,
                spec: 5,
                package: 4,
            },
            Difference::FixedDim {
                role: Role::Output,
                name: "boxes".into(),
                axis: 0,
                spec: 2,
                package: 1,
            },
        ]
    );

    let reordered = ProblemSpec::parse(
        &CAMERA
            .replace("\"boxes\"", "\"tmp\"")
            .replace("\"scores\"", "\"boxes\"")
            .replace("\"tmp\"", "\"scores\""),
        Path::new("reordered.toml"),
    )
    .unwrap();
    assert_eq!(
        differences(&compiled, &reordered),
        [
            Difference::Order {
                role: Role::Output,
                name: "scores".into(),
                spec_index: 0,
                package_index: 1,
            },
            Difference::Order {
                role: Role::Output,
                name: "boxes".into(),
                spec_index: 1,
                package_index: 0,
            },
        ]
    );
}

#[test]
fn spec_errors_name_the_file_line_and_field() {
    let e = parse_error(&CAMERA.replacen("dtype = \"f32\"", "dtype = \"float\"", 1));
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (9, 9, "input[0].dtype")
    );
    assert!(
        e.message.contains("`float`") && e.message.contains("f32, u8"),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("bad.toml:9:9: input[0].dtype: "),
        "{e}"
    );

    let e = parse_error(&CAMERA.replacen("[1, \"A\", 4]", "[1, \"N\", 4]", 1));
    assert_eq!((e.line, e.field.as_str()), (15, "output[0].shape[1]"));
    assert!(e.message.contains("symbol `N` is not declared"), "{e}");

    let e = parse_error(&CAMERA.replacen("[1, 3, 320, 320]", "[1, 3, 0, 320]", 1));
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (10, 16, "input[0].shape[2]")
    );

    let e = parse_error(&CAMERA.replacen("value = 1500", "value = -3", 1));
    assert_eq!((e.line, e.field.as_str()), (5, "dims.A.value"));

    let e = parse_error(&CAMERA.replacen("name = \"scores\"", "name = \"boxes\"", 1));
    assert_eq!((e.line, e.field.as_str()), (18, "output[1].name"));
    assert!(e.message.contains("unique"), "{e}");

    let e =
        parse_error(&CAMERA.replacen("A = { value = 1500 }", "A = { value = 1500 }\nB = {}", 1));
    assert_eq!((e.line, e.field.as_str()), (6, "dims.B"));

    let e =
        parse_error(&CAMERA.replacen("dtype = \"f32\"", "dtype = \"f32\"\nlayout = \"nchw\"", 1));
    assert_eq!(e.line, 10);
    assert!(e.message.contains("layout"), "{e}");

    let e = parse_error(&CAMERA.replacen("shape = [1, 3, 320, 320]", "shape = [1, 3, 320, 320", 1));
    assert_eq!(e.line, 12, "{e}");
    assert!(
        e.to_string().starts_with("bad.toml:12:1: missing comma"),
        "{e}"
    );
}
