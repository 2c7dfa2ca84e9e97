//! A Cortex-M7 firmware image that proves the `no_std` core runs on a microcontroller.
//! It embeds two compiled `.cpk` packages in flash, a camera ROI classifier and a lidar
//! BEV classifier, loads each with the runtime's `Engine` on the portable CPU backend
//! (arenas are `static`s sized from the packages at build time: no heap), and then,
//! by build:
//!
//! - default: runs both packages' self-test vectors, then the fixed-rate demo
//!   (`demo`: camera at 30 Hz, lidar at 10 Hz, released by `embassy-time` timers on
//!   SysTick, [`clock`]), logs each frame's timing and exits 0 over semihosting when
//!   everything passed, non-zero otherwise;
//! - feature `hil-dut`: runs the self-test vectors too, then serves the HIL wire protocol on
//!   UART0 as a device under test (`dut`), for ever.
//!
//! Built and run under QEMU (`-machine mps2-an500`) by `tools/firmware.sh`; the
//! packages come from `build.rs` (see there for the environment variables and the
//! `corrupt-package` feature).
#![no_std]
#![no_main]
// The runtime's errors carry names inline because there is no heap to box them into.
#![allow(clippy::result_large_err)]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use defmt::{Display2Format, error, info};
// Links the global logger: defmt frames go out over semihosting.
use defmt_semihosting as _;

use crate::clock::Clock;
use crate::pipelines::{Aligned, Pipelines};

mod clock;
#[cfg(not(feature = "hil-dut"))]
mod demo;
#[cfg(feature = "hil-dut")]
mod dut;
mod pipelines;
#[cfg(feature = "hil-dut")]
mod uart;

mod layout {
    include!(concat!(env!("OUT_DIR"), "/package_layout.rs"));
}

#[entry]
fn main() -> ! {
    // cortex-m-rt turns a `static mut` declared in the entry function into a
    // `&'static mut` to it: the arenas live in .bss, and safe code owns them.
    static mut ROI_ARENA: Aligned<[u8; layout::ROI_ARENA_BYTES]> =
        Aligned([0; layout::ROI_ARENA_BYTES]);
    static mut BEV_ARENA: Aligned<[u8; layout::BEV_ARENA_BYTES]> =
        Aligned([0; layout::BEV_ARENA_BYTES]);

    let Some(peripherals) = cortex_m::Peripherals::take() else {
        fail(format_args!("the core peripherals were already taken"));
    };
    let _clock = Clock::start(peripherals.SYST);
    let pipelines = match Pipelines::load(&mut ROI_ARENA.0, &mut BEV_ARENA.0) {
        Ok(pipelines) => pipelines,
        Err(error) => fail(format_args!("{error}")),
    };
    run(pipelines)
}

/// Runs both packages' test vectors; a failure ends the image.
fn selftest(pipelines: &mut Pipelines) {
    match pipelines.selftest() {
        Ok(true) => info!("self-test PASSED"),
        Ok(false) => fail(format_args!("self-test FAILED")),
        Err(error) => fail(format_args!("{error}")),
    }
}

/// Self-test, then the demo; exits with the verdict.
#[cfg(not(feature = "hil-dut"))]
fn run(mut pipelines: Pipelines) -> ! {
    selftest(&mut pipelines);
    match demo::run(&mut pipelines) {
        Ok(0) => info!("demo: every frame met its deadline"),
        // Timing under emulation says nothing about a real core: reported, not failed.
        Ok(late) => info!("demo: {} frames missed their deadline", late),
        Err(error) => fail(format_args!("demo: {error}")),
    }
    exit(debug::EXIT_SUCCESS)
}

/// Self-test, then serves the HIL rig on UART0.
#[cfg(feature = "hil-dut")]
fn run(mut pipelines: Pipelines) -> ! {
    selftest(&mut pipelines);
    // A `static` too (cortex-m-rt's `static mut` works in the entry function only, so
    // this one is handed out once by `singleton!`): 8 KiB that stay off the stack.
    let Some(decoder) = cortex_m::singleton!(: dut::RxDecoder = dut::RxDecoder::new()) else {
        fail(format_args!("the receive buffer was already taken"));
    };
    let Some(uart) = uart::Uart::take_uart0() else {
        fail(format_args!("UART0 was already taken"));
    };
    dut::Dut::new(pipelines, uart).serve(decoder)
}

/// Interrupts other than the core's own exceptions: only UART0's receive interrupt is
/// enabled (by the DUT); it only has to be acknowledged, since it exists to wake the
/// core from `wfi`.
#[cfg(feature = "hil-dut")]
#[cortex_m_rt::exception]
unsafe fn DefaultHandler(_irqn: i16) {
    uart::acknowledge_uart0_receive();
}

/// Logs `error` and exits non-zero.
fn fail(error: core::fmt::Arguments<'_>) -> ! {
    error!("{}", Display2Format(&error));
    exit(debug::EXIT_FAILURE)
}

/// Ends the emulation with `status`.
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    // Only reached when no debugger or emulator listens to semihosting.
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    error!("panic: {}", Display2Format(info));
    exit(debug::EXIT_FAILURE)
}
