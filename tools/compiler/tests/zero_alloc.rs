//! Contract 1, measured: after `Engine::load` and a warm-up, 1,000 frames of each
//! bundled model (set inputs, run, read outputs) make zero heap allocations.

use std::path::Path;

use cadence_alloc_count::{CountingAllocator, count};
use cadence_compiler::{CompileOptions, compile};
use cadence_hal::cpu::CpuBackend;
use cadence_runtime::engine::Engine;
use cadence_runtime::package::{AlignedBytes, Package};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Frames per model; `CADENCE_ALLOC_FRAMES` overrides for quick local runs.
fn frames() -> usize {
    std::env::var("CADENCE_ALLOC_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn assert_zero_allocations(model: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(model);
    let options = CompileOptions {
        test_cases: 1,
        embed_source: false,
        ..CompileOptions::default()
    };
    let compiled = compile(&path, &options).unwrap_or_else(|e| panic!("{model}: {e}"));
    let bytes = AlignedBytes::from_slice(&compiled.package.to_bytes().expect("builds"));
    let pkg = Package::parse(bytes.as_slice()).expect("parses");
    let mut arena = AlignedBytes::zeroed(pkg.arena_bytes());
    let mut engine = Engine::load(&pkg, CpuBackend, arena.as_mut_slice()).expect("loads");
    let case = pkg.test_vectors().next().expect("a test vector");
    let frame = |engine: &mut Engine<'_, '_, CpuBackend>| {
        for (io, data) in pkg.inputs().zip(case.inputs()) {
            engine
                .set_input_f32(io.name(), io.shape().dims(), data)
                .expect("input fits");
        }
        engine.run().expect("frame runs");
        let mut checksum = 0.0f32;
        for (_, _, values) in engine.outputs().expect("outputs") {
            checksum += values[0];
        }
        checksum
    };
    for _ in 0..3 {
        frame(&mut engine);
    }
    // A counter that never counts would pass vacuously: check that it sees this one.
    let ((), one) = count(|| drop(std::hint::black_box(Box::new(0u8))));
    assert_eq!(one, 1, "the allocation counter counts");
    let n = frames();
    let (checksum, allocations) = count(|| (0..n).map(|_| frame(&mut engine)).sum::<f32>());
    assert!(checksum.is_finite());
    assert_eq!(
        allocations, 0,
        "{model}: {allocations} allocations over {n} frames"
    );
}

#[test]
fn camera_detector_frames_do_not_allocate() {
    assert_zero_allocations("models/camera/camera_det.onnx");
}

#[test]
fn lidar_pillar_net_frames_do_not_allocate() {
    assert_zero_allocations("models/lidar/pfn.onnx");
}

#[test]
fn lidar_backbone_frames_do_not_allocate() {
    assert_zero_allocations("models/lidar/backbone.onnx");
}
