//! The backends this build of `cadence` can run a package on.

use anyhow::Result;
use cadence_hal::cpu::CpuBackend;
#[cfg(feature = "cuda")]
use cadence_hal::cuda::CudaBackend;
use cadence_hal::tract::{Binding, TractBackend};
use cadence_hal::{Accelerator, BackendError, Plan};
use cadence_runtime::package::{AlignedBytes, Package};

/// A backend chosen at run time.
pub enum AnyBackend {
    /// Cadence's own kernels.
    Cpu(CpuBackend),
    /// The GPU (feature `cuda`), only when asked for by name: `--backend cuda`.
    #[cfg(feature = "cuda")]
    Cuda(Box<CudaBackend>),
    /// tract on the package's source ONNX.
    Tract(Box<TractBackend>),
}

impl Accelerator for AnyBackend {
    fn name(&self) -> &'static str {
        match self {
            Self::Cpu(b) => b.name(),
            #[cfg(feature = "cuda")]
            Self::Cuda(b) => b.name(),
            Self::Tract(b) => b.name(),
        }
    }
    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        match self {
            Self::Cpu(b) => b.prepare(plan),
            #[cfg(feature = "cuda")]
            Self::Cuda(b) => b.prepare(plan),
            Self::Tract(b) => b.prepare(plan),
        }
    }
    fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
        match self {
            Self::Cpu(b) => b.run(plan, arena),
            #[cfg(feature = "cuda")]
            Self::Cuda(b) => b.run(plan, arena),
            Self::Tract(b) => b.run(plan, arena),
        }
    }
}

/// Names of the backends built in, in the order reports list them.
pub const BUILT_IN: [&str; 2] = ["cpu", "tract"];

/// Creates backend `name` for `pkg`; `None` when the package cannot use it (tract needs
/// the source ONNX embedded).
pub fn create(name: &str, pkg: &Package<'_>) -> Result<Option<AnyBackend>> {
    Ok(match name {
        "cpu" => Some(AnyBackend::Cpu(CpuBackend)),
        "tract" => pkg.source_onnx().map(|onnx| {
            let inputs = pkg
                .inputs()
                .map(|io| Binding {
                    tensor: io.tensor_index(),
                    shape: io.shape().dims().to_vec(),
                })
                .collect();
            let outputs = pkg.outputs().map(|io| io.tensor_index()).collect();
            AnyBackend::Tract(Box::new(TractBackend::new(onnx, inputs, outputs)))
        }),
        // Checked here, before the engine loads, so the user sees the detailed reason
        // (no driver, no NVRTC, no device) and what to do, not just "no driver".
        #[cfg(feature = "cuda")]
        "cuda" => {
            cadence_hal::cuda::probe(0).map_err(|e| anyhow::anyhow!("backend `cuda`: {e}"))?;
            Some(AnyBackend::Cuda(Box::new(CudaBackend::new(0))))
        }
        #[cfg(not(feature = "cuda"))]
        "cuda" => anyhow::bail!(
            "backend `cuda` is not built into this `cadence`; rebuild with `cargo build --release -p cadence-cli --features cuda`"
        ),
        other => anyhow::bail!(
            "unknown backend `{other}` (built in: {})",
            BUILT_IN.join(", ")
        ),
    })
}

/// A zeroed, aligned arena of the package's size.
pub fn arena_for(pkg: &Package<'_>) -> AlignedBytes {
    AlignedBytes::zeroed(pkg.arena_bytes())
}
