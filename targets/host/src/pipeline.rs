//! The frame path of every host task, as scheduler job runners.
//!
//! A [`RunnerSpec`] names a task's model chain, its degrade chain, its sensor and its
//! budget; [`load_pipeline`] (or [`load_runner`], for a boxed
//! [`cadence_scheduler::host::JobRunner`]) loads everything once — packages, engines,
//! arenas, the recorded sensor frames — and checks that the pieces fit together. Each
//! job then runs one frame, picked by the job's sequence number, through the chain its
//! [`Mode`] selects:
//!
//! - camera: resize and normalise the frame into the detector's input, run it, decode
//!   boxes (threshold, top-k, NMS) into a fixed-capacity buffer;
//! - lidar: pillarise the sweep into the PFN's input, run the PFN, scatter its features
//!   onto the backbone's BEV input, run the backbone, decode rotated boxes;
//! - no package: spin on the clock for the task's budget (analysis-only tasks still
//!   take their time on the host).
//!
//! With [`Isolation::Process`] each of the task's models runs in its own
//! `cadence-worker` process ([`cadence_isolated`]), so a crash in one model cannot take
//! down the others; pre- and post-processing still run in the scheduler's worker thread,
//! writing inputs and reading outputs in place in the shared arena. A worker that dies
//! or hangs (no answer within [`WORKER_TIMEOUT_DEADLINES`] relative deadlines) fails its
//! frame ([`FrameFault::Worker`]) and is restarted by the next frame.
//!
//! After the first frame of each chain, a job does not allocate (contract 1; proved by
//! `tests/zero_alloc.rs`). A frame that cannot be processed (a refused input, a backend
//! fault, bad head outputs) ends the job with [`JobFailed`], is counted in
//! [`Counters::failures`] and kept as [`Pipeline::last_fault`]; the next frame runs
//! normally.

mod camera;
mod lidar;
mod model;
mod recorded;
pub mod samples;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use cadence_hal::Accelerator;
use cadence_hal::cpu::CpuBackend;
use cadence_isolated::{IsolatedError, WorkerMessage};
use cadence_models::camera::CameraError;
use cadence_models::lidar::{LidarDetection, LidarError};
use cadence_models::nms::{PostConfig, PostError, PostStats};
use cadence_models::ssd::Detection;
use cadence_runtime::engine::EngineError;
use cadence_runtime::package::{Package, PackageError};
use cadence_scheduler::executive::{Dispatch, Mode};
use cadence_scheduler::host::{JobFailed, JobRunner};
use thiserror::Error;

pub use camera::CameraChain;
pub use lidar::LidarChain;
use recorded::Recorded;

/// What a task runs: its model chain, degrade chain, sensor and budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerSpec {
    /// The task's name, for errors and reports.
    pub task: String,
    /// The chain, in order: `[camera_det.cpk]` or `[pfn.cpk, backbone.cpk]`; empty for a
    /// task that only takes its budget (see [`Sensor::None`]).
    pub packages: Vec<PathBuf>,
    /// The chain run in [`Mode::Fallback`] (the degrade policy); may be empty.
    pub fallback: Vec<PathBuf>,
    /// Where the recorded frames come from.
    pub sensor: Sensor,
    /// The task's budget: how long a package-less job spins.
    pub budget_ns: u64,
    /// Where the task's models run.
    pub isolation: Isolation,
}

/// Where a task's models run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// In this process, on the worker thread that runs the task's jobs.
    #[default]
    None,
    /// Each model in its own `cadence-worker` process over shared memory: a crash in
    /// one model fails that frame and cannot take down the others. The worker binary is
    /// `CADENCE_WORKER`, else `cadence-worker` next to the running executable (`cargo
    /// build --release` puts it next to `cadence`). Its engine runs on the CPU backend.
    Process,
}

/// How many of its task's relative deadlines an out-of-process model's frame may take
/// before its worker is taken as hung: killed, the frame failed, the worker restarted
/// by the next frame. Not one deadline: under skip-next or degrade a late frame still
/// delivers (`late`), and a restart (a process spawn and a package load) costs more
/// frames than a slow frame does. A worker silent for several deadlines is hung, not
/// slow.
pub const WORKER_TIMEOUT_DEADLINES: u32 = 4;

