//! Cadence model families: specs, pre- and post-processing.
#![no_std]
