//! A cycle counter on SysTick, the one timer every Cortex-M core has.
//!
//! SysTick counts the core clock down from a 24-bit reload value; its exception counts
//! the wraps, so the count extends to 64 bits. (The DWT cycle counter is optional on
//! Cortex-M and QEMU's boards are not relied on to model it.) Under QEMU's `-icount`
//! SysTick advances with the instructions executed, so the counts are the same on
//! every run; they measure QEMU's model of the core clock, not a real M7's pipeline.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;

/// The largest SysTick reload value (the counter is 24 bits wide).
const RELOAD: u32 = 0x00FF_FFFF;

/// Times the counter has wrapped since [`CycleCounter::start`].
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Core clock cycles since [`CycleCounter::start`]; owns SysTick while it lives.
pub struct CycleCounter {
    _syst: SYST,
}

impl CycleCounter {
    /// Starts SysTick on the core clock, counting from zero.
    pub fn start(mut syst: SYST) -> Self {
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        WRAPS.store(0, Ordering::Relaxed);
        syst.enable_interrupt();
        syst.enable_counter();
        Self { _syst: syst }
    }

    /// Cycles counted so far.
    pub fn now(&self) -> u64 {
        loop {
            let wraps = WRAPS.load(Ordering::Relaxed);
            let current = SYST::get_current();
            // A wrap between the two reads pends the exception, which runs before the
            // second load: a count read across a wrap is read again.
            if WRAPS.load(Ordering::Relaxed) == wraps {
                return u64::from(wraps) * (u64::from(RELOAD) + 1) + u64::from(RELOAD - current);
            }
        }
    }
}
