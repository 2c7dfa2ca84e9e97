//! The host job runners: same detections as the library functions called by hand, the
//! fallback chain in fallback mode, and a clear error for every bad configuration.

mod common;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use npyz::WriterBuilder;

use cadence_hal::cpu::CpuBackend;
use cadence_hal::{Accelerator, BackendError, Plan};
use cadence_host::pipeline::{
    CAMERA_POST, FrameFault, Isolation, MAX_CANDIDATES, MAX_DETECTIONS, PipelineError, RunnerSpec,
    Sensor, load_pipeline, load_pipeline_on,
};
use cadence_models::camera::{self, Normalisation, RgbFrame};
use cadence_models::lidar::POINTPILLARS_GRID;
use cadence_models::nms::TopK;
use cadence_models::ssd::{self, Detection};
use cadence_runtime::engine::{Engine, EngineError};
use cadence_runtime::package::{AlignedBytes, Package};
use cadence_scheduler::executive::Mode;
use cadence_scheduler::host::{JobFailed, JobRunner};
use common::{camera_spec, job, lidar_spec, packages};

fn read_npy<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let npy = npyz::NpyFile::new(BufReader::new(File::open(path).unwrap())).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec().unwrap())
}

/// Frame 0 through `package` with the engine, pre-processing and decoder called by
/// hand, as `cadence run` does (ImageNet normalisation at 320×320, the bundled
/// models' declaration).
fn reference_detections(package: &Path) -> Vec<Detection> {
    let (shape, pixels) = read_npy::<u8>(&common::camera_frames().join("frame_000.npy"));
    let frame = RgbFrame {
        height: shape[0] as usize,
        width: shape[1] as usize,
        pixels: &pixels,
    };
    let bytes = AlignedBytes::read(package).unwrap();
    let package = Package::parse(bytes.as_slice()).unwrap();
    let mut arena = AlignedBytes::zeroed(package.arena_bytes());
    let mut engine = Engine::load(&package, CpuBackend, arena.as_mut_slice()).unwrap();
    let input = engine.input_index("image").unwrap();
    camera::preprocess(
        &frame,
        Normalisation::Imagenet,
        320,
        320,
        engine.input_mut(input).unwrap(),
    )
    .unwrap();
    engine.run().unwrap();
    let mut candidates = TopK::<Detection, MAX_CANDIDATES>::new();
    let mut out = heapless::Vec::<Detection, MAX_DETECTIONS>::new();
    ssd::decode_camera(
        engine.output("boxes").unwrap(),
        engine.output("scores").unwrap(),
        &CAMERA_POST,
        &mut candidates,
        &mut out,
    )
    .unwrap();
    out.to_vec()
}

#[test]
fn camera_runner_detects_what_the_library_does_on_each_chain() {
    let p = packages();
    let mut pipeline = load_pipeline(&camera_spec()).unwrap();
    assert!(
        pipeline.recorded_frames() > 1,
        "cycles through several frames"
    );

    pipeline.run_job(&job(0, Mode::Primary)).unwrap();
    let primary = reference_detections(&p.get("camera_det"));
    assert_eq!(pipeline.camera_detections(), primary.as_slice());

    pipeline.run_job(&job(0, Mode::Fallback)).unwrap();
    let fallback = reference_detections(&p.get("camera_det_pruned"));
    assert_eq!(pipeline.camera_detections(), fallback.as_slice());
    assert_ne!(
        primary, fallback,
        "the pruned detector must differ for this check to tell the chains apart"
    );

    // The sequence number cycles through the recordings: frame 0 again.
    let frames = pipeline.recorded_frames() as u32;
    pipeline.run_job(&job(frames, Mode::Primary)).unwrap();
    assert_eq!(pipeline.camera_detections(), primary.as_slice());

    let counters = pipeline.counters();
    assert_eq!((counters.primary_runs, counters.fallback_runs), (2, 1));
    assert_eq!(counters.completed, 3);
    assert_eq!(
        counters.detections as usize,
        2 * primary.len() + fallback.len()
    );
    assert_eq!(counters.failures.total(), 0);
}

