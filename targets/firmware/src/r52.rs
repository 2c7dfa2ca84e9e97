//! The Cortex-R52 image (QEMU `-machine mps3-an536`): loads both packages, runs their
//! self-test vectors, times a few frames of each pipeline on the generic timer and
//! exits over semihosting with the verdict. It has no fixed-rate demo and no DUT mode:
//! those need an interrupt controller driver (the GIC) the Cortex-M7 image does not.

use core::sync::atomic::{AtomicBool, Ordering};

use aarch32_cpu::generic_timer::read_physical_timer;
use aarch32_cpu::register::Cntfrq;
use cadence_models::camera::RgbFrame;
use cadence_models::mcu::{ROI_CHANNELS, ROI_SIDE};
use defmt::{Display2Format, error, info};

use crate::layout;
use crate::pipelines::{Aligned, Pipelines};

/// Frames of each pipeline timed after the self-test.
const TIMED_FRAMES: u32 = 4;
/// Points in a timed lidar sweep.
const SWEEP_POINTS: usize = 256;

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
    let hz = u64::from(Cntfrq::read().0);
    for frame in 0..TIMED_FRAMES {
        let pixels: [u8; ROI_SIDE * ROI_SIDE * ROI_CHANNELS] =
            core::array::from_fn(|i| (i as u32 * 7 + frame * 11) as u8);
        let crop = RgbFrame {
            width: ROI_SIDE,
            height: ROI_SIDE,
            pixels: &pixels,
        };
        let start = read_physical_timer();
        if let Err(error) = pipelines.camera(&crop) {
            fail(format_args!("camera frame {frame}: {error}"));
        }
        let ticks = read_physical_timer() - start;
        info!(
            "camera frame {}: {} timer ticks ({} us)",
            frame,
            ticks,
            ticks * 1_000_000 / hz
        );
        let points = (0..SWEEP_POINTS).map(|i| {
            [
                1.0 + (i % 16) as f32 * 1.9,
                -15.0 + (i / 16) as f32 * 1.9,
                ((i * 37 + frame as usize) % 50) as f32 * 0.1 - 2.5,
                (i % 100) as f32,
            ]
        });
        let start = read_physical_timer();
        if let Err(error) = pipelines.lidar(points) {
            fail(format_args!("lidar frame {frame}: {error}"));
        }
        let ticks = read_physical_timer() - start;
        info!(
            "lidar frame {}: {} timer ticks ({} us)",
            frame,
            ticks,
            ticks * 1_000_000 / hz
        );
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
