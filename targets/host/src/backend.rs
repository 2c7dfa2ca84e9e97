//! The backend a scenario task names (`backend = "cpu"` or `"cuda"`, parsed into a
//! [`BackendKind`]), made for each of its packages.
//!
//! A `cuda` task runs its primary chain on the GPU; packages that only its `degrade`
//! fallback uses run on the CPU backend, so an overrunning GPU job degrades onto a
//! different device. The GPU is a non-preemptive accelerator with its own worker:
//! the scenario check refuses a `cuda` task on a preemptive accelerator or on one
//! shared with CPU tasks.

use cadence_hal::BackendKind;
use cadence_hal::backends::Unavailable;
#[cfg(feature = "cuda")]
use cadence_hal::{backends::AnyBackend, cpu::CpuBackend, cuda::CudaBackend};
#[cfg(feature = "cuda")]
use cadence_runtime::package::{AlignedBytes, Package};
use cadence_scheduler::host::JobRunner;

#[cfg(feature = "cuda")]
use crate::pipeline::{BackendFactory, load_pipeline_on};
use crate::pipeline::{PipelineError, RunnerSpec};

/// The backends a task may name: every one that is a frame path, not a reference
/// (tract allocates per frame), in report order.
pub fn task_backends() -> impl Iterator<Item = BackendKind> {
    BackendKind::ALL
        .into_iter()
        .filter(|kind| !kind.is_reference())
}

/// Why a task's backend cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BackendStartError {
    /// The backend is not built in, or its device is not usable (no driver, no NVRTC,
    /// no device).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The pipeline could not load on it.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Builds the job runner of a `cuda` task: probes the driver and device first (the
/// error a machine without CUDA gets at start), then loads the pipeline with the
/// primary chain on the GPU and fallback-only packages on the CPU.
pub fn load_cuda_runner(spec: &RunnerSpec) -> Result<Box<dyn JobRunner>, BackendStartError> {
    BackendKind::Cuda.probe()?;
    #[cfg(feature = "cuda")]
    {
        let factory = GpuWithCpuFallback::for_spec(spec)?;
        Ok(Box::new(load_pipeline_on(spec, &factory)?))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = spec;
        Err(BackendKind::Cuda.not_built().into())
    }
}

/// Makes an [`AnyBackend::Cuda`] for every package of the primary chain and an
/// [`AnyBackend::Cpu`] for packages only the fallback chain uses (matched by their
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
impl BackendFactory<AnyBackend> for GpuWithCpuFallback {
    fn backend(&self, package: &Package<'_>) -> Result<AnyBackend, String> {
        Ok(
            if self.cpu_only.contains(package.provenance().source_sha256()) {
                AnyBackend::Cpu(CpuBackend)
            } else {
                AnyBackend::Cuda(Box::new(CudaBackend::new(BackendKind::CUDA_DEVICE)))
            },
        )
    }
}
