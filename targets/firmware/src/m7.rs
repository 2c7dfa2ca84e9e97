//! The Cortex-M7 image's start-up (cortex-m-rt), its two modes and its exit.

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use defmt::{Display2Format, error, info};

use crate::clock::Clock;
#[cfg(not(feature = "hil-dut"))]
use crate::demo;
use crate::layout;
use crate::pipelines::{Aligned, Pipelines};
#[cfg(feature = "hil-dut")]
use crate::{dut, uart};

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
    let clock = Clock::start(peripherals.SYST);
    let pipelines = match Pipelines::load(&mut ROI_ARENA.0, &mut BEV_ARENA.0) {
        Ok(pipelines) => pipelines,
        Err(error) => fail(format_args!("{error}")),
    };
    run(pipelines, clock)
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
fn run(mut pipelines: Pipelines, clock: Clock) -> ! {
    selftest(&mut pipelines);
    if let Err(error) = demo::run(&mut pipelines, &clock) {
        fail(format_args!("demo: {error}"));
    }
    exit(debug::EXIT_SUCCESS)
}

/// Self-test, then serves the HIL rig on UART0 (the clock counts on; the DUT reads
/// [`crate::clock::cycles`]).
#[cfg(feature = "hil-dut")]
fn run(mut pipelines: Pipelines, _clock: Clock) -> ! {
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
