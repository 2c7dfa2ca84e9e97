//! The parent side: [`IsolatedEngine`], a package running in a worker process.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cadence_hal::DType;
use cadence_runtime::package::{IoSpec, Package};
use zerocopy::FromBytes;

use crate::error::{IsolatedError, PackageFileError};
use crate::protocol::{
    ControlBlock, Outcome, WorkerState, publish, sleep_until_changed, spin_until_changed,
};
use crate::shared::SharedRegion;

/// The environment variable naming the worker binary.
pub const WORKER_ENV: &str = "CADENCE_WORKER";
/// The worker binary's file name.
pub const WORKER_NAME: &str = "cadence-worker";

/// Longest the parent sleeps before checking that the worker is still alive: the bound
/// on how late a crash is noticed.
const LIVENESS_SLICE: Duration = Duration::from_millis(2);

/// How an [`IsolatedEngine`] starts and waits for its worker.
#[derive(Clone, Debug)]
pub struct IsolatedOptions {
    /// The worker binary. `None`: the `CADENCE_WORKER` environment variable, else
    /// `cadence-worker` next to the current executable.
    pub worker: Option<PathBuf>,
    /// How long each side spins on the shared sequence numbers before sleeping on a
    /// futex: the worker after every frame, the parent at the start of every wait.
    /// Zero (the default) sleeps at once: every frame then costs a futex wake-up on
    /// each side, a few microseconds, and a loaded machine's scheduler favours the
    /// woken process, which keeps the tail short. Spinning saves the wake-ups (about a
    /// microsecond per frame) but only pays on cores reserved for the two processes;
    /// where threads outnumber cores, a spinner can hold the core the other side needs
    /// and the tail grows to a scheduler time slice (`benches/overhead.rs` shows both).
    pub spin: Duration,
    /// How long the worker may take to start and load the package.
    pub startup_timeout: Duration,
}

impl Default for IsolatedOptions {
    fn default() -> Self {
        Self {
            worker: None,
            spin: Duration::ZERO,
            startup_timeout: Duration::from_secs(30),
        }
    }
}

/// A named input or output: where its `f32` elements sit in the shared arena.
#[derive(Clone, Debug)]
struct Slot {
    name: String,
    bytes: Range<usize>,
}

impl Slot {
    fn of(io: &IoSpec<'_>, package: &Package<'_>) -> Result<Self, IsolatedError> {
        if io.dtype() != DType::F32 {
            return Err(IsolatedError::UnsupportedDType {
                name: io.name().to_owned(),
                dtype: io.dtype(),
            });
        }
        Ok(Self {
            name: io.name().to_owned(),
            bytes: package.plan().byte_range(io.tensor_index()),
        })
    }
}

/// A package running in a worker process, driven through shared memory.
///
/// The worker loads the package into its own [`Engine`](cadence_runtime::Engine) on the
/// CPU backend, with the shared region as its arena: [`IsolatedEngine::input_mut`] and
/// [`IsolatedEngine::output`] are views of the worker's own tensors, so a frame copies
/// nothing and serialises nothing. A crash, hang or abort in the worker fails the
/// current frame ([`IsolatedError::WorkerDied`] or [`IsolatedError::Timeout`]) and
/// nothing else; the next [`IsolatedEngine::run`] respawns it.
///
/// After start-up a frame (`input_mut`/`set_input`, `run`, `output`) does not allocate
/// on the parent side. Restarting does (spawning a process); it is recovery, not the
/// frame path.
#[derive(Debug)]
pub struct IsolatedEngine {
    package_path: PathBuf,
    worker_path: PathBuf,
    options: IsolatedOptions,
    region: SharedRegion,
    inputs: Vec<Slot>,
    outputs: Vec<Slot>,
    /// Room for every input, allocated once: where inputs wait while a worker restarts.
    saved_inputs: Vec<u8>,
    child: Option<Child>,
    sequence: u32,
    outputs_valid: bool,
}

impl IsolatedEngine {
    /// Reads the package (to learn its inputs, outputs and arena size), creates the
    /// shared region, starts a worker on it and waits until it has loaded the package.
    pub fn spawn(
        package_path: impl AsRef<Path>,
        options: IsolatedOptions,
    ) -> Result<Self, IsolatedError> {
        let package_path = package_path.as_ref().to_path_buf();
        let bytes = PackageFileError::read(&package_path)?;
        let package = PackageFileError::parse(&package_path, &bytes)?;
        package
            .plan()
            .validate()
            .map_err(|reason| IsolatedError::InvalidPlan {
                path: package_path.clone(),
                reason,
            })?;
        let inputs: Vec<Slot> = package
            .inputs()
            .map(|io| Slot::of(&io, &package))
            .collect::<Result<_, _>>()?;
        let outputs = package
            .outputs()
            .map(|io| Slot::of(&io, &package))
            .collect::<Result<_, _>>()?;
        let worker_path = worker_path(&options)?;
        let region =
            SharedRegion::create(package.arena_bytes()).map_err(IsolatedError::SharedMemory)?;
        let mut engine = Self {
            package_path,
            worker_path,
            options,
            region,
            saved_inputs: vec![0; inputs.iter().map(|s| s.bytes.len()).sum()],
            inputs,
            outputs,
            child: None,
            sequence: 0,
            outputs_valid: false,
        };
        engine.child = Some(engine.start_worker()?);
        Ok(engine)
    }

