//! The image's one clock: SysTick, the timer every Cortex-M core has, counting core
//! clock cycles, and the `embassy-time` driver built on it.
//!
//! SysTick counts the core clock down from [`RELOAD`], one millisecond of cycles; its
//! exception counts the wraps, so the count extends to 64 bits, and wakes the timers
//! that have expired. `embassy-time` sees microsecond ticks (the driver's
//! `tick-hz-1_000_000`), so a timer fires within a millisecond of its deadline and
//! [`cycles`] stays exact. (The DWT cycle counter is optional on Cortex-M and QEMU's
//! boards are not relied on to model it.)
//!
//! Under QEMU's `-icount` SysTick advances with the instructions executed, so counts are
//! the same on every run; they measure QEMU's model of the core clock, not a real M7's
//! pipeline.

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::Waker;

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;

#[cfg(not(feature = "hil-dut"))]
use crate::demo::FrameClock;

/// The core clock of QEMU's MPS2 boards (their `SYSCLK`), in Hz.
pub const CORE_CLOCK_HZ: u64 = 25_000_000;

/// Cycles per SysTick period: one millisecond, the alarm resolution.
const PERIOD: u32 = (CORE_CLOCK_HZ / 1_000) as u32;
/// SysTick's reload value (it counts `RELOAD..=0`, `PERIOD` cycles).
const RELOAD: u32 = PERIOD - 1;

const _: () = assert!(RELOAD <= 0x00FF_FFFF, "SysTick is 24 bits wide");
const _: () = assert!(
    CORE_CLOCK_HZ.is_multiple_of(TICK_HZ),
    "ticks must be whole cycles"
);
const _: () = assert!(
    1_000_000_000u64.is_multiple_of(CORE_CLOCK_HZ),
    "cycles must be whole ns"
);

/// Periods elapsed since [`Clock::start`].
static PERIODS: AtomicU32 = AtomicU32::new(0);

/// The `embassy-time` driver: time from [`cycles`], wake-ups from the SysTick exception.
struct SysTickDriver {
    /// Timers waiting to fire, in a fixed-capacity queue.
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        cycles() / (CORE_CLOCK_HZ / TICK_HZ)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            // The alarm is the next SysTick exception, which looks at the queue every
            // period; the queue's own next expiry needs no hardware compare register.
            self.queue.borrow(cs).borrow_mut().schedule_wake(at, waker);
        });
    }
}

#[exception]
fn SysTick() {
    PERIODS.fetch_add(1, Ordering::Relaxed);
    let now = DRIVER.now();
    critical_section::with(|cs| {
        DRIVER.queue.borrow(cs).borrow_mut().next_expiration(now);
    });
}

/// Owns SysTick while it counts.
pub struct Clock {
    _syst: SYST,
}

impl Clock {
    /// Starts SysTick on the core clock, counting from zero.
    pub fn start(mut syst: SYST) -> Self {
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        PERIODS.store(0, Ordering::Relaxed);
        syst.enable_interrupt();
        syst.enable_counter();
        Self { _syst: syst }
    }
}

/// The demo times frames in core cycles and sleeps until the next SysTick exception,
/// every millisecond, which fires the timers that expired.
#[cfg(not(feature = "hil-dut"))]
impl FrameClock for Clock {
    const UNIT: &'static str = "cycles";

    fn count(&self) -> u64 {
        cycles()
    }

    fn count_to_ns(&self, count: u64) -> u64 {
        cycles_to_ns(count)
    }

    fn wait_for_alarm(&self) {
        cortex_m::asm::wfi();
    }
}

/// Core clock cycles since [`Clock::start`].
pub fn cycles() -> u64 {
    loop {
        let periods = PERIODS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        // A wrap between the two reads pends the exception, which runs before the
        // second load: a count read across a wrap is read again.
        if PERIODS.load(Ordering::Relaxed) == periods {
            return u64::from(periods) * u64::from(PERIOD) + u64::from(RELOAD - current);
        }
    }
}

/// Nanoseconds in `cycles` core clock cycles.
pub fn cycles_to_ns(cycles: u64) -> u64 {
    cycles * (1_000_000_000 / CORE_CLOCK_HZ)
}