/// A task's recorded sensor input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sensor {
    /// 8-bit RGB frames, uint8 `[H, W, 3]` `.npy`: one file or a folder of
    /// `frame_<digits>.npy`.
    Camera {
        /// The file or folder.
        frames: PathBuf,
    },
    /// Point clouds, float32 `[N, 4]` `.npy` (x, y, z, intensity): one file or a folder
    /// of `sweep_<digits>.npy`.
    Lidar {
        /// The file or folder.
        sweeps: PathBuf,
    },
    /// No sensor: the task has no model and spins for its budget.
    None,
}

impl Sensor {
    fn name(&self) -> &'static str {
        match self {
            Self::Camera { .. } => "camera",
            Self::Lidar { .. } => "lidar",
            Self::None => "no",
        }
    }
}

/// Why a task's pipeline cannot be loaded.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// A package file cannot be read.
    #[error("cannot read package `{path}`: {source}")]
    ReadPackage {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A package file is not a valid package.
    #[error("`{path}` is not a usable package: {source}")]
    BadPackage {
        /// The file.
        path: PathBuf,
        /// Why.
        source: PackageError,
    },
    /// A package is of another model family than its place in the chain needs.
    #[error(
        "`{path}` is a {found} model, but this place in the chain needs a {expected} model \
         (compile it with `--family {expected}`)"
    )]
    WrongFamily {
        /// The file.
        path: PathBuf,
        /// The family needed.
        expected: &'static str,
        /// The family the package declares.
        found: &'static str,
    },
    /// A chain has the wrong number of packages for the sensor.
    #[error(
        "task `{task}`: a {sensor} sensor needs a {chain} chain of {expected}, got {got} package(s)"
    )]
    ChainLength {
        /// The task.
        task: String,
        /// The sensor.
        sensor: &'static str,
        /// `primary` or `fallback`.
        chain: &'static str,
        /// What the chain must hold.
        expected: &'static str,
        /// Packages given.
        got: usize,
    },
    /// A package's inputs, outputs or pre-processing do not fit the sensor or the next
    /// model in the chain.
    #[error("`{path}` does not fit its place in the chain: {reason}")]
    Interface {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The backend cannot be made for a package.
    #[error("no backend for `{path}`: {reason}")]
    Backend {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The engine refused a package.
    #[error("cannot load `{path}`: {source}")]
    Engine {
        /// The file.
        path: PathBuf,
        /// Why (boxed: the engine's error carries fixed-capacity names and details).
        source: Box<EngineError>,
    },
    /// The worker process for an out-of-process package could not be started.
    #[error("cannot run `{path}` in a worker process: {source}")]
    Worker {
        /// The file.
        path: PathBuf,
        /// Why (boxed: the error carries the worker's message inline).
        source: Box<IsolatedError>,
    },
    /// A sensor folder holds no recorded frames.
    #[error("no recorded frames in `{folder}` (expected files named {pattern})")]
    NoSamples {
        /// The folder.
        folder: PathBuf,
        /// The file names looked for.
        pattern: String,
    },
    /// A recorded frame cannot be used.
    #[error("recorded frame `{path}` is unusable: {reason}")]
    BadSample {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Why one frame failed. Returned by value and copied into [`Pipeline::last_fault`]:
/// it is large (the engine's error carries fixed-capacity names), but boxing it would
/// allocate on the frame path, which contract 1 forbids even for failed frames.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum FrameFault {
    /// The camera frame could not be pre-processed.
    #[error("camera pre-processing: {0}")]
    Camera(CameraError),
    /// The lidar sweep could not be pillarised or scattered.
    #[error("lidar pre-processing: {0}")]
    Lidar(LidarError),
    /// An engine refused the input or its backend failed.
    #[error("engine: {0}")]
    Engine(EngineError),
    /// The head outputs could not be decoded.
    #[error("post-processing: {0}")]
    Post(PostError),
    /// A job asked for the fallback chain, but the task has none.
    #[error("the job asked for the fallback chain, but the task declares none")]
    NoFallback,
    /// An out-of-process model's worker did not deliver the frame.
    #[error("model worker: {0}")]
    Worker(WorkerFault),
}

/// Why an out-of-process model's worker did not deliver a frame. Every case but
/// [`WorkerFault::Unavailable`] is held inline, so reporting it does not allocate.
#[derive(Clone, Debug, PartialEq, Error)]
#[expect(
    clippy::large_enum_variant,
    reason = "the worker's message is held inline so that a failed frame does not allocate"
)]
pub enum WorkerFault {
    /// The worker process died during the frame (crashed, aborted, killed). The next
    /// frame restarts it.
    #[error("the worker process died during the frame ({0}); the next frame restarts it")]
    Died(ExitStatus),
    /// The worker did not answer in time and was killed. The next frame restarts it.
    #[error("the worker did not answer within {0:?}; it was killed and the next frame restarts it")]
    Timeout(Duration),
    /// The worker's engine refused or failed the frame (a NaN input, a backend fault).
    /// The worker stays up.
    #[error("the worker's engine failed the frame: {0}")]
    Refused(WorkerMessage),
    /// The worker could not be restarted, or its process not checked on; the next
    /// frame tries again.
    #[error("{0}")]
    Unavailable(String),
}