    /// The worker's process id, while one is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The package's input names, in spec order.
    pub fn input_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.inputs.iter().map(|s| s.name.as_str())
    }

    /// The package's output names, in spec order.
    pub fn output_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.outputs.iter().map(|s| s.name.as_str())
    }

    /// Input `index`'s elements in shared memory, to write in place. Set every input
    /// before every [`IsolatedEngine::run`]: the plan may reuse an input's memory once
    /// the model has read it.
    pub fn input_mut(&mut self, index: usize) -> Result<&mut [f32], IsolatedError> {
        let bytes = slot(&self.inputs, index)?.bytes.clone();
        self.outputs_valid = false;
        Ok(f32s_mut(&mut self.region.arena_mut()[bytes]))
    }

    /// Copies `data` into input `name`'s place in shared memory.
    pub fn set_input(&mut self, name: &str, data: &[f32]) -> Result<(), IsolatedError> {
        let index = position(&self.inputs, name)
            .ok_or_else(|| IsolatedError::UnknownInput(name.to_owned()))?;
        let target = self.input_mut(index)?;
        if target.len() != data.len() {
            return Err(IsolatedError::InputLength {
                name: name.to_owned(),
                expected: target.len(),
                got: data.len(),
            });
        }
        target.copy_from_slice(data);
        Ok(())
    }

    /// Runs one frame in the worker and waits for it, at most `timeout`.
    ///
    /// If the worker died or was killed since the last frame, it is restarted first
    /// (respawned and the package reloaded: this allocates). A frame the worker does
    /// not finish ends as [`IsolatedError::WorkerDied`] (it crashed or was killed) or
    /// [`IsolatedError::Timeout`] (it was killed for taking too long); either way the
    /// next call restarts it.
    pub fn run(&mut self, timeout: Duration) -> Result<(), IsolatedError> {
        self.outputs_valid = false;
        let child = match self.child.take() {
            Some(child) => child,
            None => self.start_worker()?,
        };
        let child = self.child.insert(child);
        let sequence = self.sequence.wrapping_add(1);
        self.sequence = sequence;
        let control = self.region.control();
        publish(&control.request.0, sequence, &control.worker_sleeping);
        match wait_done(control, child, sequence, self.options.spin, timeout)
            .map_err(IsolatedError::Process)?
        {
            FrameEnd::Done => {}
            FrameEnd::Died(status) => {
                self.child = None;
                return Err(IsolatedError::WorkerDied(status));
            }
            FrameEnd::TimedOut => {
                self.stop_worker()?;
                return Err(IsolatedError::Timeout(timeout));
            }
        }
        if control.outcome.load(std::sync::atomic::Ordering::SeqCst) == Outcome::Failed as u32 {
            return Err(IsolatedError::Frame(control.message()));
        }
        self.outputs_valid = true;
        Ok(())
    }

    /// Output `name` of the last frame.
    pub fn output(&self, name: &str) -> Result<&[f32], IsolatedError> {
        let index = position(&self.outputs, name)
            .ok_or_else(|| IsolatedError::UnknownOutput(name.to_owned()))?;
        self.output_at(index)
    }

    /// Output `index` of the last frame.
    pub fn output_at(&self, index: usize) -> Result<&[f32], IsolatedError> {
        let bytes = slot(&self.outputs, index)?.bytes.clone();
        if !self.outputs_valid {
            return Err(IsolatedError::NoOutputs);
        }
        Ok(f32s(&self.region.arena()[bytes]))
    }

    /// Stops the worker (if running) and starts a fresh one on the same region.
    pub fn restart(&mut self) -> Result<(), IsolatedError> {
        self.stop_worker()?;
        self.child = Some(self.start_worker()?);
        Ok(())
    }

    /// Kills the worker with `SIGKILL` and reaps it, as a crash would; the next
    /// [`IsolatedEngine::run`] restarts it. For fault-injection tests and supervisors.
    pub fn kill(&mut self) -> Result<(), IsolatedError> {
        self.stop_worker()
    }

    fn stop_worker(&mut self) -> Result<(), IsolatedError> {
        self.outputs_valid = false;
        if let Some(mut child) = self.child.take() {
            // Killing a worker that already exited fails harmlessly; reaping must not.
            let _ = child.kill();
            child.wait().map_err(IsolatedError::Process)?;
        }
        Ok(())
    }

    /// Spawns a worker on the region and waits until it is ready. The caller has
    /// stopped the previous one. Loading zeroes the arena, so the inputs already written
    /// are put aside and written back: a frame that restarts the worker still runs on
    /// the inputs its caller set.
    fn start_worker(&mut self) -> Result<Child, IsolatedError> {
        let mut at = 0;
        for slot in &self.inputs {
            let len = slot.bytes.len();
            self.saved_inputs[at..at + len]
                .copy_from_slice(&self.region.arena()[slot.bytes.clone()]);
            at += len;
        }
        let child = self.spawn_worker()?;
        let mut at = 0;
        for slot in &self.inputs {
            let len = slot.bytes.len();
            self.region.arena_mut()[slot.bytes.clone()]
                .copy_from_slice(&self.saved_inputs[at..at + len]);
            at += len;
        }
        Ok(child)
    }

    fn spawn_worker(&mut self) -> Result<Child, IsolatedError> {
        self.sequence = 0;
        let control = self.region.control();
        control.reset(self.region.arena_bytes(), self.options.spin);
        let mut child = Command::new(&self.worker_path)
            .arg(&self.package_path)
            .arg(self.region.path_for_worker())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|reason| IsolatedError::Spawn {
                path: self.worker_path.clone(),
                reason,
            })?;
        let started = Instant::now();
        let starting = WorkerState::Starting as u32;
        loop {
            match control.state() {
                WorkerState::Ready => break,
                WorkerState::LoadFailed => {
                    child.wait().map_err(IsolatedError::Process)?;
                    return Err(IsolatedError::WorkerLoad(control.message()));
                }
                WorkerState::Starting => {}
            }
            if let Some(status) = child.try_wait().map_err(IsolatedError::Process)? {
                return Err(if control.state() == WorkerState::LoadFailed {
                    IsolatedError::WorkerLoad(control.message())
                } else {
                    IsolatedError::WorkerExitedAtStartup(status)
                });
            }
            if started.elapsed() >= self.options.startup_timeout {
                let _ = child.kill();
                child.wait().map_err(IsolatedError::Process)?;
                return Err(IsolatedError::StartupTimeout(self.options.startup_timeout));
            }
            sleep_until_changed(
                &control.state,
                starting,
                &control.parent_sleeping.0,
                Some(LIVENESS_SLICE),
            );
        }
        Ok(child)
    }
}

