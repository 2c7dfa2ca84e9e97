//! Dispatch latency and end-to-end jitter of the host pipeline, against the same
//! models in a plain loop on Cadence's CPU kernels and on tract.
//!
//! ```text
//! bash tools/build-models.sh
//! cargo run --release -p cadence-host --example bench_scenario -- --frames 200
//! ```
//!
//! First two package-less tasks (1 ms spinners every 10 ms, one per worker) measure
//! the scheduler's own dispatch latency without model load. Then the camera
//! (`camera_det`) and lidar (`pfn` + `backbone`) tasks run under the
//! scheduler's host driver on two non-preemptive CPU workers, with periods sized from
//! their measured job times (twice the lidar job; the camera period a whole fraction of
//! it). Per task it reports dispatch latency (release → start on the worker, p50/p99)
//! and response-time jitter (p99.9 / p50 of release → end); then the same frames run
//! back to back in a plain loop on the CPU backend and on tract. Goals (issue 3):
//! dispatch p99 ≤ 20 µs, response p99.9 / p50 ≤ 1.10.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cadence_hal::StdClock;
use cadence_hal::tract::{Binding, TractBackend};
use cadence_host::pipeline::{
    Isolation, Pipeline, RunnerSpec, Sensor, load_pipeline, load_pipeline_on,
};
use cadence_runtime::package::Package;
use cadence_scheduler::executive::{Dispatch, FrameRecord, Mode};
use cadence_scheduler::host::{self, HostConfig, JobRunner, Stop};
use cadence_scheduler::task::{self, AcceleratorSpec, TaskSpec};
use cadence_scheduler::{ScheduleTable, TaskSet};
use clap::Parser;

/// Command-line options.
#[derive(Parser)]
struct Args {
    /// Frames per task in each measurement (10000 for a p99.9 worth the name).
    #[arg(long, default_value_t = 200)]
    frames: usize,
    /// The repository's `models/` folder (packages from `tools/build-models.sh`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models"))]
    models: PathBuf,
    /// Skip the tract loop (it takes about a second per lidar frame).
    #[arg(long)]
    no_tract: bool,
}

fn specs(models: &Path) -> [RunnerSpec; 2] {
    [
        RunnerSpec {
            task: "camera".into(),
            packages: vec![models.join("camera/camera_det.cpk")],
            fallback: Vec::new(),
            sensor: Sensor::Camera {
                frames: models.join("data/camera"),
            },
            budget_ns: 0,
            isolation: Isolation::None,
        },
        RunnerSpec {
            task: "lidar".into(),
            packages: vec![
                models.join("lidar/pfn.cpk"),
                models.join("lidar/backbone.cpk"),
            ],
            fallback: Vec::new(),
            sensor: Sensor::Lidar {
                sweeps: models.join("data/lidar"),
            },
            budget_ns: 0,
            isolation: Isolation::None,
        },
    ]
}

fn job(seq: usize) -> Dispatch {
    Dispatch {
        accelerator: 0,
        task: 0,
        seq: seq as u32,
        mode: Mode::Primary,
        release_ns: 0,
        deadline_ns: u64::MAX,
        resume: false,
        displaces: None,
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 and p99.9 / p50 of `samples`, as printed.
fn jitter(samples: &mut [u64]) -> (String, String) {
    if samples.is_empty() {
        return ("-".into(), "-".into());
    }
    samples.sort_unstable();
    let p50 = percentile(samples, 50.0);
    (
        ms(p50),
        format!(
            "{:.3}",
            percentile(samples, 99.9) as f64 / p50.max(1) as f64
        ),
    )
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn us(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1e3)
}

/// Frame times of `frames` back-to-back jobs, after one warm-up frame.
fn plain_loop<B: cadence_hal::Accelerator>(pipeline: &mut Pipeline<B>, frames: usize) -> Vec<u64> {
    pipeline.run_job(&job(0)).expect("warm-up frame");
    (0..frames)
        .map(|seq| {
            let start = Instant::now();
            pipeline.run_job(&job(seq)).expect("frame");
            start.elapsed().as_nanos() as u64
        })
        .collect()
}

/// A tract backend on the package's embedded source ONNX, bound as the package's
/// inputs and outputs.
fn tract(package: &Package<'_>) -> Result<TractBackend, String> {
    let onnx = package
        .source_onnx()
        .ok_or("the package does not embed its source ONNX")?;
    let inputs = package
        .inputs()
        .map(|io| Binding {
            tensor: io.tensor_index(),
            shape: io.shape().dims().to_vec(),
        })
        .collect();
    let outputs = package.outputs().map(|io| io.tensor_index()).collect();
    Ok(TractBackend::new(onnx, inputs, outputs))
}

/// Per task: dispatch latencies and response times of the frames that ran.
struct HostSamples {
    dispatch: [Vec<u64>; 2],
    response: [Vec<u64>; 2],
    misses: [u64; 2],
}

/// Periods for the camera and lidar tasks: twice the slowest of a few lidar jobs, and
/// the camera's a whole fraction of it of at least twice a camera job.
fn model_periods(pipelines: &mut [Pipeline; 2]) -> [u64; 2] {
    let slowest = |pipeline: &mut Pipeline| {
        let times = plain_loop(pipeline, 3);
        times.iter().copied().max().unwrap_or(0)
    };
    let camera = slowest(&mut pipelines[0]);
    let lidar_period = 2 * slowest(&mut pipelines[1]);
    let per_lidar = (lidar_period / (2 * camera).max(1)).clamp(1, 64);
    [lidar_period / per_lidar, lidar_period]
}

/// Runs `pipelines` as tasks 0 and 1 on workers `cpu0` and `cpu1` with `periods`
/// (deadline = period, skip-next on overrun) until `releases` jobs were released.
fn host_run(pipelines: &mut [Pipeline; 2], periods: [u64; 2], releases: u64) -> HostSamples {
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
            spec(pipelines[0].task(), 0, periods[0], 2),
            spec(pipelines[1].task(), 1, periods[1], 1),
        ],
    )
    .expect("task set");
    let table = ScheduleTable::new(&set).expect("schedule table");
    let mut samples = HostSamples {
        dispatch: [Vec::new(), Vec::new()],
        response: [Vec::new(), Vec::new()],
        misses: [0; 2],
    };
    let mut recorder = |frame: &FrameRecord| {
        let task = usize::from(frame.task);
        if let Some(start) = frame.start_ns {
            samples.dispatch[task].push(start - frame.release_ns);
        }
        match frame.end_ns {
            Some(end) if end <= frame.deadline_ns => {
                samples.response[task].push(end - frame.release_ns);
            }
            Some(end) => {
                samples.response[task].push(end - frame.release_ns);
                samples.misses[task] += 1;
            }
            None => samples.misses[task] += 1,
        }
    };
    let [first, second] = pipelines;
    host::run(
        &set,
        &table,
        &mut [first as &mut dyn JobRunner, second],
        &StdClock::default(),
        &HostConfig {
            stop: Stop::Frames(releases),
            ..HostConfig::default()
        },
        &mut recorder,
    )
    .expect("host run");
    samples
}

