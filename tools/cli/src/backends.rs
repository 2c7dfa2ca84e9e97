//! The backends this build of `cadence` can run a package on.

use anyhow::Result;
use cadence_hal::cpu::CpuBackend;
#[cfg(feature = "cuda")]
use cadence_hal::cuda::CudaBackend;
#[cfg(feature = "tract")]
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
    #[cfg(feature = "tract")]
    Tract(Box<TractBackend>),
}

impl Accelerator for AnyBackend {
    fn name(&self) -> &'static str {
        match self {
            Self::Cpu(b) => b.name(),
            #[cfg(feature = "cuda")]
            Self::Cuda(b) => b.name(),
            #[cfg(feature = "tract")]
            Self::Tract(b) => b.name(),
        }
    }
    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        match self {
            Self::Cpu(b) => b.prepare(plan),
            #[cfg(feature = "cuda")]
            Self::Cuda(b) => b.prepare(plan),
            #[cfg(feature = "tract")]
            Self::Tract(b) => b.prepare(plan),
        }
    }
    fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
        match self {
            Self::Cpu(b) => b.run(plan, arena),
            #[cfg(feature = "cuda")]
            Self::Cuda(b) => b.run(plan, arena),
            #[cfg(feature = "tract")]
            Self::Tract(b) => b.run(plan, arena),
        }
    }
}

/// Names of the backends built in, in the order reports list them.
#[cfg(feature = "tract")]
pub const BUILT_IN: [&str; 2] = ["cpu", "tract"];
/// Names of the backends built in, in the order reports list them.
#[cfg(not(feature = "tract"))]
pub const BUILT_IN: [&str; 1] = ["cpu"];

/// Creates backend `name` for `pkg`; `None` when the package cannot use it (tract needs
/// the source ONNX embedded).
pub fn create(
    name: &str,
    #[cfg_attr(
        not(feature = "tract"),
        expect(unused_variables, reason = "only the tract backend reads the package")
    )]
    pkg: &Package<'_>,
) -> Result<Option<AnyBackend>> {
    Ok(match name {
        "cpu" => Some(AnyBackend::Cpu(CpuBackend)),
        #[cfg(not(feature = "tract"))]
        "tract" => anyhow::bail!(
            "backend `tract`: {}",
            crate::commands::without_tract::MISSING_FEATURE
        ),
        #[cfg(feature = "tract")]
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
