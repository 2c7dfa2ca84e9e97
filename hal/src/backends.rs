//! The registry of backends: each one's name, the cargo feature that builds it, whether
//! it needs a device found at run time, how that is checked, and what a user is told
//! when it is missing. The `cadence` command, the scenario checker and the host
//! binary all choose backends through [`BackendKind`], so a backend is added, renamed
//! or described in this one place.
//!
//! With `std`, [`AnyBackend`] is a backend chosen at run time: one of the built ones,
//! behind one [`Accelerator`](crate::Accelerator).

use core::fmt;
use core::str::FromStr;

/// A backend Cadence knows, built into this binary or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Cadence's portable kernels: always built, needs no device.
    #[default]
    Cpu,
    /// tract on the package's source ONNX (feature `tract`): a reference to compare
    /// against, never a frame path (it allocates per frame).
    Tract,
    /// The plan on an NVIDIA GPU (feature `cuda`), found at run time.
    Cuda,
}

impl BackendKind {
    /// Every backend, in the order reports list them.
    pub const ALL: [Self; 3] = [Self::Cpu, Self::Tract, Self::Cuda];

    /// The CUDA device a `cuda` backend runs on.
    pub const CUDA_DEVICE: usize = 0;

    /// Its name in options, scenario files, reports and errors.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Tract => "tract",
            Self::Cuda => "cuda",
        }
    }

    /// The cargo feature that builds it (`None`: always built).
    pub const fn feature(self) -> Option<&'static str> {
        match self {
            Self::Cpu => None,
            Self::Tract => Some("tract"),
            Self::Cuda => Some("cuda"),
        }
    }

    /// Whether this binary has it.
    pub const fn is_built(self) -> bool {
        match self {
            Self::Cpu => true,
            Self::Tract => cfg!(feature = "tract"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Whether it needs a device that may be missing at run time (checked by
    /// [`BackendKind::probe`]). Such a backend runs only when asked for by name, so a
    /// default run works on any machine.
    pub const fn needs_device(self) -> bool {
        matches!(self, Self::Cuda)
    }

    /// Whether it is a reference to compare against rather than a frame path: it
    /// allocates per frame, so a task with a deadline must not run on it.
    pub const fn is_reference(self) -> bool {
        matches!(self, Self::Tract)
    }

    /// The built backends that need no device, in report order: what runs when no
    /// backend is named.
    pub fn defaults() -> impl Iterator<Item = Self> {
        Self::ALL
            .into_iter()
            .filter(|kind| kind.is_built() && !kind.needs_device())
    }

    /// The error for a binary without it: the feature to rebuild with. A crate whose
    /// own feature forwards to this crate's returns it when that feature is off.
    #[cfg(feature = "std")]
    pub fn not_built(self) -> Unavailable {
        Unavailable::NotBuilt {
            feature: self.feature().unwrap_or_default(),
        }
    }

    /// Checks that it can run here: built in, and for a device backend, its driver
    /// and device present. The detailed reason beats the one a failed load gives.
    #[cfg(feature = "std")]
    pub fn probe(self) -> Result<(), Unavailable> {
        if !self.is_built() {
            return Err(self.not_built());
        }
        #[cfg(feature = "cuda")]
        if self == Self::Cuda {
            crate::cuda::probe(Self::CUDA_DEVICE)?;
        }
        Ok(())
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no backend's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBackend;

impl fmt::Display for UnknownBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown backend (the backends are: ")?;
        for (i, kind) in BackendKind::ALL.iter().enumerate() {
            let separator = if i == 0 { "" } else { ", " };
            write!(f, "{separator}{kind}")?;
        }
        f.write_str(")")
    }
}

impl core::error::Error for UnknownBackend {}

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(name: &str) -> Result<Self, UnknownBackend> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or(UnknownBackend)
    }
}

/// Why a backend cannot run on this machine. The message is the reason and the fix;
/// the caller names the backend.
#[cfg(feature = "std")]
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Unavailable {
    /// The binary was built without it.
    #[error(
        "not built into this binary, which has no `{feature}` feature; rebuild with `--features {feature}`"
    )]
    NotBuilt {
        /// The feature that builds it.
        feature: &'static str,
    },
    /// The GPU is not usable (no driver, no NVRTC, no device).
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Cuda(#[from] crate::cuda::CudaError),
}

#[cfg(feature = "std")]
pub use any::AnyBackend;

#[cfg(feature = "std")]
mod any {
    use super::BackendKind;
    use crate::accelerator::{Accelerator, BackendError, StepTiming};
    use crate::clock::Clock;
    use crate::cpu::CpuBackend;
    #[cfg(feature = "cuda")]
    use crate::cuda::CudaBackend;
    use crate::plan::Plan;
    #[cfg(feature = "tract")]
    use crate::tract::TractBackend;

    /// A backend chosen at run time, one variant per built [`BackendKind`].
    pub enum AnyBackend {
        /// Cadence's own kernels.
        Cpu(CpuBackend),
        /// tract on the package's source ONNX.
        #[cfg(feature = "tract")]
        Tract(Box<TractBackend>),
        /// The GPU.
        #[cfg(feature = "cuda")]
        Cuda(Box<CudaBackend>),
    }

    /// Calls `$call` on whichever backend `$self` holds.
    macro_rules! forward {
        ($self:expr, $backend:ident => $call:expr) => {
            match $self {
                AnyBackend::Cpu($backend) => $call,
                #[cfg(feature = "tract")]
                AnyBackend::Tract($backend) => $call,
                #[cfg(feature = "cuda")]
                AnyBackend::Cuda($backend) => $call,
            }
        };
    }

    impl AnyBackend {
        /// Which backend it is.
        pub fn kind(&self) -> BackendKind {
            match self {
                Self::Cpu(_) => BackendKind::Cpu,
                #[cfg(feature = "tract")]
                Self::Tract(_) => BackendKind::Tract,
                #[cfg(feature = "cuda")]
                Self::Cuda(_) => BackendKind::Cuda,
            }
        }
    }

    impl core::fmt::Debug for AnyBackend {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_tuple("AnyBackend").field(&self.kind()).finish()
        }
    }

    impl Accelerator for AnyBackend {
        fn name(&self) -> &'static str {
            forward!(self, backend => backend.name())
        }

        fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
            forward!(self, backend => backend.prepare(plan))
        }

        fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
            forward!(self, backend => backend.run(plan, arena))
        }

        fn run_timed(
            &mut self,
            plan: &Plan<'_>,
            arena: &mut [u8],
            clock: &dyn Clock,
            step_ns: &mut [u64],
        ) -> Result<StepTiming, BackendError> {
            forward!(self, backend => backend.run_timed(plan, arena, clock, step_ns))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_backend() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.name().parse(), Ok(kind));
            assert_eq!(std::format!("{kind}"), kind.name());
        }
        let unknown = "npu".parse::<BackendKind>().unwrap_err();
        assert_eq!(
            std::format!("{unknown}"),
            "unknown backend (the backends are: cpu, tract, cuda)"
        );
    }

    #[test]
    fn the_defaults_are_built_and_need_no_device() {
        let defaults: std::vec::Vec<_> = BackendKind::defaults().collect();
        assert_eq!(defaults[0], BackendKind::Cpu);
        assert!(!defaults.contains(&BackendKind::Cuda));
        assert_eq!(
            defaults.contains(&BackendKind::Tract),
            cfg!(feature = "tract")
        );
    }

    /// A scheduler worker owns its backend on its own thread.
    #[cfg(feature = "std")]
    #[test]
    fn any_backend_can_move_to_a_worker_thread() {
        fn is_send<T: Send>() {}
        is_send::<AnyBackend>();
    }

    #[cfg(feature = "std")]
    #[test]
    fn a_backend_not_built_names_the_feature_to_rebuild_with() {
        assert_eq!(BackendKind::Cpu.probe(), Ok(()));
        if !BackendKind::Tract.is_built() {
            let message = BackendKind::Tract.probe().unwrap_err().to_string();
            assert!(
                message.contains("no `tract` feature") && message.contains("--features tract"),
                "{message}"
            );
        }
    }
}
