//! The host target: the whole pipeline — recorded sensor frames, pre-processing, the
//! static engines, post-processing — run as scheduler tasks on a Linux host.
//!
//! [`pipeline`] turns a task's packages and recorded sensor data into a scheduler job
//! runner. `examples/bench_scenario.rs` measures dispatch latency and jitter of the
//! camera and lidar pipelines under the host driver against a plain loop on the CPU
//! backend and on tract. [`npy`] reads `.npy` tensors (the `cadence` command's inputs).
//! [`dut`] serves the same camera and lidar frame paths to the HIL rig over the wire
//! protocol (the `cadence-dut` binary).
#![forbid(unsafe_code)]

pub mod backend;
pub mod dut;
pub mod npy;
pub mod pipeline;
pub mod scenario;
