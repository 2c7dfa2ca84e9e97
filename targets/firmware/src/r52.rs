//! The Cortex-R52 image (QEMU `-machine mps3-an536`): loads both packages, runs their
//! self-test vectors, then the Cortex-M7's fixed-rate demo (`demo`) with its
//! `embassy-time` driver on the generic timer (`generic_timer`), and exits over
//! semihosting with the verdict. It has no DUT mode: serving UART0 as the Cortex-M7 does
//! needs a UART driver and the GIC for its receive interrupt.

use core::sync::atomic::{AtomicBool, Ordering};

use defmt::{Display2Format, error, info};

use crate::demo;
use crate::generic_timer::Clock;
use crate::layout;
use crate::pipelines::{Aligned, Pipelines};

static mut ROI_ARENA: Aligned<[u8; layout::ROI_ARENA_BYTES]> =
    Aligned([0; layout::ROI_ARENA_BYTES]);
static mut BEV_ARENA: Aligned<[u8; layout::BEV_ARENA_BYTES]> =
    Aligned([0; layout::BEV_ARENA_BYTES]);
/// Whether the arenas were handed out.
static ARENAS_TAKEN: AtomicBool = AtomicBool::new(false);

/// The arenas, once; `None` after.
fn take_arenas() -> Option<(&'static mut [u8], &'static mut [u8])> {
    if ARENAS_TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    let roi = (&raw mut ROI_ARENA).cast::<u8>();
    let bev = (&raw mut BEV_ARENA).cast::<u8>();
    // SAFETY: `Aligned` is `repr(C)` around the byte array, so each pointer is the
    // start of a static array of that many bytes, valid for the whole program; the flag
    // above hands them out once, so these are the only references to them.
    unsafe {
        Some((
            core::slice::from_raw_parts_mut(roi, layout::ROI_ARENA_BYTES),
            core::slice::from_raw_parts_mut(bev, layout::BEV_ARENA_BYTES),
        ))
    }
}

#[aarch32_rt::entry]
fn main() -> ! {
    let clock = match Clock::start() {
        Ok(clock) => clock,
        Err(error) => fail(format_args!("{error}")),
    };
    let Some((roi_arena, bev_arena)) = take_arenas() else {
        fail(format_args!("the arenas were already taken"));
    };
    let mut pipelines = match Pipelines::load(roi_arena, bev_arena) {
        Ok(pipelines) => pipelines,
        Err(error) => fail(format_args!("{error}")),
    };
    match pipelines.selftest() {
        Ok(true) => info!("self-test PASSED"),
        Ok(false) => fail(format_args!("self-test FAILED")),
        Err(error) => fail(format_args!("{error}")),
    }
    if let Err(error) = demo::run(&mut pipelines, &clock) {
        fail(format_args!("demo: {error}"));
    }
    semihosting::process::exit(0)
}

/// Logs `error` and exits non-zero.
fn fail(error: core::fmt::Arguments<'_>) -> ! {
    error!("{}", Display2Format(&error));
    semihosting::process::exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    error!("panic: {}", Display2Format(info));
    semihosting::process::exit(1)
}
