//! The host target: the whole pipeline — recorded sensor frames, pre-processing, the
//! static engines, post-processing — run as scheduler tasks on a Linux host.
#![forbid(unsafe_code)]

pub mod pipeline;
pub mod scenario;
