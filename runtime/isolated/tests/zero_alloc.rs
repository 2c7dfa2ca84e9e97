//! Contract 1 on the parent side: after start-up, an out-of-process frame does not
//! touch the parent's heap.

mod common;

use cadence_alloc_count::{CountingAllocator, thread_allocations};
use cadence_isolated::IsolatedEngine;
use common::{FRAME_TIMEOUT, conv_stack, options, values, write_package};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn out_of_process_frames_do_not_allocate_in_the_parent() {
    let (_dir, path) = write_package(&conv_stack(4, 16, 2));
    let mut engine = IsolatedEngine::spawn(&path, options()).unwrap();
    let x = values(11, 4 * 16 * 16);
    let mut checksum = 0.0f32;
    let mut frame = |engine: &mut IsolatedEngine, i: usize| {
        if i.is_multiple_of(2) {
            engine.set_input("x", &x).unwrap();
        } else {
            engine.input_mut(0).unwrap().copy_from_slice(&x);
        }
        engine.run(FRAME_TIMEOUT).unwrap();
        checksum += engine.output("y").unwrap()[i % 16] + engine.output_at(0).unwrap()[0];
    };
    for i in 0..10 {
        frame(&mut engine, i);
    }
    // A counter that never counts would pass vacuously: check that it sees this one.
    let before = thread_allocations();
    drop(std::hint::black_box(Box::new(0u8)));
    assert_eq!(thread_allocations() - before, 1, "the counter counts");

    let before = thread_allocations();
    for i in 0..1000 {
        frame(&mut engine, i);
    }
    assert_eq!(
        thread_allocations() - before,
        0,
        "allocations during 1000 frames"
    );
    assert!(checksum.is_finite());
}
