//! The CUDA backend (feature `cuda`): the same plan the CPU backend runs, on an
//! NVIDIA GPU.
//!
//! At [`Accelerator::prepare`] it checks for the driver and NVRTC (loaded at run time,
//! so this builds and tests anywhere), opens the device, compiles one kernel per op
//! from the CUDA C in this folder (`kernels.cu`, the CPU kernels' semantics), allocates
//! a device arena that mirrors the host arena byte for byte, uploads the weights once,
//! allocates a pinned host staging buffer, and captures one frame in a CUDA graph:
//! copy the input spans in, every step's kernel, copy the output spans out (see
//! [`transfer`]). [`Accelerator::run`] is then: host copy into staging, one graph
//! launch, wait, host copy back. Nothing is allocated per frame.
//!
//! Modules: [`launch`] maps steps to kernels and grids, [`transfer`] plans the bus
//! traffic, [`source`] assembles the CUDA C, [`preprocess`] is the host side of the
//! camera and lidar pre-processing kernels; all of it is tested without a GPU. Only
//! `device` needs one.
//!
//! Errors: no driver, no NVRTC, no device, out of device memory at load, and launch or
//! replay failures are distinct [`CudaError`]s with advice; through the [`Accelerator`]
//! trait they arrive as the matching [`BackendError`], and [`CudaBackend::last_error`]
//! keeps the detailed one.

mod device;
mod error;
pub mod launch;
pub mod preprocess;
pub mod source;
pub mod transfer;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::driver::CudaStream;

pub use device::{DeviceInfo, probe};
pub use error::{CudaError, NAME};

use crate::accelerator::{Accelerator, BackendError};
use crate::plan::Plan;
use device::Device;
use preprocess::PreprocessKernels;
use transfer::TransferPlan;

/// The CUDA backend. Create it with [`CudaBackend::new`] (cheap, touches no library)
/// and hand it to the engine, whose load calls [`Accelerator::prepare`].
///
/// Not `Sync`: a CUDA graph must not be launched from two threads at once, so each
/// worker owns its backend.
pub struct CudaBackend {
    ordinal: usize,
    device: Option<Device>,
    last_error: Option<CudaError>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("ordinal", &self.ordinal)
            .field("loaded", &self.device.is_some())
            .field("last_error", &self.last_error)
            .finish()
    }
}

impl CudaBackend {
    /// A backend for device `ordinal` (0 is the first GPU CUDA_VISIBLE_DEVICES shows).
    pub fn new(ordinal: usize) -> Self {
        Self {
            ordinal,
            device: None,
            last_error: None,
        }
    }

    /// Loads `plan` onto device `ordinal`: what `prepare` does, with the detailed error.
    pub fn load(plan: &Plan<'_>, ordinal: usize) -> Result<Self, CudaError> {
        let mut backend = Self::new(ordinal);
        backend.device = Some(load_device(plan, ordinal)?);
        Ok(backend)
    }

    /// The detailed error behind the last failed `prepare` or `run`.
    pub fn last_error(&self) -> Option<&CudaError> {
        self.last_error.as_ref()
    }

    /// The bytes each frame copies in and out, once loaded.
    pub fn transfers(&self) -> Option<&TransferPlan> {
        self.device.as_ref().map(Device::transfers)
    }

    /// Kernel launches in the captured frame graph, once loaded.
    pub fn launches(&self) -> Option<usize> {
        self.device.as_ref().map(Device::launches)
    }

    /// Device memory held for the plan (arena and weights), once loaded.
    pub fn device_bytes(&self) -> Option<usize> {
        self.device.as_ref().map(Device::device_bytes)
    }

    /// The backend's stream and the pre-processing kernels compiled with the plan's,
    /// once loaded: enqueue pre-processing there and it runs before the next frame's
    /// graph, in stream order.
    pub fn preprocess(&self) -> Option<(&Arc<CudaStream>, &PreprocessKernels)> {
        self.device.as_ref().map(|d| (d.stream(), d.preprocess()))
    }

    fn record(&mut self, result: Result<(), CudaError>) -> Result<(), BackendError> {
        result.map_err(|error| {
            let converted = BackendError::from(&error);
            self.last_error = Some(error);
            converted
        })
    }
}

/// [`Device::load`], with a panic inside cudarc (a symbol missing from an old driver)
/// turned into an error instead of unwinding through the engine.
fn load_device(plan: &Plan<'_>, ordinal: usize) -> Result<Device, CudaError> {
    catch_unwind(AssertUnwindSafe(|| Device::load(plan, ordinal))).unwrap_or_else(|panic| {
        let detail = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Err(CudaError::Driver {
            call: "loading the CUDA libraries",
            detail,
        })
    })
}

impl Accelerator for CudaBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        self.device = None;
        let loaded = load_device(plan, self.ordinal).map(|device| self.device = Some(device));
        self.record(loaded)
    }

    fn run(&mut self, _plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
        let result = match self.device.as_mut() {
            Some(device) => device.run_frame(arena),
            None => Err(CudaError::NotLoaded),
        };
        self.record(result)
    }
}