/// A package-less task spinning `budget`.
fn spinner(task: &str, budget: Duration) -> Pipeline {
    load_pipeline(&RunnerSpec {
        task: task.into(),
        packages: Vec::new(),
        fallback: Vec::new(),
        sensor: Sensor::None,
        budget_ns: budget.as_nanos() as u64,
        isolation: Isolation::None,
    })
    .expect("spinner")
}

fn print_header() {
    println!(
        "\n{:<7} {:>7} | {:>10} {:>10} | {:>10} {:>9} {:>6} | {:>10} {:>9} | {:>10} {:>9}",
        "task",
        "frames",
        "disp p50",
        "disp p99",
        "resp p50",
        "p99.9/50",
        "missed",
        "cpu p50",
        "p99.9/50",
        "tract p50",
        "p99.9/50"
    );
}

/// One table row; loops without samples print as `-`.
fn print_row(task: &str, host: &mut HostSamples, t: usize, cpu: &mut [u64], tract: &mut [u64]) {
    let dispatch = &mut host.dispatch[t];
    dispatch.sort_unstable();
    let (d50, d99) = if dispatch.is_empty() {
        ("-".into(), "-".into())
    } else {
        (
            us(percentile(dispatch, 50.0)),
            us(percentile(dispatch, 99.0)),
        )
    };
    let (r50, rj) = jitter(&mut host.response[t]);
    let (c50, cj) = jitter(cpu);
    let (t50, tj) = jitter(tract);
    println!(
        "{:<7} {:>7} | {:>10} {:>10} | {:>10} {:>9} {:>6} | {:>10} {:>9} | {:>10} {:>9}",
        task,
        host.response[t].len(),
        d50,
        d99,
        r50,
        rj,
        host.misses[t],
        c50,
        cj,
        t50,
        tj
    );
}

fn main() {
    let args = Args::parse();
    let started = Instant::now();

    // The scheduler alone: 1 ms spinners every 10 ms on each worker.
    let period = Duration::from_millis(10);
    let mut spinners = [spinner("spin0", period / 10), spinner("spin1", period / 10)];
    let period_ns = period.as_nanos() as u64;
    let mut idle = host_run(&mut spinners, [period_ns; 2], 2 * args.frames as u64);

    let specs = specs(&args.models);
    let load = |spec: &RunnerSpec| {
        load_pipeline(spec).unwrap_or_else(|e| {
            eprintln!("{e}\n(build the bundled packages with `bash tools/build-models.sh`)");
            std::process::exit(2)
        })
    };
    let mut pipelines = [load(&specs[0]), load(&specs[1])];
    let periods = model_periods(&mut pipelines);
    println!(
        "host run: camera period {}, lidar period {}",
        ms(periods[0]),
        ms(periods[1])
    );
    // Enough releases that the lidar task gets `frames` frames.
    let releases = (args.frames as u64 + 1) * (periods[1] / periods[0] + 1);
    let mut host = host_run(&mut pipelines, periods, releases);
    let mut cpu_loop: Vec<Vec<u64>> = pipelines
        .iter_mut()
        .map(|p| plain_loop(p, args.frames))
        .collect();
    let mut tract_loop: Vec<Vec<u64>> = if args.no_tract {
        vec![Vec::new(), Vec::new()]
    } else {
        specs
            .iter()
            .map(|spec| {
                let mut pipeline = load_pipeline_on(spec, &tract).expect("tract pipeline");
                plain_loop(&mut pipeline, args.frames)
            })
            .collect()
    };

    print_header();
    for (t, spinner) in spinners.iter().enumerate() {
        print_row(spinner.task(), &mut idle, t, &mut [], &mut []);
    }
    for (t, (cpu, tract)) in cpu_loop.iter_mut().zip(&mut tract_loop).enumerate() {
        print_row(pipelines[t].task(), &mut host, t, cpu, tract);
    }
    println!(
        "\ngoals: dispatch p99 <= 20 us; host response p99.9/p50 <= 1.10. \
         disp = release -> start on the worker; resp = release -> end (host executive); \
         cpu / tract = the same pipeline in a plain loop; spin0/1 = 1 ms spinners every 10 ms \
         (the scheduler without model load). {:.0} s in all.",
        started.elapsed().as_secs_f64()
    );
}
