//! Packages for the tests and the bench: small conv stacks compiled in memory, and the
//! in-process engine they are compared with.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::path::PathBuf;
use std::time::Duration;

use cadence_compiler::onnx_build::{Attr, OnnxBuilder};
use cadence_compiler::{CompileOptions, compile_bytes};
use cadence_isolated::IsolatedOptions;
use cadence_runtime::package::builder::PackageBuilder;

/// Generous: tests check behaviour, not speed, on a shared machine.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Options that start the worker this package built.
pub fn options() -> IsolatedOptions {
    IsolatedOptions {
        worker: Some(PathBuf::from(env!("CARGO_BIN_EXE_cadence-worker"))),
        ..IsolatedOptions::default()
    }
}

/// Seeded values in [-1, 1).
pub use cadence_test_data::values;

/// `layers` 3×3 convs with ReLU over a `[1, channels, size, size]` input `x`, output `y`.
pub fn conv_stack(channels: usize, size: usize, layers: usize) -> PackageBuilder {
    let mut model = OnnxBuilder::new().input("x", &[1, channels, size, size]);
    let mut previous = "x".to_owned();
    for layer in 0..layers {
        let (w, b, conv) = (
            format!("w{layer}"),
            format!("b{layer}"),
            format!("c{layer}"),
        );
        let out = if layer + 1 == layers {
            "y".to_owned()
        } else {
            format!("r{layer}")
        };
        let scale = 1.0 / (channels * 9) as f32;
        let weights = values(layer as u64 + 1, channels * channels * 9)
            .into_iter()
            .map(|v| v * scale)
            .collect();
        model = model
            .initializer(&w, &[channels, channels, 3, 3], weights)
            .initializer(&b, &[channels], values(layer as u64 + 100, channels))
            .node(
                "Conv",
                &[&previous, &w, &b],
                &[&conv],
                &[("pads", Attr::Ints(vec![1, 1, 1, 1]))],
            )
            .node("Relu", &[&conv], &[&out], &[]);
        previous = out;
    }
    let options = CompileOptions {
        test_cases: 1,
        embed_source: false,
        ..CompileOptions::default()
    };
    compile_bytes(model.output("y").to_bytes(), "conv_stack.onnx", &options)
        .expect("the conv stack compiles")
        .package
}

/// Writes `package` to a file in a fresh temporary directory.
pub fn write_package(package: &PackageBuilder) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("model.cpk");
    std::fs::write(&path, package.to_bytes().expect("the package serialises"))
        .expect("the package is written");
    (dir, path)
}
