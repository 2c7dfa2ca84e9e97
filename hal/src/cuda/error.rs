//! What can go wrong loading or running the CUDA backend, each with what to do about it.

use cudarc::driver::DriverError;
use cudarc::driver::sys::CUresult;

use super::launch::LaunchPlanError;
use crate::accelerator::BackendError;

/// Backend name in reports.
pub const NAME: &str = crate::backends::BackendKind::Cuda.name();

/// Why the CUDA backend could not load a plan or run a frame.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CudaError {
    /// `libcuda` could not be loaded: no NVIDIA driver on this machine.
    #[error(
        "no CUDA driver: libcuda.so could not be loaded; install the NVIDIA driver (check with `nvidia-smi`), put its directory on LD_LIBRARY_PATH, or run with `--backend cpu`"
    )]
    NoDriver,
    /// `libnvrtc` could not be loaded: the kernels cannot be compiled.
    #[error(
        "no NVRTC: libnvrtc.so (CUDA 13) could not be loaded, so the kernels cannot be compiled; install the CUDA toolkit's NVRTC library (or the `nvidia-cuda-nvrtc` wheel), put it on LD_LIBRARY_PATH, or run with `--backend cpu`"
    )]
    NoNvrtc,
    /// The driver reports no device at the requested ordinal.
    #[error(
        "no CUDA device {ordinal}: the driver reports {count} device(s); check `nvidia-smi` and CUDA_VISIBLE_DEVICES, or run with `--backend cpu`"
    )]
    NoDevice {
        /// Ordinal asked for.
        ordinal: usize,
        /// Devices the driver sees.
        count: usize,
    },
    /// A device allocation at load failed for lack of memory.
    #[error(
        "out of device memory allocating {bytes} bytes for {what}; free the GPU (see `nvidia-smi`) or load fewer models on it"
    )]
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// Bytes requested.
        bytes: usize,
    },
    /// NVRTC refused the kernel source (a bug in Cadence: report it with the log).
    #[error("NVRTC could not compile Cadence's kernels (please report this): {log}")]
    Compile {
        /// The compiler's log or error.
        log: String,
    },
    /// The plan cannot be mapped onto the kernels.
    #[error(transparent)]
    Plan(#[from] LaunchPlanError),
    /// Enqueuing one step's kernel failed while the frame graph was captured.
    #[error("step {step} ({kernel}): kernel launch failed: {detail}")]
    Launch {
        /// Index of the plan step.
        step: usize,
        /// Kernel entry point.
        kernel: &'static str,
        /// The driver's error.
        detail: String,
    },
    /// Replaying the frame failed on the device; the outputs are not valid.
    #[error(
        "frame failed on the GPU during {phase}: {detail}; a sticky error (illegal address, launch failure) leaves the CUDA context unusable: reload the backend or let the `degrade` policy fall back to cpu"
    )]
    Frame {
        /// What the backend was doing.
        phase: &'static str,
        /// The driver's error.
        detail: String,
    },
    /// Another driver call failed.
    #[error("{call} failed: {detail}")]
    Driver {
        /// What the backend was doing.
        call: &'static str,
        /// The driver's error.
        detail: String,
    },
    /// `run` came before a successful `prepare`.
    #[error("the CUDA backend has no plan loaded: call prepare (Engine::load) first")]
    NotLoaded,
}

impl CudaError {
    /// A [`CudaError::Driver`] from a driver call's error.
    pub fn driver(call: &'static str, error: DriverError) -> Self {
        Self::Driver {
            call,
            detail: error.to_string(),
        }
    }

    /// A failed allocation of `bytes` for `what`: [`CudaError::OutOfMemory`] when the
    /// driver says so, else [`CudaError::Driver`].
    pub fn from_alloc(what: &'static str, bytes: usize) -> impl Fn(DriverError) -> Self {
        move |error| {
            if error.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                Self::OutOfMemory { what, bytes }
            } else {
                Self::driver(what, error)
            }
        }
    }

    /// A failed frame-time call.
    pub fn frame(phase: &'static str, error: DriverError) -> Self {
        Self::Frame {
            phase,
            detail: error.to_string(),
        }
    }
}

impl From<&CudaError> for BackendError {
    fn from(error: &CudaError) -> Self {
        match error {
            CudaError::NoDriver | CudaError::NoNvrtc => Self::NoDriver { backend: NAME },
            CudaError::NoDevice { .. } => Self::NoDevice { backend: NAME },
            CudaError::OutOfMemory { bytes, .. } => Self::OutOfMemory {
                backend: NAME,
                requested: *bytes,
            },
            CudaError::Plan(LaunchPlanError::Plan(e)) => Self::Plan(*e),
            CudaError::NotLoaded => Self::NotPrepared { backend: NAME },
            other => Self::fault(NAME, other),
        }
    }
}

impl std::error::Error for LaunchPlanError {}