#[test]
fn a_fallback_job_without_a_fallback_chain_fails_alone() {
    let spec = RunnerSpec {
        fallback: Vec::new(),
        ..camera_spec()
    };
    let mut pipeline = load_pipeline(&spec).unwrap();
    assert_eq!(
        pipeline.run_job(&job(0, Mode::Fallback)),
        Err(FrameFault::NoFallback)
    );
    assert_eq!(pipeline.last_fault(), Some(&FrameFault::NoFallback));
    assert_eq!(pipeline.counters().failures.no_fallback, 1);
    pipeline.run_job(&job(1, Mode::Primary)).unwrap();
    assert_eq!(pipeline.counters().completed, 1);
}

/// Writes a float32 `[N, 4]` sweep.
fn write_sweep(path: &Path, points: &[[f32; 4]]) {
    let mut out = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[points.len() as u64, 4])
        .writer(File::create(path).unwrap())
        .begin_nd()
        .unwrap();
    out.extend(points.iter().flatten().copied()).unwrap();
    out.finish().unwrap();
}

#[test]
fn lidar_runner_counts_oversize_sweeps_and_runs_its_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let grid = POINTPILLARS_GRID;
    // One point in every cell: more occupied cells than the PFN has pillars.
    let mut points: Vec<[f32; 4]> = (0..grid.cells())
        .map(|cell| {
            let (row, col) = ((cell / grid.nx) as f32, (cell % grid.nx) as f32);
            [
                grid.x_range[0] + (col + 0.5) * grid.voxel,
                grid.y_range[0] + (row + 0.5) * grid.voxel,
                0.0,
                0.5,
            ]
        })
        .collect();
    points.push([f32::NAN, 0.0, 0.0, 0.5]);
    let sweep = dir.path().join("dense.npy");
    write_sweep(&sweep, &points);

    let spec = RunnerSpec {
        sensor: Sensor::Lidar {
            sweeps: sweep.clone(),
        },
        ..lidar_spec()
    };
    let mut pipeline = load_pipeline(&spec).unwrap();
    pipeline.run_job(&job(0, Mode::Primary)).unwrap();
    let counters = *pipeline.counters();
    assert_eq!(counters.oversize_sweeps, 1);
    assert_eq!(
        counters.points_dropped as usize,
        grid.cells() - grid.max_pillars
    );
    assert_eq!(counters.non_finite_points, 1);

    pipeline.run_job(&job(1, Mode::Fallback)).unwrap();
    let counters = pipeline.counters();
    assert_eq!((counters.primary_runs, counters.fallback_runs), (1, 1));
    assert_eq!(counters.completed, 2);
    assert_eq!(counters.oversize_sweeps, 2);
}

fn error(spec: &RunnerSpec) -> PipelineError {
    match load_pipeline(spec) {
        Ok(_) => panic!("{spec:?} loaded"),
        Err(e) => e,
    }
}

