//! Out-of-process models (`isolation = "process"`) as one more scheduler worker: the
//! same detections as in process, a killed worker fails its frame only and the next
//! frame runs after the restart, and interchangeable packages of one spec swap in a
//! scenario by changing one line.
//!
//! `Isolation::Process` finds `cadence-worker` next to the running executable, as the
//! `cadence` binary does; `common::install_worker` puts it next to this test binary.

mod common;
mod workspace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cadence_compiler::spec::{ProblemSpec, check};
use cadence_hal::StdClock;
use cadence_host::pipeline::{
    FrameFault, Isolation, Pipeline, RunnerSpec, Sensor, WorkerFault, load_pipeline,
};
use cadence_host::scenario::{MeasureConfig, RunConfig, Scenario, ScenarioError, run_on_host};
use cadence_runtime::package::{AlignedBytes, Package};
use cadence_runtime::stats::FrameState;
use cadence_scheduler::executive::{Dispatch, FrameRecord, Mode};
use cadence_scheduler::host::{self, HostConfig, JobFailed, JobRunner, Stop};
use cadence_scheduler::task::{self, AcceleratorSpec, TaskSpec};
use cadence_scheduler::{ScheduleTable, TaskSet};
use common::{camera_spec, install_worker, job};
use rustix::process::{Pid, Signal, kill_process};

fn enter() -> &'static Path {
    workspace::enter("isolation", &common::repo(), |stem| {
        common::packages().get(stem)
    })
}

/// `highway.toml` with every task's models in worker processes.
fn isolated_highway() -> String {
    let text = std::fs::read_to_string("scenarios/highway.toml").expect("reading highway");
    assert_eq!(text.matches("[[task]]\n").count(), 2);
    text.replace("[[task]]\n", "[[task]]\nisolation = \"process\"\n")
}

/// Detections as text: Rust prints floats exactly (shortest round-trip form, sign of
/// zero included), so equal text is equal bits.
fn bits<T: std::fmt::Debug>(detections: &[T]) -> String {
    format!("{detections:?}")
}

/// How long `pipeline` takes for `job`, in nanoseconds.
fn timed(pipeline: &mut Pipeline, job: &Dispatch) -> u64 {
    let start = Instant::now();
    pipeline.run_job(job).expect("the frame");
    start.elapsed().as_nanos() as u64
}

/// One frame through both pipelines.
struct Compared {
    /// Detections (the same on both).
    detections: usize,
    /// Nanoseconds the isolated runner took.
    isolated_ns: u64,
    /// Nanoseconds the in-process runner took.
    in_process_ns: u64,
}

/// Runs `job` on both pipelines (which goes first alternates with the frame, so that
/// neither always finds the caches warm) and checks that they detect exactly the same.
fn same_detections(isolated: &mut Pipeline, in_process: &mut Pipeline, job: &Dispatch) -> Compared {
    let (isolated_ns, in_process_ns) = if job.seq.is_multiple_of(2) {
        let isolated_ns = timed(isolated, job);
        (isolated_ns, timed(in_process, job))
    } else {
        let in_process_ns = timed(in_process, job);
        (timed(isolated, job), in_process_ns)
    };
    let (got, want) = (
        (
            bits(isolated.camera_detections()),
            bits(isolated.lidar_detections()),
        ),
        (
            bits(in_process.camera_detections()),
            bits(in_process.lidar_detections()),
        ),
    );
    assert_eq!(
        got,
        want,
        "task `{}`, frame {}, {:?}",
        isolated.task(),
        job.seq,
        job.mode
    );
    Compared {
        detections: isolated.camera_detections().len() + isolated.lidar_detections().len(),
        isolated_ns,
        in_process_ns,
    }
}