impl From<EngineError> for FrameFault {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}

impl From<PostError> for FrameFault {
    fn from(e: PostError) -> Self {
        Self::Post(e)
    }
}

/// Failed frames, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureCounts {
    /// Frames the pre-processing refused.
    pub pre_process: u64,
    /// Frames an engine refused for a NaN or infinite input (in process).
    pub non_finite_input: u64,
    /// Frames an engine or its backend failed otherwise. Out of process, every frame
    /// the worker's engine refused or failed, NaN inputs included: its reason comes
    /// back as text ([`WorkerFault::Refused`]).
    pub engine: u64,
    /// Frames whose head outputs could not be decoded.
    pub post_process: u64,
    /// Fallback jobs of a task without a fallback chain.
    pub no_fallback: u64,
    /// Frames lost to an out-of-process model's worker: it died, hung, or could not
    /// be restarted.
    pub worker: u64,
}

impl FailureCounts {
    /// All failed frames.
    pub fn total(&self) -> u64 {
        self.pre_process
            + self.non_finite_input
            + self.engine
            + self.post_process
            + self.no_fallback
            + self.worker
    }

    fn count(&mut self, fault: &FrameFault) {
        let counter = match fault {
            FrameFault::Camera(_) | FrameFault::Lidar(_) => &mut self.pre_process,
            FrameFault::Engine(EngineError::NonFiniteInput { .. }) => &mut self.non_finite_input,
            FrameFault::Engine(_) | FrameFault::Worker(WorkerFault::Refused(_)) => &mut self.engine,
            FrameFault::Post(_) => &mut self.post_process,
            FrameFault::NoFallback => &mut self.no_fallback,
            FrameFault::Worker(_) => &mut self.worker,
        };
        *counter += 1;
    }
}

/// What a pipeline has done since it was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Jobs that ran the primary chain (to the end or not).
    pub primary_runs: u64,
    /// Jobs that ran the fallback chain (to the end or not).
    pub fallback_runs: u64,
    /// Jobs that ran to the end.
    pub completed: u64,
    /// Detections kept, over all frames.
    pub detections: u64,
    /// Detections NMS kept beyond the output buffer's capacity, over all frames.
    pub detections_overflow: u64,
    /// Lidar sweeps that had more occupied cells than the PFN has pillars (the
    /// oversize-input policy keeps the first pillars; see `pillarise`).
    pub oversize_sweeps: u64,
    /// Lidar points dropped: in a full pillar or beyond the pillar capacity.
    pub points_dropped: u64,
    /// Lidar points with a NaN or infinite value, dropped.
    pub non_finite_points: u64,
    /// Failed frames, by cause.
    pub failures: FailureCounts,
}

impl Counters {
    /// Counts a decoded frame: the `kept` detections and what NMS had no room for.
    fn count_decoded(&mut self, kept: usize, stats: &PostStats) {
        self.detections += kept as u64;
        self.detections_overflow += stats.overflow as u64;
    }
}

/// Score thresholds and NMS overlap for the camera detector's outputs.
pub const CAMERA_POST: PostConfig = PostConfig {
    score_threshold: [0.3; 3],
    iou_threshold: 0.45,
};

/// Score thresholds and NMS overlap (bird's-eye view) for the lidar head's outputs.
pub const LIDAR_POST: PostConfig = PostConfig {
    score_threshold: [0.3; 3],
    iou_threshold: 0.2,
};

