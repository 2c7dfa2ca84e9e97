//! Contract 1 on the host: after warm-up, a frame allocates nothing — neither in the
//! job runners (pre-processing, engines in process or in a worker process, decoding)
//! nor in the scheduler's host driver around them (dispatcher, channels, worker loops).
//!
//! Counts are per thread (`thread_allocations`), so other tests running alongside do
//! not disturb them. Frames per task: `CADENCE_ALLOC_FRAMES` (default 3; the lidar
//! frame costs a few hundred milliseconds here).

mod common;

use std::time::{Duration, Instant};

use cadence_alloc_count::{CountingAllocator, thread_allocations};
use cadence_hal::StdClock;
use cadence_host::pipeline::{Isolation, Pipeline, RunnerSpec, load_pipeline};
use cadence_scheduler::executive::{Dispatch, FrameRecord, Mode};
use cadence_scheduler::host::{self, HostConfig, JobFailed, JobRunner, Stop};
use cadence_scheduler::task::{self, AcceleratorSpec, TaskSpec};
use cadence_scheduler::{ScheduleTable, TaskSet};
use common::{camera_spec, install_worker, job, lidar_spec};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Frames per task to count over, after warm-up.
fn frames() -> u32 {
    std::env::var("CADENCE_ALLOC_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn counter_counts() {
    let before = thread_allocations();
    drop(std::hint::black_box(Box::new(0u8)));
    assert_eq!(thread_allocations() - before, 1, "the counter counts");
}

/// Runs `n` frames of each mode directly and returns the allocations they made.
fn direct_allocations(pipeline: &mut Pipeline, n: u32) -> u64 {
    let before = thread_allocations();
    for seq in 0..n {
        for mode in [Mode::Primary, Mode::Fallback] {
            pipeline.run_job(&job(seq, mode)).unwrap();
        }
    }
    thread_allocations() - before
}

#[test]
fn runners_do_not_allocate_per_frame() {
    counter_counts();
    install_worker();
    let isolated_camera = RunnerSpec {
        task: "camera (isolated)".into(),
        isolation: Isolation::Process,
        ..camera_spec()
    };
    for spec in [camera_spec(), lidar_spec(), isolated_camera] {
        let mut pipeline = load_pipeline(&spec).unwrap();
        direct_allocations(&mut pipeline, 1);
        let allocations = direct_allocations(&mut pipeline, frames());
        assert_eq!(
            allocations,
            0,
            "task `{}`: allocations in {} frames of each chain run directly",
            spec.task,
            frames()
        );
        assert_eq!(pipeline.counters().failures.total(), 0);
    }
}

/// A runner that counts its worker thread's allocations between one job's start and
/// the next's: the job itself, the completion sent back, the wait for the next job.
struct CountingRunner<'p> {
    pipeline: &'p mut Pipeline,
    jobs: u64,
    warm_up: u64,
    last: u64,
    allocations: u64,
}

impl JobRunner for CountingRunner<'_> {
    fn run(&mut self, job: &Dispatch) -> Result<(), JobFailed> {
        let now = thread_allocations();
        if self.jobs > self.warm_up {
            self.allocations += now - self.last;
        }
        self.jobs += 1;
        self.last = now;
        self.pipeline.run_job(job).map_err(|_| JobFailed)
    }
}

/// How long a job of `pipeline` takes, measured on warm frames: sizes the periods so
/// the run keeps up (the count does not depend on it).
fn job_time(pipeline: &mut Pipeline) -> Duration {
    pipeline.run_job(&job(0, Mode::Primary)).unwrap();
    let start = Instant::now();
    pipeline.run_job(&job(1, Mode::Primary)).unwrap();
    start.elapsed()
}

#[test]
fn host_run_does_not_allocate_per_frame() {
    counter_counts();
    let mut camera = load_pipeline(&camera_spec()).unwrap();
    let mut lidar = load_pipeline(&lidar_spec()).unwrap();
    // The lidar period is a whole multiple of the camera's: one table, few releases.
    let lidar_period = 2 * job_time(&mut lidar).as_nanos() as u64;
    let per_lidar = (lidar_period / (3 * job_time(&mut camera).as_nanos() as u64)).clamp(1, 16);
    let camera_period = lidar_period / per_lidar;

    let accelerators = [
        AcceleratorSpec {
            name: task::name("cpu0"),
            preemptive: false,
        },
        AcceleratorSpec {
            name: task::name("cpu1"),
            preemptive: false,
        },
    ];
    // Half the period as budget: the analysis accepts it on any machine.
    let spec = |name: &str, accelerator, period_ns: u64, priority| {
        TaskSpec::periodic(name, accelerator, period_ns, period_ns / 2, priority)
    };
    let set = TaskSet::new(
        &accelerators,
        &[
            spec("camera", 0, camera_period, 2),
            spec("lidar", 1, lidar_period, 1),
        ],
    )
    .unwrap();
    let table = ScheduleTable::new(&set).unwrap();

    // Warm-up: the first two jobs on each worker (its first blocking receive sets up
    // the channel's thread-local state).
    let warm_up = 2;
    let lidar_frames = u64::from(frames()) + warm_up + 1;
    let releases = lidar_frames * (per_lidar + 1);
    let mut runners = [
        CountingRunner {
            pipeline: &mut camera,
            jobs: 0,
            warm_up,
            last: 0,
            allocations: 0,
        },
        CountingRunner {
            pipeline: &mut lidar,
            jobs: 0,
            warm_up,
            last: 0,
            allocations: 0,
        },
    ];
    // The dispatcher thread: allocations between one record and the next.
    let mut records = 0u64;
    let mut last = 0u64;
    let mut dispatcher_allocations = 0u64;
    let mut ran = 0u64;
    let mut recorder = |frame: &FrameRecord| {
        let now = thread_allocations();
        if records > warm_up * (per_lidar + 1) {
            dispatcher_allocations += now - last;
        }
        records += 1;
        last = now;
        ran += u64::from(frame.end_ns.is_some());
    };
    let [camera_runner, lidar_runner] = &mut runners;
    let outcome = host::run(
        &set,
        &table,
        &mut [camera_runner as &mut dyn JobRunner, lidar_runner],
        &StdClock::default(),
        &HostConfig {
            stop: Stop::Frames(releases),
            ..HostConfig::default()
        },
        &mut recorder,
    )
    .unwrap();

    assert_eq!(outcome.released, releases);
    assert_eq!(records, releases, "every frame recorded once");
    for runner in &runners {
        assert!(
            runner.jobs > warm_up + 1,
            "task `{}` ran {} jobs: too few to count",
            runner.pipeline.task(),
            runner.jobs
        );
        assert_eq!(
            runner.allocations,
            0,
            "task `{}`: allocations on its worker thread over {} jobs after warm-up",
            runner.pipeline.task(),
            runner.jobs - warm_up - 1
        );
    }
    assert_eq!(
        dispatcher_allocations, 0,
        "allocations on the dispatcher thread after warm-up"
    );
    assert!(ran > 0);
}