impl Drop for IsolatedEngine {
    fn drop(&mut self) {
        // Nothing to report to: a worker that cannot be reaped is the OS's to clean up.
        let _ = self.stop_worker();
    }
}

/// How a wait for the worker's answer ended.
enum FrameEnd {
    /// The worker published `done`.
    Done,
    /// The worker process exited.
    Died(ExitStatus),
    /// The timeout passed first.
    TimedOut,
}

/// Waits until the worker publishes `done = sequence`, it dies, or `timeout` passes:
/// spins for `spin`, then sleeps on the futex in slices, checking the process in
/// between.
fn wait_done(
    control: &ControlBlock,
    child: &mut Child,
    sequence: u32,
    spin: Duration,
    timeout: Duration,
) -> std::io::Result<FrameEnd> {
    let started = Instant::now();
    let previous = sequence.wrapping_sub(1);
    if spin_until_changed(&control.done.0, previous, spin.min(timeout)) == Some(sequence) {
        return Ok(FrameEnd::Done);
    }
    loop {
        let slice = timeout
            .saturating_sub(started.elapsed())
            .min(LIVENESS_SLICE);
        let done = sleep_until_changed(
            &control.done.0,
            previous,
            &control.parent_sleeping.0,
            Some(slice),
        );
        if done == Some(sequence) {
            return Ok(FrameEnd::Done);
        }
        if let Some(status) = child.try_wait()? {
            return Ok(FrameEnd::Died(status));
        }
        if started.elapsed() >= timeout {
            return Ok(FrameEnd::TimedOut);
        }
    }
}

fn worker_path(options: &IsolatedOptions) -> Result<PathBuf, IsolatedError> {
    let path = match (&options.worker, std::env::var_os(WORKER_ENV)) {
        (Some(path), _) => path.clone(),
        (None, Some(path)) => PathBuf::from(path),
        (None, None) => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(WORKER_NAME)))
            .unwrap_or_else(|| PathBuf::from(WORKER_NAME)),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(IsolatedError::WorkerNotFound { path })
    }
}

fn position(slots: &[Slot], name: &str) -> Option<usize> {
    slots.iter().position(|s| s.name == name)
}

fn slot(slots: &[Slot], index: usize) -> Result<&Slot, IsolatedError> {
    slots.get(index).ok_or(IsolatedError::NoSuchTensor {
        index,
        count: slots.len(),
    })
}

// The arena is page-aligned and the validated plan puts every tensor on a 64-byte
// boundary with a whole number of f32s, so these views cannot fail.
fn f32s(bytes: &[u8]) -> &[f32] {
    <[f32]>::ref_from_bytes(bytes).expect("validated plan: tensors are aligned f32 arrays")
}

fn f32s_mut(bytes: &mut [u8]) -> &mut [f32] {
    <[f32]>::mut_from_bytes(bytes).expect("validated plan: tensors are aligned f32 arrays")
}