#[test]
fn a_package_of_the_wrong_family_is_refused() {
    let p = packages();
    let camera_on_pfn = RunnerSpec {
        packages: vec![p.get("pfn")],
        fallback: Vec::new(),
        ..camera_spec()
    };
    let e = error(&camera_on_pfn);
    assert!(
        matches!(&e, PipelineError::WrongFamily { path, expected: "camera", found: "lidar-pfn" } if *path == p.get("pfn")),
        "{e}"
    );
    let swapped = RunnerSpec {
        packages: vec![p.get("backbone"), p.get("pfn")],
        ..lidar_spec()
    };
    let e = error(&swapped);
    assert!(
        matches!(
            &e,
            PipelineError::WrongFamily {
                expected: "lidar-pfn",
                found: "lidar-backbone",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("--family lidar-pfn"), "{e}");
}

#[test]
fn chains_of_the_wrong_length_are_refused() {
    let p = packages();
    let one_stage_lidar = RunnerSpec {
        packages: vec![p.get("pfn")],
        ..lidar_spec()
    };
    assert!(matches!(
        error(&one_stage_lidar),
        PipelineError::ChainLength {
            chain: "primary",
            got: 1,
            ..
        }
    ));
    let long_fallback = RunnerSpec {
        fallback: vec![p.get("camera_det"), p.get("camera_det_pruned")],
        ..camera_spec()
    };
    assert!(matches!(
        error(&long_fallback),
        PipelineError::ChainLength {
            chain: "fallback",
            got: 2,
            ..
        }
    ));
    let models_without_sensor = RunnerSpec {
        sensor: Sensor::None,
        ..camera_spec()
    };
    assert!(matches!(
        error(&models_without_sensor),
        PipelineError::ChainLength { .. }
    ));
}

#[test]
fn missing_files_and_samples_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.cpk");
    let e = error(&RunnerSpec {
        packages: vec![missing.clone()],
        ..camera_spec()
    });
    assert!(matches!(&e, PipelineError::ReadPackage { path, .. } if *path == missing));

    let not_a_package = dir.path().join("frame.cpk");
    std::fs::write(&not_a_package, b"not a package").unwrap();
    assert!(matches!(
        error(&RunnerSpec {
            packages: vec![not_a_package],
            ..camera_spec()
        }),
        PipelineError::BadPackage { .. }
    ));

    let e = error(&RunnerSpec {
        sensor: Sensor::Camera {
            frames: dir.path().to_owned(),
        },
        ..camera_spec()
    });
    assert!(matches!(&e, PipelineError::NoSamples { folder, .. } if folder == dir.path()));

    // A lidar sweep where a camera frame belongs.
    let sweep: PathBuf = common::lidar_sweeps().join("sweep_000.npy");
    let e = error(&RunnerSpec {
        sensor: Sensor::Camera {
            frames: sweep.clone(),
        },
        ..camera_spec()
    });
    assert!(
        matches!(&e, PipelineError::BadSample { path, .. } if *path == sweep)
            && e.to_string()
                .contains("element type F32; this sensor's recordings are U8"),
        "{e}"
    );
}

#[test]
fn a_task_without_models_spins_for_its_budget() {
    let budget = std::time::Duration::from_millis(5);
    let spec = RunnerSpec {
        task: "planner".into(),
        packages: Vec::new(),
        fallback: Vec::new(),
        sensor: Sensor::None,
        budget_ns: budget.as_nanos() as u64,
        isolation: Isolation::None,
    };
    let mut pipeline = load_pipeline(&spec).unwrap();
    let start = std::time::Instant::now();
    pipeline.run_job(&job(0, Mode::Primary)).unwrap();
    assert!(start.elapsed() >= budget);
    assert_eq!(pipeline.counters().completed, 1);
    assert_eq!(pipeline.recorded_frames(), 0);
}

/// The CPU backend with a switch that makes the next run fail, as a device fault would.
struct FaultyBackend {
    fail_next: Arc<AtomicBool>,
}

impl Accelerator for FaultyBackend {
    fn name(&self) -> &'static str {
        "faulty-cpu"
    }
    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        CpuBackend.prepare(plan)
    }
    fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(BackendError::fault(self.name(), &"injected fault"));
        }
        CpuBackend.run(plan, arena)
    }
}

#[test]
fn a_backend_fault_fails_its_frame_only() {
    let fail_next = Arc::new(AtomicBool::new(false));
    let backends = |_: &Package<'_>| {
        Ok(FaultyBackend {
            fail_next: Arc::clone(&fail_next),
        })
    };
    let mut pipeline = load_pipeline_on(&camera_spec(), &backends).unwrap();
    pipeline.run_job(&job(0, Mode::Primary)).unwrap();
    let good = pipeline.camera_detections().to_vec();

    fail_next.store(true, Ordering::SeqCst);
    assert_eq!(
        JobRunner::run(&mut pipeline, &job(1, Mode::Primary)),
        Err(JobFailed)
    );
    assert!(
        matches!(
            pipeline.last_fault(),
            Some(FrameFault::Engine(EngineError::Backend(
                BackendError::Fault { .. }
            )))
        ),
        "{:?}",
        pipeline.last_fault()
    );
    assert_eq!(
        pipeline.camera_detections(),
        good.as_slice(),
        "a failed frame leaves the last good detections"
    );

    let frames = pipeline.recorded_frames() as u32;
    JobRunner::run(&mut pipeline, &job(frames, Mode::Primary)).unwrap();
    assert_eq!(pipeline.camera_detections(), good.as_slice());
    let counters = pipeline.counters();
    assert_eq!(counters.failures.engine, 1);
    assert_eq!(counters.failures.total(), 1);
    assert_eq!(counters.completed, 2);
}
