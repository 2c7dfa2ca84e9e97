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

use common::{Spinner, set, spinner};

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
    let run = |frames, camera: &mut Spinner, lidar: &mut Spinner, stats: &mut [TaskStats]| {
        let config = HostConfig {
            stop: Stop::Frames(frames),
            lead: Duration::from_millis(1),
            ..HostConfig::default()
        };
        let mut dispatcher_allocs = 0;
        let mut first = None;
        host::run(
            &set,
            &table,
            &mut [camera, lidar],
            &clock,
            &config,
            &mut |r: &FrameRecord| {
                // Count from the first record on: thread start-up is over by then.
                let now = allocations();
                dispatcher_allocs = now - *first.get_or_insert(now);
                stats.record(r);
            },
        )
        .unwrap();
        dispatcher_allocs
    };
    run(20, &mut camera, &mut lidar, &mut stats);
    let allocs = run(200, &mut camera, &mut lidar, &mut stats);
    assert_eq!(allocs, 0, "allocations while frames ran");
    assert_eq!(stats[0].frames() + stats[1].frames(), 220);
}
