//! The host reads time from embassy-time's std driver through `cadence_hal::Clock`.

use std::time::{Duration, Instant};

use cadence_hal::{Clock, EmbassyClock};

#[test]
fn embassy_clock_is_monotonic_and_follows_the_host_clock() {
    let clock = EmbassyClock;
    // The embassy readings are taken inside the host's, so its interval is the shorter.
    let host_start = Instant::now();
    let start = clock.now_ns();
    let mut last = start;
    for _ in 0..1_000 {
        let now = clock.now_ns();
        assert!(now >= last, "time went back: {last} -> {now}");
        last = now;
    }
    std::thread::sleep(Duration::from_millis(20));
    let elapsed = clock.now_ns() - start;
    let host_elapsed = host_start.elapsed().as_nanos() as u64;
    // At least the sleep, and never more than the host saw plus one driver tick (1 µs).
    assert!(elapsed >= 20_000_000 - 1_000, "{elapsed} ns");
    assert!(
        elapsed <= host_elapsed + 1_000,
        "{elapsed} ns > {host_elapsed} ns"
    );
}
