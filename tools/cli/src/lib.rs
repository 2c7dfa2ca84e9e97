//! The library half of `cadence`: what other crates and the integration tests share
//! with the binary. Today that is the deadline profiler's report, which the package
//! profiler (`cadence profile`) and the scenario runner both fill.

#![forbid(unsafe_code)]

pub mod report;
