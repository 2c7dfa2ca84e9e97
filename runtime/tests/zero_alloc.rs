//! Contract 1: after `Engine::load`, a frame does not touch the heap.

mod common;

use cadence_alloc_count::{CountingAllocator, thread_allocations};
use cadence_hal::cpu::CpuBackend;
use cadence_runtime::engine::Engine;
use cadence_runtime::package::{AlignedBytes, Package};
use common::{ARENA_BYTES, CopyBackend};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn frames_do_not_allocate() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CopyBackend::default(), &mut arena).unwrap();
    let mut x = [0.5f32, 1.0, 1.5, 2.0];
    let aux = [3.0f32; 4];
    let mut checksum = 0.0f32;

    let mut frame = |engine: &mut Engine<'_, '_, CopyBackend>, i: usize| {
        x[i % 4] += 1.0;
        engine.set_input_f32("x", &[1, 4], &x).unwrap();
        engine.input_mut(1).unwrap().copy_from_slice(&aux);
        engine.run().unwrap();
        checksum += engine.output("y").unwrap()[0] + engine.output_at(1).unwrap()[3];
        for (_, _, values) in engine.outputs().unwrap() {
            checksum += values[1];
        }
    };
    for i in 0..10 {
        frame(&mut engine, i);
    }
    let before = thread_allocations();
    // A counter that never counts would pass vacuously: check that it sees this one.
    drop(std::hint::black_box(Box::new(0u8)));
    assert_eq!(thread_allocations() - before, 1, "the counter counts");
    let before = thread_allocations();
    for i in 0..1000 {
        frame(&mut engine, i);
    }
    let after = thread_allocations();
    assert_eq!(after - before, 0, "allocations during 1000 frames");
    assert!(checksum.is_finite());
}

#[test]
fn cpu_backend_frames_do_not_allocate() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CpuBackend, &mut arena).unwrap();
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let before = thread_allocations();
    for _ in 0..1000 {
        engine.set_input_f32("x", &[1, 4], &x).unwrap();
        engine.set_input_f32("aux", &[1, 4], &x).unwrap();
        engine.run().unwrap();
        std::hint::black_box(engine.output("y").unwrap());
    }
    assert_eq!(thread_allocations() - before, 0);
}

#[test]
fn timed_frames_do_not_allocate() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CpuBackend, &mut arena).unwrap();
    let clock = cadence_hal::StdClock::default();
    let mut step_ns = vec![0; engine.step_count()];
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let before = thread_allocations();
    for _ in 0..1000 {
        engine.set_input_f32("x", &[1, 4], &x).unwrap();
        engine.set_input_f32("aux", &[1, 4], &x).unwrap();
        engine.run_timed(&clock, &mut step_ns).unwrap();
        std::hint::black_box(engine.output("y").unwrap());
    }
    assert_eq!(thread_allocations() - before, 0);
}

#[test]
fn refused_frames_do_not_allocate_either() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CopyBackend::default(), &mut arena).unwrap();
    let before = thread_allocations();
    for _ in 0..100 {
        assert!(engine.set_input_f32("x", &[4], &[0.0; 4]).is_err());
        assert!(engine.set_input_f32("nope", &[1, 4], &[0.0; 4]).is_err());
        engine.set_input_f32("x", &[1, 4], &[f32::NAN; 4]).unwrap();
        assert!(engine.run().is_err());
        engine.backend_mut().fail_next = true;
        engine.set_input_f32("x", &[1, 4], &[0.0; 4]).unwrap();
        assert!(engine.run().is_err());
    }
    assert_eq!(thread_allocations() - before, 0);
}
