//! The host driver on the real clock: worker threads, accounting, faults. No timing is
//! asserted (the machine is shared): only what happened to each frame.
#![cfg(feature = "std")]

use cadence_hal::StdClock;
use cadence_runtime::stats::{FrameState, TaskStats};
use cadence_scheduler::host::{self, HostConfig, HostError, Stop};
use cadence_scheduler::task::name;
use cadence_scheduler::{FrameRecord, Recorder, ScheduleTable};

mod common;

use common::{set, spinner};

#[test]
fn every_frame_is_accounted_and_faults_are_recorded_as_failed() {
    let set = set(false);
    let table = ScheduleTable::new(&set).unwrap();
    let (mut camera, mut lidar) = (spinner(200_000, 0), spinner(200_000, 3));
    let mut stats = [TaskStats::new(), TaskStats::new()];
    let mut records = Vec::new();
    let clock = StdClock::default();
    let config = HostConfig {
        stop: Stop::Frames(40),
        ..HostConfig::default()
    };
    let outcome = host::run(
        &set,
        &table,
        &mut [&mut camera, &mut lidar],
        &clock,
        &config,
        &mut |r: &FrameRecord| {
            stats.record(r);
            records.push(*r);
        },
    )
    .unwrap();
    assert_eq!(outcome.released, 40);
    assert_eq!(stats[0].frames() + stats[1].frames(), 40);
    // Table: camera every 4 ms, lidar every 12 ms: 3 to 1.
    assert_eq!((stats[0].frames(), stats[1].frames()), (30, 10));
    assert_eq!(stats[1].failed(), 3, "lidar jobs 2, 5, 8 fail");
    assert_eq!(
        u64::from(camera.ran) + u64::from(lidar.ran),
        40 - stats[0].skipped() - stats[1].skipped()
    );
    for r in &records {
        match r.state {
            FrameState::Skipped => assert_eq!((r.start_ns, r.end_ns), (None, None)),
            state => {
                assert!(
                    r.start_ns.unwrap() >= r.release_ns,
                    "a job never starts before its release"
                );
                let in_time = r.end_ns.unwrap() <= r.deadline_ns;
                assert!(state == FrameState::Failed || (state == FrameState::Met) == in_time);
            }
        }
    }
}

#[test]
fn an_overrunning_job_ends_late_and_the_overlapped_release_is_skipped() {
    let set = set(false);
    let table = ScheduleTable::new(&set).unwrap();
    // Camera jobs take 6 ms against a 4 ms period and deadline.
    let (mut camera, mut lidar) = (spinner(6_000_000, 0), spinner(100_000, 0));
    let mut stats = [TaskStats::new(), TaskStats::new()];
    let config = HostConfig {
        stop: Stop::Frames(8),
        ..HostConfig::default()
    };
    host::run(
        &set,
        &table,
        &mut [&mut camera, &mut lidar],
        &StdClock::default(),
        &config,
        &mut stats[..],
    )
    .unwrap();
    let camera = &stats[0];
    assert_eq!(camera.met(), 0);
    assert!(
        camera.late() >= 1 && camera.skipped() >= 1,
        "{:?}",
        camera.summary()
    );
    assert_eq!(camera.late() + camera.skipped(), camera.frames());
}

#[test]
fn host_workers_refuse_preemptive_accelerators_and_wrong_runner_counts() {
    let set = set(true);
    let table = ScheduleTable::new(&set).unwrap();
    let (mut a, mut b) = (spinner(1, 0), spinner(1, 0));
    let mut stats = [TaskStats::new(), TaskStats::new()];
    let clock = StdClock::default();
    let err = host::run(
        &set,
        &table,
        &mut [&mut a, &mut b],
        &clock,
        &HostConfig::default(),
        &mut stats[..],
    )
    .unwrap_err();
    assert_eq!(err, HostError::PreemptiveAccelerator(name("cpu0")));
    let set = self::set(false);
    let err = host::run(
        &set,
        &table,
        &mut [&mut a],
        &clock,
        &HostConfig::default(),
        &mut stats[..],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("1 job runners for 2 tasks"),
        "{err}"
    );
}
