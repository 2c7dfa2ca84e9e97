//! The host driver allocates nothing per frame once running (contract 1). Alone in its
//! test binary: the allocation counter is process-wide.
#![cfg(feature = "std")]

use std::time::Duration;

use cadence_alloc_count::{CountingAllocator, allocations};
use cadence_hal::StdClock;
use cadence_runtime::stats::TaskStats;
use cadence_scheduler::host::{self, HostConfig, Stop};
use cadence_scheduler::{FrameRecord, Recorder, ScheduleTable};

mod common;

use common::{set, spinner};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn the_dispatcher_and_workers_do_not_allocate_per_frame() {
    let before = allocations();
    drop(std::hint::black_box(vec![0u8; 16]));
    assert!(allocations() > before, "the counting allocator must count");

    let set = set(false);
    let table = ScheduleTable::new(&set).unwrap();
    let clock = StdClock::default();
    let mut stats = [TaskStats::new(), TaskStats::new()];
    let (mut camera, mut lidar) = (spinner(100_000, 0), spinner(100_000, 0));
    let config = HostConfig {
        stop: Stop::Frames(WARM_UP + FRAMES),
        lead: Duration::from_millis(1),
        ..HostConfig::default()
    };
    let mut recorded = 0;
    let mut warm = None;
    let mut allocs = 0;
    host::run(
        &set,
        &table,
        &mut [&mut camera, &mut lidar],
        &clock,
        &config,
        &mut |r: &FrameRecord| {
            // Warm-up is over once every thread has blocked on its new channel once
            // (each channel's waker list allocates on its first waiter).
            recorded += 1;
            let now = allocations();
            if recorded > WARM_UP {
                allocs = now - *warm.get_or_insert(now);
            }
            stats.record(r);
        },
    )
    .unwrap();
    assert_eq!(allocs, 0, "allocations while frames ran after warm-up");
    assert_eq!(stats[0].frames() + stats[1].frames(), WARM_UP + FRAMES);
}

/// Frames recorded before counting starts.
const WARM_UP: u64 = 20;
/// Frames counted.
const FRAMES: u64 = 200;
