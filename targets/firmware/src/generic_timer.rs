//! The Cortex-R52 image's clock: the Arm generic timer's physical counter (`CNTPCT`,
//! 64 bits, counting at `CNTFRQ`) and the `embassy-time` driver built on it.
//!
//! The driver has no interrupt. The timer's compare (`CNTP_CVAL`) would raise a PPI,
//! but it reaches the core only through the GIC, and the image has no GIC driver (nor
//! any other use for one). So the alarm is polled: the driver's `now()` reads the
//! counter, `schedule_wake` queues the waker, and the executor's wait
//! ([`FrameClock::wait_for_alarm`]) wakes the queued timers that have expired and
//! returns for the next poll. A timer fires within one pass of the executor's loop of
//! its deadline, and the core spins, never sleeping, while it waits: the price of no
//! interrupt. Under QEMU's `-icount` the spin runs instructions that advance virtual
//! time, so the wait ends at the same count on every run.
//!
//! `embassy-time` sees microsecond ticks (`tick-hz-1_000_000`, as on the Cortex-M7);
//! `CNTFRQ` is read once, at [`Clock::start`], and ticks are converted exactly from it.

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::Waker;

use aarch32_cpu::generic_timer::read_physical_timer;
use aarch32_cpu::register::Cntfrq;
use critical_section::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;

use crate::demo::FrameClock;

/// `CNTFRQ` as read by [`Clock::start`]; zero before.
static COUNTER_HZ: AtomicU32 = AtomicU32::new(0);

/// Why the generic timer cannot be the image's clock.
pub enum ClockError {
    /// `CNTFRQ` reads zero: the boot code (or the emulator) never set the frequency.
    FrequencyUnset,
}

impl core::fmt::Display for ClockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClockError::FrequencyUnset => f.write_str(
                "the generic timer's frequency (CNTFRQ) is zero: it must be set at EL2 \
                 before the image starts",
            ),
        }
    }
}

/// The `embassy-time` driver: time from the physical counter, wake-ups polled by
/// [`FrameClock::wait_for_alarm`].
struct GenericTimerDriver {
    /// Timers waiting to fire, in a fixed-capacity queue.
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: GenericTimerDriver = GenericTimerDriver {
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for GenericTimerDriver {
    fn now(&self) -> u64 {
        let hz = u64::from(COUNTER_HZ.load(Ordering::Relaxed));
        rescale(read_physical_timer(), hz, TICK_HZ)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            // No compare register is programmed: the executor's wait looks at the queue.
            self.queue.borrow(cs).borrow_mut().schedule_wake(at, waker);
        });
    }
}

/// `counts` of a counter running at `from_hz`, in counts at `to_hz`, rounded down;
/// exact for any 32-bit `from_hz` (whole seconds and the remainder are scaled apart, so
/// nothing overflows for `to_hz` up to 1 GHz).
fn rescale(counts: u64, from_hz: u64, to_hz: u64) -> u64 {
    counts / from_hz * to_hz + counts % from_hz * to_hz / from_hz
}

/// The started generic timer: the `embassy-time` driver answers once it exists.
pub struct Clock {
    /// `CNTFRQ`, in Hz.
    hz: u64,
}

impl Clock {
    /// Reads the counter's frequency, which the driver's `now()` needs (the system
    /// counter itself runs from reset).
    pub fn start() -> Result<Self, ClockError> {
        let hz = Cntfrq::read().0;
        if hz == 0 {
            return Err(ClockError::FrequencyUnset);
        }
        COUNTER_HZ.store(hz, Ordering::Relaxed);
        Ok(Self { hz: u64::from(hz) })
    }
}

/// The demo times frames in generic timer counts and polls the alarm queue.
impl FrameClock for Clock {
    const UNIT: &'static str = "timer ticks";

    fn count(&self) -> u64 {
        read_physical_timer()
    }

    fn count_to_ns(&self, count: u64) -> u64 {
        rescale(count, self.hz, 1_000_000_000)
    }

    fn wait_for_alarm(&self) {
        let now = DRIVER.now();
        critical_section::with(|cs| {
            DRIVER.queue.borrow(cs).borrow_mut().next_expiration(now);
        });
        core::hint::spin_loop();
    }
}
