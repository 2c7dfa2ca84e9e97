//! Out-of-process execution (host only): a package runs in a worker process connected
//! by shared memory, so a crash in one model cannot take down the others.
//!
//! [`IsolatedEngine::spawn`] reads the package, creates a shared region (a control
//! block page, then the package's arena) and starts `cadence-worker` on it; the worker
//! loads the package into its own [`Engine`](cadence_runtime::Engine) on the CPU
//! backend, using the region as its arena. A frame is then the same as in-process:
//! write inputs in place ([`IsolatedEngine::input_mut`]), [`IsolatedEngine::run`],
//! read outputs in place ([`IsolatedEngine::output`]). Nothing is copied or
//! serialised: the hand-over is two sequence numbers in shared atomics and a futex wake
//! (optionally a spin first) on each side ([`protocol`]).
//!
//! If the worker crashes, aborts or is killed mid-frame, that frame ends with
//! [`IsolatedError::WorkerDied`]; if it hangs, the frame ends with
//! [`IsolatedError::Timeout`] and the worker is killed. The next `run` respawns it and
//! reloads the package.
//!
//! ```no_run
//! use std::time::Duration;
//! use cadence_isolated::{IsolatedEngine, IsolatedOptions};
//!
//! let mut engine = IsolatedEngine::spawn("models/camera/camera_det.cpk", IsolatedOptions::default())?;
//! engine.input_mut(0)?.fill(0.5);
//! engine.run(Duration::from_millis(100))?;
//! let boxes = engine.output("boxes")?;
//! # Ok::<(), cadence_isolated::IsolatedError>(())
//! ```

// Frame errors carry the worker's message inline so that a failed frame does not
// allocate (contract 1); the copy happens on the error path only.
#![allow(clippy::result_large_err)]

pub mod engine;
pub mod error;
pub mod protocol;
mod shared;
pub mod worker;

pub use engine::{IsolatedEngine, IsolatedOptions, WORKER_ENV, WORKER_NAME};
pub use error::{IsolatedError, PackageFileError, WorkerError};
pub use protocol::{MESSAGE_CAPACITY, WorkerMessage};
