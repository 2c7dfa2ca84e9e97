//! The Cadence runtime: everything between a compiled model file and a frame's results.
//!
//! - [`package`]: the `.cpk` format, parsed in place with every checksum and offset
//!   checked, and (host only) written by `package::builder` (feature `std`);
//! - [`engine`]: binds a package, a HAL backend and a caller-owned static arena, and
//!   runs frames without touching the heap;
//! - [`stats`]: fixed-memory latency histograms and per-task frame statistics;
//! - [`wire`]: the HIL wire protocol, framed messages over a byte stream.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
// Errors carry names and backend details inline because there is no heap to box them
// into (contract 1); the copy happens on the error path only.
#![allow(clippy::result_large_err)]

pub mod engine;
pub mod package;
pub mod stats;
pub mod wire;

pub use engine::{Engine, EngineError, TensorView};
pub use package::{Package, PackageError};
pub use stats::{Histogram, TaskStats};
