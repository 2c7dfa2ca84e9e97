//! Cadence scheduler: task sets, schedulability analysis, the static table and the cyclic executive.
#![no_std]
