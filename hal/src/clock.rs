//! The [`Clock`] trait: how the scheduler and the statistics read time.
//!
//! The scheduler never reads a global time source directly: `embassy-time` allows one
//! driver per binary, and a test binary wants both a real clock and a simulated one.

use core::cell::Cell;

/// A monotonic time source with nanosecond resolution.
///
/// Contract:
/// - `now_ns` never decreases between calls on the same clock;
/// - it starts near zero (at boot, at construction) so `u64` nanoseconds never overflow
///   in practice (585 years);
/// - reading it does not allocate and does not block.
///
/// # Example
///
/// ```
/// use cadence_hal::Clock;
///
/// /// A clock that counts calls: monotonic, and handy in tests.
/// struct Ticks(core::cell::Cell<u64>);
///
/// impl Clock for Ticks {
///     fn now_ns(&self) -> u64 {
///         let t = self.0.get() + 1;
///         self.0.set(t);
///         t
///     }
/// }
///
/// let clock = Ticks(core::cell::Cell::new(0));
/// assert!(clock.now_ns() < clock.now_ns());
/// ```
pub trait Clock {
    /// Nanoseconds since the clock's epoch.
    fn now_ns(&self) -> u64;
}

/// A clock advanced by hand: deterministic simulation and tests.
#[derive(Debug, Default)]
pub struct SimClock {
    now: Cell<u64>,
}

impl SimClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.now.set(self.now.get().saturating_add(ns));
    }

    /// Moves time forward to `ns`; earlier instants are ignored (the clock is monotonic).
    pub fn advance_to(&self, ns: u64) {
        if ns > self.now.get() {
            self.now.set(ns);
        }
    }
}

impl Clock for SimClock {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }
}

/// The host's monotonic clock (`std::time::Instant`), counted from construction.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy)]
pub struct StdClock {
    epoch: std::time::Instant,
}

#[cfg(feature = "std")]
impl Default for StdClock {
    fn default() -> Self {
        Self {
            epoch: std::time::Instant::now(),
        }
    }
}

#[cfg(feature = "std")]
impl Clock for StdClock {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Time from `embassy-time`: the one time driver the binary links (a hardware timer on
/// firmware, embassy's std driver on a host), read through [`Clock`] so the scheduler
/// never names the global driver itself and a test binary can still run a
/// [`SimClock`] beside it. Resolution is the driver's tick (1 µs for the std driver).
#[cfg(feature = "embassy-time")]
#[derive(Debug, Default, Clone, Copy)]
pub struct EmbassyClock;

#[cfg(feature = "embassy-time")]
impl Clock for EmbassyClock {
    fn now_ns(&self) -> u64 {
        embassy_time::Instant::now().as_nanos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_clock_is_monotonic() {
        let c = SimClock::new();
        c.advance(10);
        c.advance_to(5);
        assert_eq!(c.now_ns(), 10);
        c.advance_to(25);
        assert_eq!(c.now_ns(), 25);
    }
}
