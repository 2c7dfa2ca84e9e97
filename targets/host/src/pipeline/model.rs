//! A compiled model bound to where it runs for the life of the process: in this process
//! on a backend, or in a `cadence-worker` process over shared memory
//! ([`Isolation::Process`]).
//!
//! The frame paths see one interface either way: write the input in place
//! ([`Model::input_mut`]), [`Model::run`], read the outputs in place
//! ([`Model::output_at`]). Out of process, "in place" is the shared arena the worker's
//! engine runs on, so pre- and post-processing stay in the scheduler's worker thread
//! and nothing is copied or serialised.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cadence_hal::Accelerator;
use cadence_isolated::{IsolatedEngine, IsolatedError, IsolatedOptions};
use cadence_runtime::engine::{Engine, EngineError};
use cadence_runtime::package::{AlignedBytes, IoSpec, ModelFamily, Package, Preprocess};

use super::{BackendFactory, FrameFault, Isolation, PipelineError, WorkerFault};

/// A named input or output and its dimensions, read from the package at load.
struct Port {
    name: String,
    dims: Vec<usize>,
}

impl Port {
    fn of(io: IoSpec<'_>) -> Self {
        Self {
            name: io.name().to_owned(),
            dims: io.shape().dims().to_vec(),
        }
    }
}

/// Where a model's frames run.
enum Execution<B> {
    /// An engine in this process, on backend `B`.
    InProcess(Engine<'static, 'static, B>),
    /// An engine in a worker process on the CPU backend.
    Isolated(IsolatedEngine),
}

/// One `.cpk` package loaded to run frames, in process on backend `B` or in a worker
/// process.
///
/// In process, the engine borrows the package bytes (weights are used in place) and its
/// arena for as long as it lives, and a job runner lives as long as the process runs
/// tasks. So both buffers are leaked once, at load, with `Box::leak`: the engine then
/// borrows `'static` data and the runner owns it outright, with no self-referential
/// struct and no `unsafe`. The cost is that dropping a runner does not return the
/// memory; runners are built once per process (a test binary builds a handful). Out of
/// process, nothing is leaked: the worker holds the package, the shared region the arena.
pub struct Model<B> {
    /// The file it came from, for error messages and reports.
    pub path: PathBuf,
    preprocess: Preprocess,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    execution: Execution<B>,
}

impl<B: Accelerator> Model<B> {
    /// Reads and parses `path` and checks that it declares `family`. Then, in process,
    /// makes its backend, leaks its bytes and a fresh arena and loads the engine (nothing
    /// is leaked when a check fails); out of process, starts a worker on it (the worker
    /// binary is found as [`IsolatedOptions::worker`] says; `backends` is not used: the
    /// worker runs Cadence's CPU kernels).
    pub fn load(
        path: &Path,
        family: ModelFamily,
        isolation: Isolation,
        backends: &impl BackendFactory<B>,
    ) -> Result<Self, PipelineError> {
        let bytes = AlignedBytes::read(path).map_err(|source| PipelineError::ReadPackage {
            path: path.to_owned(),
            source,
        })?;
        let parsed =
            Package::parse(bytes.as_slice()).map_err(|source| PipelineError::BadPackage {
                path: path.to_owned(),
                source,
            })?;
        let found = parsed.metadata().family();
        if found != family {
            return Err(PipelineError::WrongFamily {
                path: path.to_owned(),
                expected: family.name(),
                found: found.name(),
            });
        }
        let preprocess = parsed.metadata().preprocess();
        let inputs = parsed.inputs().map(Port::of).collect();
        let outputs = parsed.outputs().map(Port::of).collect();
        let execution = match isolation {
            Isolation::None => {
                let backend =
                    backends
                        .backend(&parsed)
                        .map_err(|reason| PipelineError::Backend {
                            path: path.to_owned(),
                            reason,
                        })?;
                Execution::InProcess(load_in_process(path, bytes, backend)?)
            }
            Isolation::Process => Execution::Isolated(
                IsolatedEngine::spawn(path, IsolatedOptions::default()).map_err(|source| {
                    PipelineError::Worker {
                        path: path.to_owned(),
                        source: Box::new(source),
                    }
                })?,
            ),
        };
        Ok(Self {
            path: path.to_owned(),
            preprocess,
            inputs,
            outputs,
            execution,
        })
    }

    /// The pre-processing the package declares.
    pub fn preprocess(&self) -> Preprocess {
        self.preprocess
    }

    /// Index of input `name`, or the error naming the package and what it lacks.
    pub fn input(&self, name: &str) -> Result<usize, PipelineError> {
        position(&self.inputs, name)
            .ok_or_else(|| self.mismatch(format!("it has no input `{name}`")))
    }

