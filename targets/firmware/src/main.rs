//! A Cortex-M7 firmware image that proves the `no_std` core runs on a microcontroller.
//! It embeds two compiled `.cpk` packages in flash, a camera ROI classifier and a lidar
//! BEV classifier, loads each with the runtime's `Engine` on the portable CPU backend
//! (arenas are `static`s sized from the packages at build time: no heap), and then,
//! by build:
//!
//! - default: runs both packages' self-test vectors, then the fixed-rate demo
//!   (`demo`: camera at 30 Hz, lidar at 10 Hz, released by `embassy-time` timers on
//!   SysTick, `clock`), logs each frame's timing and exits 0 over semihosting when
//!   everything passed, non-zero otherwise;
//! - feature `hil-dut`: runs the self-test vectors too, then serves the HIL wire protocol on
//!   UART0 as a device under test (`dut`), for ever.
//!
//! The Cortex-R52 build (`--target armv8r-none-eabihf`, QEMU ≥ 8 `-machine mps3-an536`)
//! runs the self-test and the same demo, its `embassy-time` driver on the generic timer
//! (`r52`, `generic_timer`); the DUT is the Cortex-M7's alone.
//!
//! Built and run under QEMU (`-machine mps2-an500`) by `tools/firmware.sh`; the
//! packages come from `build.rs` (see there for the environment variables and the
//! `corrupt-package` feature).
#![no_std]
#![no_main]
// The runtime's errors carry names inline because there is no heap to box them into.
#![allow(clippy::result_large_err)]

// Links the global logger: defmt frames go out over semihosting.
use defmt_semihosting as _;

#[cfg(board = "mps2_an500")]
mod clock;
#[cfg(any(board = "mps3_an536", not(feature = "hil-dut")))]
mod demo;
#[cfg(all(board = "mps2_an500", feature = "hil-dut"))]
mod dut;
#[cfg(board = "mps3_an536")]
mod generic_timer;
#[cfg(board = "mps2_an500")]
mod m7;
mod pipelines;
#[cfg(board = "mps3_an536")]
mod r52;
#[cfg(all(board = "mps2_an500", feature = "hil-dut"))]
mod uart;

mod layout {
    include!(concat!(env!("OUT_DIR"), "/package_layout.rs"));
}