/// Candidates kept by top-k before NMS, per frame.
pub const MAX_CANDIDATES: usize = 256;
/// Detections reported per frame.
pub const MAX_DETECTIONS: usize = 64;

/// Makes the backend a package runs on, once per package at load.
pub trait BackendFactory<B> {
    /// A backend for `package`.
    fn backend(&self, package: &Package<'_>) -> Result<B, String>;
}

/// Cadence's own kernels, the frame path's backend, for every package.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackends;

impl BackendFactory<CpuBackend> for CpuBackends {
    fn backend(&self, _: &Package<'_>) -> Result<CpuBackend, String> {
        Ok(CpuBackend)
    }
}

impl<B, F: Fn(&Package<'_>) -> Result<B, String>> BackendFactory<B> for F {
    fn backend(&self, package: &Package<'_>) -> Result<B, String> {
        self(package)
    }
}

enum Work<B: Accelerator> {
    Camera(Box<Recorded<CameraChain<B>>>),
    Lidar(Box<Recorded<LidarChain<B>>>),
    Spin(Duration),
}

/// A task's loaded frame path: a [`JobRunner`] with counters.
pub struct Pipeline<B: Accelerator = CpuBackend> {
    task: String,
    work: Work<B>,
    counters: Counters,
    last_fault: Option<FrameFault>,
}

/// Loads `spec` on the CPU backend.
pub fn load_pipeline(spec: &RunnerSpec) -> Result<Pipeline, PipelineError> {
    load_pipeline_on(spec, &CpuBackends)
}

/// Loads `spec` as a boxed job runner for [`cadence_scheduler::host::run`]. Use
/// [`load_pipeline`] to read the counters afterwards.
pub fn load_runner(spec: &RunnerSpec) -> Result<Box<dyn JobRunner>, PipelineError> {
    Ok(Box::new(load_pipeline(spec)?))
}

/// Loads `spec` with every package on the backend `backends` makes (benchmarks run
/// the same pipeline on a peer backend).
pub fn load_pipeline_on<B: Accelerator>(
    spec: &RunnerSpec,
    backends: &impl BackendFactory<B>,
) -> Result<Pipeline<B>, PipelineError> {
    let length =
        |chain: &'static str, expected: &'static str, got: usize| PipelineError::ChainLength {
            task: spec.task.clone(),
            sensor: spec.sensor.name(),
            chain,
            expected,
            got,
        };
    let work = match &spec.sensor {
        Sensor::None if spec.packages.is_empty() && spec.fallback.is_empty() => {
            Work::Spin(Duration::from_nanos(spec.budget_ns))
        }
        Sensor::None => {
            return Err(length(
                "primary",
                "no packages (give the task a sensor to run models)",
                spec.packages.len() + spec.fallback.len(),
            ));
        }
        Sensor::Camera { frames } => {
            let (primary, fallback) = match (&spec.packages[..], &spec.fallback[..]) {
                ([p], []) => (p.as_path(), None),
                ([p], [f]) => (p.as_path(), Some(f.as_path())),
                ([_], f) => return Err(length("fallback", "one camera package or none", f.len())),
                (p, _) => return Err(length("primary", "one camera package", p.len())),
            };
            Work::Camera(Box::new(Recorded::new(
                CameraChain::load(primary, fallback, spec.isolation, backends)?,
                samples::camera_frames(frames)?,
            )))
        }
        Sensor::Lidar { sweeps } => {
            let expected = "two packages (PFN, backbone)";
            let primary = match &spec.packages[..] {
                [pfn, backbone] => (pfn.as_path(), backbone.as_path()),
                p => return Err(length("primary", expected, p.len())),
            };
            let fallback = match &spec.fallback[..] {
                [] => None,
                [pfn, backbone] => Some((pfn.as_path(), backbone.as_path())),
                f => return Err(length("fallback", expected, f.len())),
            };
            Work::Lidar(Box::new(Recorded::new(
                LidarChain::load(primary, fallback, spec.isolation, backends)?,
                samples::lidar_sweeps(sweeps)?,
            )))
        }
    };
    Ok(Pipeline {
        task: spec.task.clone(),
        work,
        counters: Counters::default(),
        last_fault: None,
    })
}

impl<B: Accelerator> Pipeline<B> {
    /// The task's name.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// What the pipeline has done so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Why the most recent failed frame failed.
    pub fn last_fault(&self) -> Option<&FrameFault> {
        self.last_fault.as_ref()
    }

