//! The [`Accelerator`] trait: what a backend implements to run Cadence plans.

use core::fmt;

use crate::clock::Clock;
use crate::plan::{Plan, PlanError};

/// Longest backend fault detail kept, in bytes; longer messages are cut.
pub const FAULT_DETAIL_LEN: usize = 64;

/// Why a backend could not prepare or run a plan.
#[derive(Clone, Debug, PartialEq)]
pub enum BackendError {
    /// The plan failed validation (see [`PlanError`]).
    Plan(PlanError),
    /// The backend cannot execute an op of the plan.
    UnsupportedOp {
        /// Backend name.
        backend: &'static str,
        /// Op name.
        op: &'static str,
    },
    /// The backend's driver or runtime library is not installed.
    NoDriver {
        /// Backend name.
        backend: &'static str,
    },
    /// The driver is there but no device is.
    NoDevice {
        /// Backend name.
        backend: &'static str,
    },
    /// The device ran out of memory while loading.
    OutOfMemory {
        /// Backend name.
        backend: &'static str,
        /// Bytes requested.
        requested: usize,
    },
    /// The backend failed while running a frame; the frame's outputs are not valid.
    Fault {
        /// Backend name.
        backend: &'static str,
        /// What the backend reported, cut to [`FAULT_DETAIL_LEN`] bytes.
        detail: heapless::String<FAULT_DETAIL_LEN>,
    },
    /// `run` was called before a successful `prepare`.
    NotPrepared {
        /// Backend name.
        backend: &'static str,
    },
}

impl BackendError {
    /// A [`BackendError::Fault`] from any message, cut to fit.
    pub fn fault(backend: &'static str, message: &dyn fmt::Display) -> Self {
        let mut detail = heapless::String::new();
        let mut sink = Truncating(&mut detail);
        let _ = fmt::write(&mut sink, format_args!("{message}"));
        Self::Fault { backend, detail }
    }
}

struct Truncating<'a>(&'a mut heapless::String<FAULT_DETAIL_LEN>);

impl fmt::Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

impl From<PlanError> for BackendError {
    fn from(e: PlanError) -> Self {
        Self::Plan(e)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plan(e) => write!(f, "invalid plan: {e}"),
            Self::UnsupportedOp { backend, op } => {
                write!(f, "backend `{backend}` cannot run op `{op}`")
            }
            Self::NoDriver { backend } => write!(
                f,
                "backend `{backend}`: no driver found; install it or pick another backend"
            ),
            Self::NoDevice { backend } => write!(f, "backend `{backend}`: no device found"),
            Self::OutOfMemory { backend, requested } => write!(
                f,
                "backend `{backend}`: out of device memory allocating {requested} bytes"
            ),
            Self::Fault { backend, detail } => write!(f, "backend `{backend}` failed: {detail}"),
            Self::NotPrepared { backend } => {
                write!(f, "backend `{backend}`: run called before prepare")
            }
        }
    }
}

/// What [`Accelerator::run_timed`] measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepTiming {
    /// `step_ns[i]` holds the nanoseconds step `i` took.
    PerStep,
    /// The backend runs the plan as one unit (a captured CUDA graph, tract's whole
    /// model), so its steps cannot be timed apart: the frame ran and `step_ns` holds
    /// zeroes. Time the whole call instead.
    WholeFrame,
}

/// A device that executes Cadence plans: the CPU, a GPU, an NPU.
///
/// The runtime's `Engine` owns one accelerator and drives it in two phases:
///
/// 1. **Load**: [`Accelerator::prepare`] is called once with a plan that has already
///    passed [`Plan::validate`]. This is the only place a backend may allocate (device
///    buffers, streams, compiled kernels, captured graphs).
/// 2. **Frames**: [`Accelerator::run`] (or [`Accelerator::run_timed`]) is called once
///    per frame with **the plan `prepare` saw**: same steps, tensors and weights, so a
///    backend may run what it built from it at load (a device backend replays the graph
///    it captured and does not read the plan again). The `Engine` keeps the plan it
///    prepared the backend with and is the only caller of `run`; a caller that drives
///    a backend itself must do the same, and call `prepare` again for another plan.
///    The caller has written the inputs into `arena` at their tensor offsets; when
///    `run` returns `Ok`, every output tensor's bytes in `arena` hold the result. `run`
///    must not allocate, must not block on anything but the device, and must leave the
///    backend ready for the next frame even when it returns an error.
///
/// Weights are read from `plan.weights` (for a device: uploaded once in `prepare`).
/// Activations live in `arena`; a device backend uses it as the host staging area for
/// inputs and outputs only.
///
/// A reference backend (tract, see [`crate::backends::BackendKind::is_reference`])
/// allocates per frame and so breaks the "`run` must not allocate" rule on purpose: it
/// is there to compare results and speed against, never to run a frame path with a
/// deadline.
///
/// The trait does not require `Send`, so a firmware backend may hold `!Send` handles.
/// A host scheduler worker owns its backend on its own thread, so everything a worker
/// runs needs `Accelerator + Send` (the host's `Pipeline` is a job runner only then);
/// every backend in this crate is `Send`.
///
/// # Example
///
/// A backend that only supports plans with no steps (useful as a skeleton):
///
/// ```
/// use cadence_hal::{Accelerator, BackendError, Plan};
///
/// struct Null;
///
/// impl Accelerator for Null {
///     fn name(&self) -> &'static str {
///         "null"
///     }
///     fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
///         match plan.steps.first() {
///             None => Ok(()),
///             Some(_) => Err(BackendError::UnsupportedOp { backend: "null", op: "any" }),
///         }
///     }
///     fn run(&mut self, _plan: &Plan<'_>, _arena: &mut [u8]) -> Result<(), BackendError> {
///         Ok(())
///     }
/// }
/// ```
pub trait Accelerator {
    /// Short backend name used in reports and errors (`cpu`, `tract`, `cuda`).
    fn name(&self) -> &'static str;

    /// Readies the backend for `plan`; see the trait docs.
    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError>;

    /// Runs one frame of `plan` over `arena`; see the trait docs.
    fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError>;

    /// Runs one frame like [`Accelerator::run`] (same outputs, bit for bit) and, where
    /// the backend can, writes into `step_ns[i]` the nanoseconds `clock` saw step `i`
    /// take: the per-layer profile. `step_ns` holds one entry per plan step. Like
    /// `run`, it must not allocate.
    ///
    /// The default runs the whole frame and reports [`StepTiming::WholeFrame`], so
    /// every backend can be profiled frame by frame; a backend that runs steps one by
    /// one overrides it.
    fn run_timed(
        &mut self,
        plan: &Plan<'_>,
        arena: &mut [u8],
        _clock: &dyn Clock,
        step_ns: &mut [u64],
    ) -> Result<StepTiming, BackendError> {
        step_ns.fill(0);
        self.run(plan, arena)?;
        Ok(StepTiming::WholeFrame)
    }
}

impl<A: Accelerator + ?Sized> Accelerator for &mut A {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        (**self).prepare(plan)
    }
    fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
        (**self).run(plan, arena)
    }
    fn run_timed(
        &mut self,
        plan: &Plan<'_>,
        arena: &mut [u8],
        clock: &dyn Clock,
        step_ns: &mut [u64],
    ) -> Result<StepTiming, BackendError> {
        (**self).run_timed(plan, arena, clock, step_ns)
    }
}
