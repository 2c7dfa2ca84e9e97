//! Cadence's hardware abstraction layer.
//!
//! - [`plan`] and [`op`]: the static execution plan the compiler emits and every
//!   backend executes, with the validation that makes it safe to run;
//! - [`scalar`]: `exp`, `floor`, `sigmoid` without `std`, one definition for the
//!   kernels and the models' post-processing;
//! - [`Accelerator`]: the trait a backend implements (two methods: `prepare` at load,
//!   `run` per frame; `run_timed` for per-layer profiles where a backend can);
//! - [`backends`]: the registry of backends ([`BackendKind`]: names, features, probes)
//!   and, with `std`, `AnyBackend`, one chosen at run time;
//! - [`Clock`]: the time source the scheduler reads;
//! - backends: [`cpu`] (portable kernels, `no_std`, allocation-free) and, with the
//!   `tract` feature, [`tract`] (runs the source ONNX, for comparison), and with the
//!   `cuda` feature, module `cuda` (the plan on an NVIDIA GPU, replayed as a CUDA graph).
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod accelerator;
pub mod backends;
pub mod clock;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod op;
pub mod plan;
pub mod scalar;
pub mod shape;
#[cfg(feature = "tract")]
pub mod tract;

pub use accelerator::{Accelerator, BackendError, StepTiming};
pub use backends::BackendKind;
#[cfg(feature = "embassy-time")]
pub use clock::EmbassyClock;
#[cfg(feature = "std")]
pub use clock::StdClock;
pub use clock::{Clock, SimClock};
pub use op::{Activation, Op, OpCode, OpError};
pub use plan::{DType, Plan, PlanError, StepRecord, Storage, TensorRecord};
pub use shape::{MAX_RANK, Shape};