    /// Index of output `name`, or the error naming the package and what it lacks.
    pub fn output(&self, name: &str) -> Result<usize, PipelineError> {
        position(&self.outputs, name)
            .ok_or_else(|| self.mismatch(format!("it has no output `{name}`")))
    }

    /// Dimensions of input `index`.
    pub fn input_dims(&self, index: usize) -> &[usize] {
        self.inputs.get(index).map_or(&[], |p| &p.dims)
    }

    /// Dimensions of output `index`.
    pub fn output_dims(&self, index: usize) -> &[usize] {
        self.outputs.get(index).map_or(&[], |p| &p.dims)
    }

    /// A [`PipelineError::Interface`] about this package.
    pub fn mismatch(&self, reason: String) -> PipelineError {
        PipelineError::Interface {
            path: self.path.clone(),
            reason,
        }
    }

    /// Input `index`'s elements, to write in place before [`Model::run`].
    #[expect(
        clippy::result_large_err,
        reason = "see FrameFault: boxing would allocate per frame"
    )]
    pub fn input_mut(&mut self, index: usize) -> Result<&mut [f32], FrameFault> {
        match &mut self.execution {
            Execution::InProcess(engine) => Ok(engine.input_mut(index)?),
            Execution::Isolated(engine) => engine.input_mut(index).map_err(|e| match e {
                IsolatedError::NoSuchTensor { index, count } => {
                    FrameFault::Engine(EngineError::NoSuchInput { index, count })
                }
                other => worker_fault(other),
            }),
        }
    }

    /// Runs one frame. Out of process, a worker that has not answered after `timeout`
    /// is killed and the frame fails; a worker that died since the last frame is
    /// restarted first (which allocates: it is recovery, not the frame path). In
    /// process, `timeout` is not used: a frame cannot be cut short in its own thread.
    #[expect(
        clippy::result_large_err,
        reason = "see FrameFault: boxing would allocate per frame"
    )]
    pub fn run(&mut self, timeout: Duration) -> Result<(), FrameFault> {
        match &mut self.execution {
            Execution::InProcess(engine) => Ok(engine.run()?),
            Execution::Isolated(engine) => engine.run(timeout).map_err(worker_fault),
        }
    }

    /// Output `index` of the last completed frame.
    #[expect(
        clippy::result_large_err,
        reason = "see FrameFault: boxing would allocate per frame"
    )]
    pub fn output_at(&self, index: usize) -> Result<&[f32], FrameFault> {
        match &self.execution {
            Execution::InProcess(engine) => Ok(engine.output_at(index)?),
            Execution::Isolated(engine) => engine.output_at(index).map_err(|e| match e {
                IsolatedError::NoSuchTensor { index, count } => {
                    FrameFault::Engine(EngineError::NoSuchOutput { index, count })
                }
                IsolatedError::NoOutputs => FrameFault::Engine(EngineError::NoOutputs),
                other => worker_fault(other),
            }),
        }
    }

    /// The worker process's id, while one runs (out of process only).
    pub fn worker_pid(&self) -> Option<u32> {
        match &self.execution {
            Execution::InProcess(_) => None,
            Execution::Isolated(engine) => engine.pid(),
        }
    }
}

/// Leaks `path`'s `bytes` and a fresh arena, and loads the engine on `backend`.
fn load_in_process<B: Accelerator>(
    path: &Path,
    bytes: AlignedBytes,
    backend: B,
) -> Result<Engine<'static, 'static, B>, PipelineError> {
    let bytes: &'static AlignedBytes = Box::leak(Box::new(bytes));
    let package = Package::parse(bytes.as_slice()).map_err(|source| PipelineError::BadPackage {
        path: path.to_owned(),
        source,
    })?;
    let arena = Box::leak(Box::new(AlignedBytes::zeroed(package.arena_bytes())));
    Engine::load(&package, backend, arena.as_mut_slice()).map_err(|source| PipelineError::Engine {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

fn position(ports: &[Port], name: &str) -> Option<usize> {
    ports.iter().position(|p| p.name == name)
}

/// The frame fault for a worker's error. Only a worker that could not be restarted or
/// checked on formats its error (an allocation on the recovery path).
fn worker_fault(e: IsolatedError) -> FrameFault {
    FrameFault::Worker(match e {
        IsolatedError::WorkerDied(status) => WorkerFault::Died(status),
        IsolatedError::Timeout(timeout) => WorkerFault::Timeout(timeout),
        IsolatedError::Frame(message) => WorkerFault::Refused(message),
        other => WorkerFault::Unavailable(other.to_string()),
    })
}