    /// The last completed camera frame's detections, best first (empty for other
    /// sensors).
    pub fn camera_detections(&self) -> &[Detection] {
        match &self.work {
            Work::Camera(camera) => camera.detections(),
            _ => &[],
        }
    }

    /// The last completed lidar frame's detections, best first (empty for other
    /// sensors).
    pub fn lidar_detections(&self) -> &[LidarDetection] {
        match &self.work {
            Work::Lidar(lidar) => lidar.detections(),
            _ => &[],
        }
    }

    /// The process ids of the task's model workers that are running (none in
    /// process), for supervisors and fault-injection tests.
    pub fn worker_pids(&self) -> impl Iterator<Item = u32> + '_ {
        let (camera, lidar) = match &self.work {
            Work::Camera(camera) => (Some(camera.worker_pids()), None),
            Work::Lidar(lidar) => (None, Some(lidar.worker_pids())),
            Work::Spin(_) => (None, None),
        };
        camera
            .into_iter()
            .flatten()
            .chain(lidar.into_iter().flatten())
    }

    /// How many recorded frames the pipeline cycles through (0 for a spinner).
    pub fn recorded_frames(&self) -> usize {
        match &self.work {
            Work::Camera(camera) => camera.len(),
            Work::Lidar(lidar) => lidar.len(),
            Work::Spin(_) => 0,
        }
    }

    /// Runs frame `job.seq` (modulo the recorded frames) through the chain `job.mode`
    /// selects, updating the counters. Out-of-process models get
    /// [`WORKER_TIMEOUT_DEADLINES`] times the job's relative deadline to answer.
    #[expect(
        clippy::result_large_err,
        reason = "see FrameFault: boxing would allocate per frame"
    )]
    pub fn run_job(&mut self, job: &Dispatch) -> Result<(), FrameFault> {
        let fallback = job.mode == Mode::Fallback;
        if fallback {
            self.counters.fallback_runs += 1;
        } else {
            self.counters.primary_runs += 1;
        }
        let seq = job.seq as usize;
        let timeout = Duration::from_nanos(job.deadline_ns.saturating_sub(job.release_ns))
            .saturating_mul(WORKER_TIMEOUT_DEADLINES);
        let result = match &mut self.work {
            Work::Camera(camera) => camera.run(seq, fallback, timeout, &mut self.counters),
            Work::Lidar(lidar) => lidar.run(seq, fallback, timeout, &mut self.counters),
            Work::Spin(budget) => {
                spin_for(*budget);
                Ok(())
            }
        };
        match result {
            Ok(()) => self.counters.completed += 1,
            Err(ref fault) => {
                self.counters.failures.count(fault);
                self.last_fault = Some(fault.clone());
            }
        }
        result
    }
}

impl<B: Accelerator + Send> JobRunner for Pipeline<B> {
    fn run(&mut self, job: &Dispatch) -> Result<(), JobFailed> {
        self.run_job(job).map_err(|_| JobFailed)
    }
}

/// Busy-waits `budget` on the monotonic clock: a package-less task occupies its worker
/// for exactly its budget, as the schedule assumes.
fn spin_for(budget: Duration) {
    let start = Instant::now();
    while start.elapsed() < budget {
        std::hint::spin_loop();
    }
}

/// Loads each distinct package file once, so a fallback chain that shares a stage with
/// the primary chain (the lidar PFN) shares its engine and arena too.
struct Pool<T> {
    entries: Vec<(PathBuf, T)>,
}

impl<T> Pool<T> {
    fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// The index of `path`'s entry, loading it with `load` the first time.
    fn index_or_load(
        &mut self,
        path: &Path,
        load: impl FnOnce(&Path) -> Result<T, PipelineError>,
    ) -> Result<usize, PipelineError> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        if let Some(index) = self.entries.iter().position(|(k, _)| *k == key) {
            return Ok(index);
        }
        self.entries.push((key, load(path)?));
        Ok(self.entries.len() - 1)
    }

    fn get(&self, index: usize) -> &T {
        &self.entries[index].1
    }

    fn into_values(self) -> Vec<T> {
        self.entries.into_iter().map(|(_, v)| v).collect()
    }
}