/// The median of `samples`.
fn median<T: Ord + Copy>(mut samples: Vec<T>) -> T {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[test]
fn isolated_runners_detect_exactly_what_in_process_runners_do() {
    enter();
    install_worker();
    let scenario = Scenario::parse(Path::new("isolated.toml"), &isolated_highway())
        .expect("the isolated highway parses");
    for (id, task) in scenario.tasks().iter().enumerate() {
        assert_eq!(task.isolation, Isolation::Process, "task `{}`", task.name);
        let spec = scenario.runner_spec(id as u8, 0);
        assert_eq!(spec.isolation, Isolation::Process);
        let mut isolated = load_pipeline(&spec).expect("the isolated runner loads");
        let mut in_process = load_pipeline(&RunnerSpec {
            isolation: Isolation::None,
            ..spec.clone()
        })
        .expect("the in-process runner loads");
        // One worker per distinct package (the lidar fallback shares its PFN).
        let distinct =
            |chain: &[PathBuf]| chain.iter().filter(|p| !spec.packages.contains(p)).count();
        assert_eq!(
            isolated.worker_pids().count(),
            spec.packages.len() + distinct(&spec.fallback),
            "task `{}`",
            task.name
        );
        assert_eq!(in_process.worker_pids().count(), 0);

        // Every recorded camera frame three times (the times below want a few);
        // one lidar sweep (hundreds of milliseconds each).
        let frames = match spec.sensor {
            Sensor::Camera { .. } => 3 * isolated.recorded_frames() as u32,
            _ => 1,
        };
        let compared: Vec<Compared> = (0..frames)
            .map(|seq| job(seq, Mode::Primary))
            .chain([job(0, Mode::Fallback)])
            .map(|job| same_detections(&mut isolated, &mut in_process, &job))
            .collect();
        let detections: usize = compared.iter().map(|c| c.detections).sum();
        assert!(
            detections > 0,
            "task `{}` detected nothing: the comparison would prove little",
            task.name
        );
        assert_eq!(
            isolated.counters(),
            in_process.counters(),
            "task `{}`",
            task.name
        );

        // What isolation costs per frame (printed with --nocapture; not asserted: the
        // machine is shared), over the primary frames after the first.
        let primary = &compared[1..compared.len() - 1];
        if !primary.is_empty() {
            let isolated_ns = median(primary.iter().map(|c| c.isolated_ns).collect());
            let in_process_ns = median(primary.iter().map(|c| c.in_process_ns).collect());
            let overhead_ns = median(
                primary
                    .iter()
                    .map(|c| c.isolated_ns as i64 - c.in_process_ns as i64)
                    .collect(),
            );
            println!(
                "task `{}`, {} frames: in process p50 {:.2} ms, isolated p50 {:.2} ms \
                 (ratio {:.3}); isolated minus in process, per frame p50: {:.1} us",
                task.name,
                primary.len(),
                in_process_ns as f64 / 1e6,
                isolated_ns as f64 / 1e6,
                isolated_ns as f64 / in_process_ns as f64,
                overhead_ns as f64 / 1e3,
            );
        }
    }
}

#[test]
fn an_isolated_scenario_runs_on_the_host() {
    enter();
    install_worker();
    // Periods long enough for this shared 2-core machine: the run checks that every
    // frame is accounted and none fails, not the timing.
    let text = isolated_highway()
        .replace("period_ms = 33.333          # 30 Hz", "period_ms = 500.0")
        .replace("deadline_ms = 33.333", "deadline_ms = 500.0")
        .replace("period_ms = 100.0           # 10 Hz", "period_ms = 1000.0");
    let plan = Scenario::parse(Path::new("isolated.toml"), &text)
        .and_then(|s| s.plan(&MeasureConfig::default()))
        .expect("the isolated scenario plans");
    let report = run_on_host(
        &plan,
        &RunConfig {
            duration: Duration::from_millis(1500),
        },
    )
    .expect("the isolated scenario runs");
    assert_eq!(report.trace.len() as u64, report.outcome.released);
    for (id, stats) in report.stats.iter().enumerate() {
        assert!(stats.frames() > 0, "task {id} ran no frame");
        assert_eq!(stats.failed(), 0, "task {id}");
    }
}

#[test]
fn isolation_is_checked_like_every_other_key() {
    enter();
    let highway = std::fs::read_to_string("scenarios/highway.toml").expect("reading highway");
    let bad = highway.replacen("[[task]]\n", "[[task]]\nisolation = \"thread\"\n", 1);
    let line = bad
        .lines()
        .position(|l| l.starts_with("isolation"))
        .expect("the key")
        + 1;
    let e = Scenario::parse(Path::new("bad.toml"), &bad).unwrap_err();
    assert!(
        matches!(&e, ScenarioError::BadValue { at, .. } if at.line == line),
        "{e:?}"
    );
    assert!(e.to_string().contains("process"), "names the values: {e}");

    let spinner = "[[accelerator]]\nname = \"cpu0\"\n\n[[task]]\nname = \"planner\"\n\
                   accelerator = \"cpu0\"\nperiod_ms = 10.0\nbudget_ms = 1.0\n\
                   isolation = \"process\"\n";
    let e = Scenario::parse(Path::new("spinner.toml"), spinner).unwrap_err();
    assert!(
        matches!(&e, ScenarioError::UnexpectedKey { key: "isolation", at, .. } if at.line == 9),
        "{e:?}"
    );

    let default = Scenario::parse(Path::new("highway.toml"), &highway).expect("highway parses");
    assert!(
        default
            .tasks()
            .iter()
            .all(|t| t.isolation == Isolation::None)
    );
}

/// The isolated camera runner, SIGKILLing its worker when the first job from sequence
/// number `kill_from` on starts (the first to run: a loaded machine may skip one).
///
/// The kill lands after the executive started the job and before the frame reaches
/// the worker, so the frame cannot complete whatever the machine's load: the test is
/// deterministic. (A kill while the worker computes is `cadence-isolated`'s own test.)
struct KillOnce {
    pipeline: Pipeline,
    kill_from: u32,
    /// The sequence number of the job the kill landed in, and the killed worker's pid.
    killed: Option<(u32, u32)>,
}

impl JobRunner for KillOnce {
    fn run(&mut self, job: &Dispatch) -> Result<(), JobFailed> {
        if self.killed.is_none() && job.seq >= self.kill_from {
            let pid = self
                .pipeline
                .worker_pids()
                .next()
                .expect("a running worker");
            let target = Pid::from_raw(pid as i32).expect("a valid pid");
            kill_process(target, Signal::KILL).expect("killing the worker");
            self.killed = Some((job.seq, pid));
        }
        JobRunner::run(&mut self.pipeline, job)
    }
}

#[test]
fn a_worker_killed_mid_frame_fails_that_frame_and_the_next_frames_run_after_restart() {
    install_worker();
    let camera = load_pipeline(&RunnerSpec {
        fallback: Vec::new(),
        isolation: Isolation::Process,
        ..camera_spec()
    })
    .expect("the isolated camera runner loads");
    let mut camera = KillOnce {
        pipeline: camera,
        kill_from: 2,
        killed: None,
    };
    let mut planner = load_pipeline(&RunnerSpec {
        task: "planner".into(),
        packages: Vec::new(),
        fallback: Vec::new(),
        sensor: Sensor::None,
        budget_ns: Duration::from_millis(2).as_nanos() as u64,
        isolation: Isolation::None,
    })
    .expect("the planner loads");

    // Periods far above a camera frame (and a worker restart) on this shared machine:
    // the states below then depend on the kill, not on the load.
    let camera_period = Duration::from_millis(400).as_nanos() as u64;
    let planner_period = camera_period / 4;
    let accelerator = |name: &str| AcceleratorSpec {
        name: task::name(name),
        preemptive: false,
    };
    // Half the period as budget: the analysis accepts it on any machine.
    let spec = |name: &str, accelerator, period_ns: u64, priority| {
        TaskSpec::periodic(name, accelerator, period_ns, period_ns / 2, priority)
    };
    let set = TaskSet::new(
        &[accelerator("cpu0"), accelerator("cpu1")],
        &[
            spec("camera", 0, camera_period, 2),
            spec("planner", 1, planner_period, 1),
        ],
    )
    .expect("the task set");
    let table = ScheduleTable::new(&set).expect("the schedule table");
    let camera_frames = 7;
    let mut trace: Vec<FrameRecord> = Vec::new();
    let started = Instant::now();
    let outcome = host::run(
        &set,
        &table,
        &mut [&mut camera as &mut dyn JobRunner, &mut planner],
        &StdClock::default(),
        &HostConfig {
            stop: Stop::Frames(camera_frames * 5),
            ..HostConfig::default()
        },
        &mut |frame: &FrameRecord| trace.push(*frame),
    )
    .expect("the host run");

    let states = |task: u8| -> Vec<(u32, FrameState)> {
        let mut frames: Vec<_> = trace
            .iter()
            .filter(|f| f.task == task)
            .map(|f| (f.seq, f.state))
            .collect();
        frames.sort_unstable_by_key(|&(seq, _)| seq);
        frames
    };
    let camera_states = states(0);
    let (killed_seq, killed_pid) = camera.killed.expect("the worker was killed");
    let failed: Vec<u32> = trace
        .iter()
        .filter(|f| f.state == FrameState::Failed)
        .map(|f| f.seq)
        .collect();
    assert_eq!(
        failed,
        [killed_seq],
        "exactly the frame whose worker was killed fails: {camera_states:?}"
    );
    assert!(
        trace
            .iter()
            .all(|f| f.task == 0 || f.state != FrameState::Failed),
        "the other task is untouched"
    );
    let next = camera_states
        .iter()
        .find(|&&(seq, _)| seq == killed_seq + 1)
        .expect("a frame after the killed one was released");
    assert!(
        matches!(next.1, FrameState::Met | FrameState::Late),
        "the next frame runs on the restarted worker: {camera_states:?}"
    );
    assert!(camera_states.len() as u32 > killed_seq + 2);

    // Every released frame is accounted, exactly once.
    let count = |state| trace.iter().filter(|f| f.state == state).count() as u64;
    let accounted: u64 = [
        FrameState::Met,
        FrameState::Late,
        FrameState::Skipped,
        FrameState::Failed,
    ]
    .into_iter()
    .map(count)
    .sum();
    assert_eq!(accounted, outcome.released);
    assert_eq!(trace.len() as u64, outcome.released);

    let pipeline = &camera.pipeline;
    let restarted: Vec<u32> = pipeline.worker_pids().collect();
    assert_eq!(restarted.len(), 1);
    assert_ne!(
        restarted[0], killed_pid,
        "a new worker runs the later frames"
    );
    let counters = pipeline.counters();
    assert_eq!(counters.failures.worker, 1);
    assert_eq!(counters.failures.total(), 1);
    match pipeline.last_fault() {
        Some(FrameFault::Worker(WorkerFault::Died(status))) => {
            assert!(!status.success(), "killed, not exited: {status}");
        }
        other => panic!("expected the worker's death, got {other:?}"),
    }
    println!(
        "{} releases in {:.1} s: camera {camera_states:?}",
        outcome.released,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn interchangeable_camera_packages_swap_in_a_scenario_by_one_line() {
    let dir = enter();
    let spec = ProblemSpec::read(&common::repo().join("models/specs/camera_det.toml"))
        .expect("the camera spec");
    for stem in ["camera_det", "camera_det_pruned"] {
        let bytes = AlignedBytes::read(common::packages().get(stem)).expect("reading");
        let package = Package::parse(bytes.as_slice()).expect("parsing");
        let differences = check(&package, &spec);
        assert!(differences.is_empty(), "{stem}: {differences:?}");
    }

    let highway = std::fs::read_to_string("scenarios/highway.toml").expect("reading highway");
    let primary = "package = \"models/camera/camera_det.cpk\"";
    assert_eq!(highway.matches(primary).count(), 1);
    let swapped = highway.replace(primary, "package = \"models/camera/camera_det_pruned.cpk\"");
    let changed = highway
        .lines()
        .zip(swapped.lines())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(changed, 1, "one line differs");
    let path = dir.join("highway-pruned.toml");
    std::fs::write(&path, swapped).expect("writing the swapped scenario");

    let plan = Scenario::load(&path)
        .and_then(|s| s.plan(&MeasureConfig::default()))
        .expect("the swapped scenario plans");
    assert_eq!(
        plan.scenario.tasks()[0].packages,
        [PathBuf::from("models/camera/camera_det_pruned.cpk")]
    );
    plan.check_schedulable()
        .expect("the same verdict: budgets are the file's");
    let report = run_on_host(
        &plan,
        &RunConfig {
            duration: Duration::from_millis(500),
        },
    )
    .expect("the swapped scenario runs");
    assert_eq!(report.trace.len() as u64, report.outcome.released);
    let camera = &report.stats[0];
    assert!(camera.met() + camera.late() > 0, "the camera task ran");
    assert_eq!(camera.failed(), 0);
}
