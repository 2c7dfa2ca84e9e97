//! Shared by the compiler's integration tests: compile an in-memory ONNX model and check
//! the CPU backend against the reference (tract) outputs recorded in the package.

#![allow(dead_code)]

use cadence_compiler::onnx_build::OnnxBuilder;
use cadence_compiler::{CompileOptions, Compiled, compile_bytes};
use cadence_hal::cpu::CpuBackend;
use cadence_runtime::engine::Engine;
use cadence_runtime::package::{AlignedBytes, Package};

/// Compiles `model` with default options.
pub fn compile(model: &OnnxBuilder) -> Compiled {
    compile_bytes(model.to_bytes(), "test.onnx", &CompileOptions::default())
        .unwrap_or_else(|e| panic!("compile failed: {e}"))
}

/// Serialises a compiled package into an aligned buffer.
pub fn package_bytes(compiled: &Compiled) -> AlignedBytes {
    AlignedBytes::from_slice(&compiled.package.to_bytes().expect("package builds"))
}

/// Runs the package's test vectors on the CPU backend; panics with the first mismatch.
pub fn assert_matches_reference(compiled: &Compiled) {
    let bytes = package_bytes(compiled);
    let pkg = Package::parse(bytes.as_slice()).expect("package parses");
    let mut arena = AlignedBytes::zeroed(pkg.arena_bytes());
    let mut engine = Engine::load(&pkg, CpuBackend, arena.as_mut_slice()).expect("engine loads");
    let report = engine.selftest().expect("selftest runs");
    for out in &report.outputs {
        assert!(
            out.passed(),
            "output `{}`: {} mismatches, max abs error {}, first {:?}",
            out.name,
            out.mismatches,
            out.max_abs_error,
            out.first_mismatch
        );
    }
    assert!(report.passed());
}

/// Compiles and checks in one go.
pub fn check(model: &OnnxBuilder) {
    assert_matches_reference(&compile(model));
}

/// Deterministic pseudo-random values in [-1, 1).
#[allow(
    unused_imports,
    reason = "each test binary uses its own part of this module"
)]
pub use cadence_test_data::values;
