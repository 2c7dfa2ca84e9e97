//! A Cortex-M7 firmware image that proves the `no_std` core runs on a microcontroller:
//! it embeds a compiled `.cpk` package in flash, loads it with the runtime's
//! [`Engine`] on the portable CPU backend, with its arena a `static` sized from the
//! package at build time (no heap), runs the package's self-test vectors, prints the
//! verdict over semihosting and exits 0 on a pass, non-zero otherwise. After a pass
//! it times a few frames in core clock cycles ([`cycles`]).
//!
//! Built and run under QEMU (`-machine mps2-an500`) by `tools/firmware.sh`; the
//! package comes from `build.rs` (see there for `CADENCE_FIRMWARE_PACKAGE` and the
//! `corrupt-package` feature).
#![no_std]
#![no_main]
// The runtime's errors carry names inline because there is no heap to box them into.
#![allow(clippy::result_large_err)]

use core::fmt;

use cadence_hal::cpu::CpuBackend;
use cadence_runtime::engine::SelftestReport;
use cadence_runtime::{Engine, EngineError, Package, PackageError};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

use crate::cycles::CycleCounter;

mod cycles;

mod layout {
    include!(concat!(env!("OUT_DIR"), "/package_layout.rs"));
}

/// Bytes stored from a 64-byte boundary: the alignment `Package::parse` requires of a
/// package (its sections are read in place as `f32`) and the engine of its arena.
#[repr(C, align(64))]
struct Aligned<Bytes: ?Sized>(Bytes);

/// The package, in flash, parsed in place.
static PACKAGE: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/package.cpk")));

/// Frames timed after the self-test passes (each reruns the last test case).
const TIMED_FRAMES: usize = 4;

/// Why the image could not run the self-test.
enum FirmwareError {
    /// The embedded package is damaged or from an unsupported format version.
    Package(PackageError),
    /// The engine refused the package or the arena, or a case could not run.
    Engine(EngineError),
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Package(e) => write!(f, "the embedded package is unusable: {e}"),
            Self::Engine(e) => write!(f, "the engine failed: {e}"),
        }
    }
}

#[entry]
fn main() -> ! {
    // cortex-m-rt turns a `static mut` declared in the entry function into a
    // `&'static mut` to it: the arena lives in .bss, and safe code owns it.
    static mut ARENA: Aligned<[u8; layout::ARENA_BYTES]> = Aligned([0; layout::ARENA_BYTES]);

    let status = match cortex_m::Peripherals::take() {
        None => {
            hprintln!("firmware: error: the core peripherals were already taken");
            debug::EXIT_FAILURE
        }
        Some(peripherals) => match run(&mut ARENA.0, &CycleCounter::start(peripherals.SYST)) {
            Ok(true) => {
                hprintln!("firmware: self-test PASSED");
                debug::EXIT_SUCCESS
            }
            Ok(false) => {
                hprintln!("firmware: self-test FAILED");
                debug::EXIT_FAILURE
            }
            Err(error) => {
                hprintln!("firmware: error: {}", error);
                debug::EXIT_FAILURE
            }
        },
    };
    debug::exit(status);
    // Only reached when no debugger or emulator listens to semihosting.
    loop {
        cortex_m::asm::wfi();
    }
}

/// Loads the embedded package into `arena`, runs its test vectors and, when they
/// pass, times [`TIMED_FRAMES`] frames. Returns whether the self-test passed.
fn run(arena: &'static mut [u8], counter: &CycleCounter) -> Result<bool, FirmwareError> {
    let package = Package::parse(&PACKAGE.0).map_err(FirmwareError::Package)?;
    hprintln!(
        "firmware: package {} ({} bytes, format {}.{}), arena {} bytes, {} test cases",
        package.provenance().source_name(),
        package.file_len(),
        package.format_version().0,
        package.format_version().1,
        arena.len(),
        package.test_vectors().len()
    );
    let mut engine = Engine::load(&package, CpuBackend, arena).map_err(FirmwareError::Engine)?;
    let report = engine.selftest().map_err(FirmwareError::Engine)?;
    print_report(&report);
    if report.passed() {
        time_frames(&mut engine, counter)?;
    }
    Ok(report.passed())
}

/// Runs [`TIMED_FRAMES`] frames on the inputs in the arena, printing each one's cycles.
fn time_frames(
    engine: &mut Engine<'_, '_, CpuBackend>,
    counter: &CycleCounter,
) -> Result<(), FirmwareError> {
    for frame in 0..TIMED_FRAMES {
        let start = counter.now();
        engine.run().map_err(FirmwareError::Engine)?;
        let cycles = counter.now() - start;
        hprintln!("firmware: frame {}: {} cycles", frame, cycles);
    }
    Ok(())
}

fn print_report(report: &SelftestReport<'_>) {
    for output in &report.outputs {
        hprintln!(
            "firmware: output {}: {} cases, max abs error {:e}, {} mismatches",
            output.name,
            report.cases,
            output.max_abs_error,
            output.mismatches
        );
        if let Some(first) = output.first_mismatch {
            hprintln!(
                "firmware:   first mismatch: case {} element {}: got {} expected {}",
                first.case,
                first.index,
                first.got,
                first.expected
            );
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("firmware: panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
