//! Why an isolated engine could not start, or a frame did not complete.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use cadence_hal::{DType, PlanError};
use cadence_runtime::package::{AlignedBytes, Package};
use cadence_runtime::{EngineError, PackageError};

use crate::protocol::WorkerMessage;

/// Why a package file could not be loaded: the parent and the worker both read it.
#[derive(Debug, thiserror::Error)]
pub enum PackageFileError {
    /// The file could not be read.
    #[error("cannot read package `{path}`: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: io::Error,
    },
    /// The file does not parse.
    #[error("`{path}` is not a valid package: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: PackageError,
    },
}

impl PackageFileError {
    /// Reads the package at `path` into an aligned buffer.
    pub fn read(path: &Path) -> Result<AlignedBytes, Self> {
        AlignedBytes::read(path).map_err(|reason| Self::Read {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses `bytes`, read from `path`.
    pub fn parse<'a>(path: &Path, bytes: &'a AlignedBytes) -> Result<Package<'a>, Self> {
        Package::parse(bytes.as_slice()).map_err(|reason| Self::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }
}

/// Why [`IsolatedEngine`](crate::IsolatedEngine) refused to start or a frame failed.
/// Frame errors ([`WorkerDied`](Self::WorkerDied), [`Timeout`](Self::Timeout),
/// [`Frame`](Self::Frame)) carry no heap data, so reporting them does not allocate.
#[derive(Debug, thiserror::Error)]
pub enum IsolatedError {
    /// The package file cannot be read or does not parse.
    #[error(transparent)]
    Package(#[from] PackageFileError),
    /// The package's plan does not validate.
    #[error("`{path}` has an invalid plan: {reason}; recompile the model")]
    InvalidPlan {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: PlanError,
    },
    /// An input or output is not `f32`, the only element type passed across.
    #[error("`{name}` holds {dtype} elements; out-of-process execution passes f32 tensors only")]
    UnsupportedDType {
        /// The input or output.
        name: String,
        /// Its element type.
        dtype: DType,
    },
    /// The worker binary is not where it was looked for.
    #[error(
        "no worker binary at `{path}`; build it with `cargo build --release -p cadence-isolated`, or name it with CADENCE_WORKER or IsolatedOptions::worker"
    )]
    WorkerNotFound {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The shared-memory region could not be created or mapped.
    #[error("cannot create the shared memory region: {0}")]
    SharedMemory(io::Error),
    /// The worker process could not be started.
    #[error("cannot start the worker `{path}`: {reason}")]
    Spawn {
        /// The worker binary.
        path: PathBuf,
        /// The OS error.
        reason: io::Error,
    },
    /// The worker started but could not load the package.
    #[error("the worker could not load the package: {0}")]
    WorkerLoad(WorkerMessage),
    /// The worker exited before it was ready.
    #[error("the worker exited while starting ({0}); its standard error says why")]
    WorkerExitedAtStartup(ExitStatus),
    /// The worker was not ready in time.
    #[error("the worker was not ready within {0:?}; it was killed")]
    StartupTimeout(Duration),
    /// The worker process died during the frame. The next run restarts it.
    #[error("the worker died during the frame ({0}); the next run restarts it")]
    WorkerDied(ExitStatus),
    /// The frame did not finish in time. The worker was killed; the next run restarts it.
    #[error(
        "the frame did not finish within {0:?}; the worker was killed and the next run restarts it"
    )]
    Timeout(Duration),
    /// The worker's engine refused or failed the frame (a NaN input, a backend fault).
    /// The worker stays up.
    #[error("the frame failed in the worker: {0}")]
    Frame(WorkerMessage),
    /// Checking on or stopping the worker process failed.
    #[error("cannot check on the worker process: {0}")]
    Process(io::Error),
    /// No input has this name.
    #[error("the model has no input named `{0}`; `cadence inspect` lists its inputs")]
    UnknownInput(String),
    /// No output has this name.
    #[error("the model has no output named `{0}`; `cadence inspect` lists its outputs")]
    UnknownOutput(String),
    /// An input or output index past the last one.
    #[error("index {index} is out of range: the model has {count}")]
    NoSuchTensor {
        /// The index asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// An input was given with the wrong number of elements.
    #[error("input `{name}` takes {expected} elements, but {got} were given")]
    InputLength {
        /// The input.
        name: String,
        /// Elements its shape has.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// Outputs were read, but no frame has completed since the inputs last changed.
    #[error("no outputs to read: the last frame failed, or the inputs changed since the last run")]
    NoOutputs,
}

/// Why a worker process stopped before serving frames. It reports this on standard
/// error and, when it got as far as mapping the region, in the control block.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Wrong command line.
    #[error("usage: cadence-worker PACKAGE SHARED_REGION (started by IsolatedEngine, not by hand)")]
    Usage,
    /// The shared region could not be opened or mapped.
    #[error("cannot map the shared region `{path}`: {reason}")]
    Region {
        /// The region's path.
        path: PathBuf,
        /// The OS error.
        reason: io::Error,
    },
    /// The region was not prepared by a parent of this protocol version.
    #[error("the shared region was not prepared by a matching IsolatedEngine")]
    Protocol,
    /// The package file cannot be read or does not parse.
    #[error(transparent)]
    Package(#[from] PackageFileError),
    /// The package's arena is not the one the parent sized the region for (the file
    /// changed between the parent's read and the worker's).
    #[error(
        "the package needs a {package}-byte arena but the parent prepared {region} bytes; did the file change?"
    )]
    ArenaMismatch {
        /// Arena bytes the package needs.
        package: usize,
        /// Arena bytes in the region.
        region: usize,
    },
    /// The engine refused the package.
    #[error("cannot load the package: {0}")]
    Engine(EngineError),
}
