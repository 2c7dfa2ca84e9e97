//! The backend a scenario task names (`backend = "cpu"` or `"cuda"`), made for each
//! of its packages.
//!
//! A `cuda` task runs its primary chain on the GPU; packages that only its `degrade`
//! fallback uses run on the CPU backend, so an overrunning GPU job degrades onto a
//! different device. The GPU is a non-preemptive accelerator with its own worker:
//! the scenario check refuses a `cuda` task on a preemptive accelerator or on one
//! shared with CPU tasks.

use cadence_hal::cpu::CpuBackend;
#[cfg(feature = "cuda")]
use cadence_hal::cuda::CudaBackend;
use cadence_hal::{Accelerator, BackendError, Plan};
#[cfg(feature = "cuda")]
use cadence_runtime::package::{AlignedBytes, Package};
use cadence_scheduler::host::JobRunner;

#[cfg(feature = "cuda")]
use crate::pipeline::{BackendFactory, load_pipeline_on};
use crate::pipeline::{PipelineError, RunnerSpec};

/// The backend names a task may give; the first is the default.
pub const BACKENDS: &[&str] = &["cpu", "cuda"];

/// A package's backend in a mixed pipeline.
#[derive(Debug)]
pub enum HostBackend {
    /// Cadence's CPU kernels.
    Cpu(CpuBackend),
    /// The GPU.
    #[cfg(feature = "cuda")]
    Cuda(Box<CudaBackend>),
}

impl Accelerator for HostBackend {
    fn name(&self) -> &'static str {
        match self {
            Self::Cpu(b) => b.name(),
            #[cfg(feature = "cuda")]
            Self::Cuda(b) => b.name(),
        }
    }

    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        match self {
            Self::Cpu(b) => b.prepare(plan),
            #[cfg(feature = "cuda")]
            Self::Cuda(b) => b.prepare(plan),
        }
    }

    fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
        match self {
            Self::Cpu(b) => b.run(plan, arena),
            #[cfg(feature = "cuda")]
            Self::Cuda(b) => b.run(plan, arena),
        }
    }
}

/// Why a task's backend cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BackendStartError {
    /// The binary was built without the backend.
    #[error("backend `{0}` is not built into this binary; rebuild with `--features {0}`")]
    NotBuilt(&'static str),
    /// The GPU is not usable (no driver, no NVRTC, no device).
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Cuda(#[from] cadence_hal::cuda::CudaError),
    /// The pipeline could not load on it.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Builds the job runner of a `cuda` task: checks the driver and device first (the
/// error a machine without CUDA gets at start), then loads the pipeline with the
/// primary chain on the GPU and fallback-only packages on the CPU.
pub fn load_cuda_runner(spec: &RunnerSpec) -> Result<Box<dyn JobRunner>, BackendStartError> {
    #[cfg(feature = "cuda")]
    {
        cadence_hal::cuda::probe(0)?;
        let factory = GpuWithCpuFallback::for_spec(spec)?;
        Ok(Box::new(load_pipeline_on(spec, &factory)?))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = spec;
        Err(BackendStartError::NotBuilt("cuda"))
    }
}

/// Makes a [`HostBackend::Cuda`] for every package of the primary chain and a
/// [`HostBackend::Cpu`] for packages only the fallback chain uses (matched by their
/// source's SHA-256).
#[cfg(feature = "cuda")]
struct GpuWithCpuFallback {
    cpu_only: Vec<[u8; 32]>,
}

#[cfg(feature = "cuda")]
impl GpuWithCpuFallback {
    fn for_spec(spec: &RunnerSpec) -> Result<Self, PipelineError> {
        let source = |path: &std::path::PathBuf| -> Result<[u8; 32], PipelineError> {
            let bytes = AlignedBytes::read(path).map_err(|source| PipelineError::ReadPackage {
                path: path.clone(),
                source,
            })?;
            let package =
                Package::parse(bytes.as_slice()).map_err(|source| PipelineError::BadPackage {
                    path: path.clone(),
                    source,
                })?;
            Ok(*package.provenance().source_sha256())
        };
        let primary = spec
            .packages
            .iter()
            .map(source)
            .collect::<Result<Vec<_>, _>>()?;
        let mut cpu_only = Vec::new();
        for path in &spec.fallback {
            let sha = source(path)?;
            if !primary.contains(&sha) {
                cpu_only.push(sha);
            }
        }
        Ok(Self { cpu_only })
    }
}

#[cfg(feature = "cuda")]
impl BackendFactory<HostBackend> for GpuWithCpuFallback {
    fn backend(&self, package: &Package<'_>) -> Result<HostBackend, String> {
        Ok(
            if self.cpu_only.contains(package.provenance().source_sha256()) {
                HostBackend::Cpu(CpuBackend)
            } else {
                HostBackend::Cuda(Box::new(CudaBackend::new(0)))
            },
        )
    }
}
