//! The [`Accelerator`] trait: what a backend implements to run Cadence plans.

use core::fmt;

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

/// A device that executes Cadence plans: the CPU, a GPU, an NPU.
///
/// The runtime's `Engine` owns one accelerator and drives it in two phases:
///
/// 1. **Load**: [`Accelerator::prepare`] is called once with a plan that has already
///    passed [`Plan::validate`]. This is the only place a backend may allocate (device
///    buffers, streams, compiled kernels, captured graphs).
/// 2. **Frames**: [`Accelerator::run`] is called once per frame. The caller has written
///    the inputs into `arena` at their tensor offsets; when `run` returns `Ok`, every
///    output tensor's bytes in `arena` hold the result. `run` must not allocate, must
///    not block on anything but the device, and must leave the backend ready for the
///    next frame even when it returns an error.
///
/// Weights are read from `plan.weights` (for a device: uploaded once in `prepare`).
/// Activations live in `arena`; a device backend uses it as the host staging area for
/// inputs and outputs only.
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
}
