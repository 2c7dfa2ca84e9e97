//! Making the backend a command names for a package. Which backends exist, which are
//! built and how each is checked is `cadence_hal::backends`' registry; this adds what
//! only a package can give: tract's source ONNX and its bindings.

use anyhow::{Result, anyhow};
use cadence_hal::BackendKind;
use cadence_hal::backends::AnyBackend;
use cadence_hal::cpu::CpuBackend;
#[cfg(feature = "cuda")]
use cadence_hal::cuda::CudaBackend;
#[cfg(feature = "tract")]
use cadence_hal::tract::{Binding, TractBackend};
use cadence_runtime::package::{AlignedBytes, Package};

/// Creates backend `kind` for `pkg`; `None` when the package cannot use it (tract needs
/// the source ONNX embedded). The backend is probed first, so a missing one is
/// reported with its detailed reason (no driver, no NVRTC, no device, not built) and
/// what to do, not just the engine's "no driver".
pub fn create(
    kind: BackendKind,
    #[cfg_attr(
        not(feature = "tract"),
        expect(unused_variables, reason = "only the tract backend reads the package")
    )]
    pkg: &Package<'_>,
) -> Result<Option<AnyBackend>> {
    let unavailable = |reason: &dyn std::fmt::Display| anyhow!("backend `{kind}`: {reason}");
    kind.probe().map_err(|e| unavailable(&e))?;
    Ok(match kind {
        BackendKind::Cpu => Some(AnyBackend::Cpu(CpuBackend)),
        #[cfg(feature = "tract")]
        BackendKind::Tract => pkg.source_onnx().map(|onnx| {
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
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Some(AnyBackend::Cuda(Box::new(CudaBackend::new(
            BackendKind::CUDA_DEVICE,
        )))),
        // Built into the hal by another crate's features, but not into this command.
        #[cfg(not(all(feature = "tract", feature = "cuda")))]
        missing => return Err(unavailable(&missing.not_built())),
    })
}

/// A zeroed, aligned arena of the package's size.
pub fn arena_for(pkg: &Package<'_>) -> AlignedBytes {
    AlignedBytes::zeroed(pkg.arena_bytes())
}
