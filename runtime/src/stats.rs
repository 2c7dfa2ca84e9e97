//! Latency statistics in fixed memory: no heap, constant-time recording, so the frame
//! path can record every frame on firmware as well as on a host.
//!
//! [`Histogram`] is log-linear (the HdrHistogram layout): values below 256 ns get a
//! bucket each; above that every power of two is split into 128 equal buckets, so a
//! bucket is never wider than 1/128 (0.8 %) of the values in it. It covers up to
//! 2^37 ns (about 137 s) in [`BUCKETS`] `u32` counters; longer values land in the top
//! bucket and are still reported exactly by [`Histogram::max`].

/// Linear sub-buckets per power of two (2^7): sets the 0.8 % relative resolution.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this have one bucket each.
const LINEAR: u64 = 2 * SUB;
/// Powers of two above [`LINEAR`] covered: 2^8 … 2^37.
const SHIFTS: u32 = 29;
/// Counters in a [`Histogram`].
pub const BUCKETS: usize = (LINEAR + SHIFTS as u64 * SUB) as usize;
/// Largest value a bucket other than the top one holds, in nanoseconds (about 137 s).
pub const MAX_TRACKED_NS: u64 = (1 << (SUB_BITS + 1 + SHIFTS)) - 1;

fn bucket_of(ns: u64) -> usize {
    if ns < LINEAR {
        return ns as usize;
    }
    let top_bit = 63 - ns.leading_zeros();
    let shift = top_bit - SUB_BITS;
    if shift > SHIFTS {
        return BUCKETS - 1;
    }
    (LINEAR + (shift as u64 - 1) * SUB + ((ns >> shift) - SUB)) as usize
}

/// Lowest and highest value bucket `index` holds.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let i = index as u64;
    if i < LINEAR {
        return (i, i);
    }
    let shift = (i - LINEAR) / SUB + 1;
    let sub = (i - LINEAR) % SUB + SUB;
    (sub << shift, ((sub + 1) << shift) - 1)
}

/// The 1-based rank (nearest-rank method) that percentile `p` (in percent) selects
/// among `count` sorted values: `ceil(p / 100 * count)`, at least 1. A hair of slack
/// keeps `99.9 %` of 1000 at rank 999 despite binary floating point.
pub fn percentile_rank(p: f64, count: u64) -> u64 {
    let exact = p.clamp(0.0, 100.0) / 100.0 * count as f64;
    let floor = exact as u64;
    let rank = if (exact - floor as f64) > 1e-9 * exact.max(1.0) {
        floor + 1
    } else {
        floor
    };
    rank.clamp(1, count.max(1))
}

/// A fixed-memory latency histogram over `u64` nanoseconds; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: [u32; BUCKETS],
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram; `const` so it can live in a `static` (it is 16 KiB, too big
    /// for a small firmware stack).
    pub const fn new() -> Self {
        Self {
            counts: [0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value. Constant time; a bucket saturates at `u32::MAX`.
    pub fn record(&mut self, ns: u64) {
        let slot = &mut self.counts[bucket_of(ns)];
        *slot = slot.saturating_add(1);
        self.count += 1;
        self.sum += u128::from(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Smallest value recorded, exactly.
    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value recorded, exactly.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// Arithmetic mean, exactly (rounded down to a nanosecond).
    pub fn mean(&self) -> Option<u64> {
        (self.count > 0).then(|| (self.sum / u128::from(self.count)) as u64)
    }

    /// The value at percentile `p` (in percent: 50, 99.9), nearest-rank.
    ///
    /// Reports the upper bound of the bucket holding that value, clamped to the
    /// recorded min and max: never below the true percentile (a latency report must not
    /// flatter) and at most 0.8 % above it.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = percentile_rank(p, self.count);
        let mut seen = 0u64;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                let high = if index == BUCKETS - 1 {
                    self.max
                } else {
                    bucket_bounds(index).1
                };
                return Some(high.clamp(self.min, self.max));
            }
        }
        // Only reachable when a bucket saturated: the value is above every counted one.
        Some(self.max)
    }

    /// Adds every value of `other`, as if recorded here.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Non-empty buckets as `(lowest, highest, count)`, ascending: for plots.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u32)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, &n)| {
                let (low, high) = bucket_bounds(i);
                (low, high, n)
            })
    }

    /// The usual report figures; all zero when empty.
    pub fn summary(&self) -> Summary {
        let p = |q| self.percentile(q).unwrap_or(0);
        let (min, max) = (self.min().unwrap_or(0), self.max().unwrap_or(0));
        Summary {
            count: self.count,
            min,
            max,
            mean: self.mean().unwrap_or(0),
            p50: p(50.0),
            p90: p(90.0),
            p99: p(99.0),
            p99_9: p(99.9),
            jitter_p999_minus_p50: p(99.9) - p(50.0),
            jitter_max_minus_min: max - min,
        }
    }
}

/// Report figures of one histogram, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// Typical jitter: how far the tail sits from the median.
    pub jitter_p999_minus_p50: u64,
    /// Worst-case jitter: the full spread.
    pub jitter_max_minus_min: u64,
}

/// How a frame ended. Every frame ends in exactly one of these (contract 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameState {
    /// Completed by its deadline.
    Met,
    /// Completed after its deadline.
    Late,
    /// Not run, by the overrun policy.
    Skipped,
    /// Run, but the engine or backend returned an error.
    Failed,
}

/// The instants of one frame, in nanoseconds of one clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameTimes {
    /// When the sensor captured the data (the release time when unknown).
    pub capture_ns: u64,
    /// When the schedule released the job.
    pub release_ns: u64,
    /// When it started running.
    pub start_ns: u64,
    /// When it finished.
    pub end_ns: u64,
}

/// Everything measured about one periodic task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskStats {
    /// End minus release: what the deadline is checked against.
    pub response: Histogram,
    /// End minus start: the budget actually used.
    pub execution: Histogram,
    /// Start minus release: how late the job began.
    pub release_jitter: Histogram,
    /// End minus capture: sensor-to-result latency.
    pub end_to_end: Histogram,
    met: u64,
    late: u64,
    skipped: u64,
    failed: u64,
}

impl TaskStats {
    /// Empty statistics; `const` so they can live in a `static` (64 KiB).
    pub const fn new() -> Self {
        Self {
            response: Histogram::new(),
            execution: Histogram::new(),
            release_jitter: Histogram::new(),
            end_to_end: Histogram::new(),
            met: 0,
            late: 0,
            skipped: 0,
            failed: 0,
        }
    }

    /// Records a frame that ended in `state`. Pass `times` for every frame that ran
    /// (failed ones included, so faults show in the timing); a skipped frame has none.
    pub fn record(&mut self, state: FrameState, times: Option<&FrameTimes>) {
        match state {
            FrameState::Met => self.met += 1,
            FrameState::Late => self.late += 1,
            FrameState::Skipped => self.skipped += 1,
            FrameState::Failed => self.failed += 1,
        }
        if let Some(t) = times {
            self.response.record(t.end_ns.saturating_sub(t.release_ns));
            self.execution.record(t.end_ns.saturating_sub(t.start_ns));
            self.release_jitter
                .record(t.start_ns.saturating_sub(t.release_ns));
            self.end_to_end
                .record(t.end_ns.saturating_sub(t.capture_ns));
        }
    }

    /// Frames completed by their deadline.
    pub fn met(&self) -> u64 {
        self.met
    }
    /// Frames completed after their deadline.
    pub fn late(&self) -> u64 {
        self.late
    }
    /// Frames skipped by policy.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
    /// Frames that failed.
    pub fn failed(&self) -> u64 {
        self.failed
    }
    /// Every frame recorded.
    pub fn frames(&self) -> u64 {
        self.met + self.late + self.skipped + self.failed
    }
    /// Frames without a result by their deadline: late, skipped or failed.
    pub fn deadline_misses(&self) -> u64 {
        self.late + self.skipped + self.failed
    }

    /// Adds every frame of `other` (another run, another worker).
    pub fn merge(&mut self, other: &Self) {
        self.response.merge(&other.response);
        self.execution.merge(&other.execution);
        self.release_jitter.merge(&other.release_jitter);
        self.end_to_end.merge(&other.end_to_end);
        self.met += other.met;
        self.late += other.late;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }

    /// The report figures.
    pub fn summary(&self) -> TaskSummary {
        TaskSummary {
            response: self.response.summary(),
            execution: self.execution.summary(),
            release_jitter: self.release_jitter.summary(),
            end_to_end: self.end_to_end.summary(),
            met: self.met,
            late: self.late,
            skipped: self.skipped,
            failed: self.failed,
            deadline_misses: self.deadline_misses(),
        }
    }
}

/// Report figures of one task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskSummary {
    /// Response time (end − release).
    pub response: Summary,
    /// Execution time (end − start).
    pub execution: Summary,
    /// Release jitter (start − release).
    pub release_jitter: Summary,
    /// End-to-end latency (end − capture).
    pub end_to_end: Summary,
    /// Frames met.
    pub met: u64,
    /// Frames late.
    pub late: u64,
    /// Frames skipped.
    pub skipped: u64,
    /// Frames failed.
    pub failed: u64,
    /// Late + skipped + failed.
    pub deadline_misses: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        let mut next = 0;
        for i in 0..BUCKETS {
            let (low, high) = bucket_bounds(i);
            assert_eq!(low, next, "bucket {i}");
            assert!(high >= low);
            assert_eq!(bucket_of(low), i);
            assert_eq!(bucket_of(high), i);
            if low >= LINEAR {
                assert!((high - low) as f64 / low as f64 <= 1.0 / 128.0);
            }
            next = high + 1;
        }
        assert_eq!(next - 1, MAX_TRACKED_NS);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn empty_histogram_reports_nothing() {
        let h = Histogram::new();
        assert_eq!(
            (h.min(), h.max(), h.mean(), h.percentile(50.0)),
            (None, None, None, None)
        );
        assert_eq!(h.summary(), Summary::default());
    }

    #[test]
    fn small_values_are_exact_and_huge_ones_clamp_to_max() {
        let mut h = Histogram::new();
        for v in [100, 150, 200, 250] {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(150));
        assert_eq!(h.percentile(100.0), Some(250));
        assert_eq!(h.percentile(0.0), Some(100));
        assert_eq!(h.mean(), Some(175));
        h.record(1 << 40);
        assert_eq!(h.percentile(100.0), Some(1 << 40));
        let s = h.summary();
        assert_eq!((s.count, s.min, s.max), (5, 100, 1 << 40));
        assert_eq!(s.jitter_max_minus_min, (1 << 40) - 100);
    }

    #[test]
    fn percentile_rank_is_nearest_rank() {
        assert_eq!(percentile_rank(99.9, 1000), 999);
        assert_eq!(percentile_rank(50.0, 3), 2);
        assert_eq!(percentile_rank(0.0, 10), 1);
        assert_eq!(percentile_rank(100.0, 10), 10);
        assert_eq!(percentile_rank(99.0, 101), 100);
    }

    #[test]
    fn task_stats_count_every_state_and_time_every_run() {
        let mut t = TaskStats::new();
        let times = FrameTimes {
            capture_ns: 0,
            release_ns: 1_000,
            start_ns: 1_500,
            end_ns: 11_500,
        };
        t.record(FrameState::Met, Some(&times));
        t.record(FrameState::Late, Some(&times));
        t.record(FrameState::Skipped, None);
        t.record(FrameState::Failed, Some(&times));
        let mut merged = TaskStats::new();
        merged.merge(&t);
        let s = merged.summary();
        assert_eq!(
            (s.met, s.late, s.skipped, s.failed, s.deadline_misses),
            (1, 1, 1, 1, 3)
        );
        assert_eq!(merged.frames(), 4);
        assert_eq!(s.response.count, 3);
        assert_eq!(s.release_jitter.max, 500);
        assert_eq!(s.execution.min, 10_000);
        assert_eq!(s.end_to_end.mean, 11_500);
    }

    /// Values spread log-uniformly from 100 ns to 100 s, like real latency tails.
    fn latency() -> impl Strategy<Value = u64> {
        (7u32..37, any::<u64>())
            .prop_map(|(e, m)| ((1u64 << e) + m % (1u64 << e)).clamp(100, 100_000_000_000))
    }

    proptest! {
        #[test]
        fn percentiles_are_within_one_percent(
            values in proptest::collection::vec(latency(), 1..3000),
            split in any::<prop::sample::Index>(),
        ) {
            let mut a = Histogram::new();
            let mut b = Histogram::new();
            let cut = split.index(values.len());
            values[..cut].iter().for_each(|&v| a.record(v));
            values[cut..].iter().for_each(|&v| b.record(v));
            a.merge(&b);

            let mut sorted = values.clone();
            sorted.sort_unstable();
            for p in [0.0, 0.1, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0] {
                let exact = sorted[percentile_rank(p, sorted.len() as u64) as usize - 1];
                let got = a.percentile(p).unwrap();
                prop_assert!(got >= exact, "p{p}: {got} < {exact}");
                prop_assert!((got - exact) as f64 <= exact as f64 / 100.0, "p{p}: {got} vs {exact}");
            }
            prop_assert_eq!(a.min(), sorted.first().copied());
            prop_assert_eq!(a.max(), sorted.last().copied());
            let mean = values.iter().map(|&v| u128::from(v)).sum::<u128>() / values.len() as u128;
            prop_assert_eq!(a.mean(), Some(mean as u64));
            prop_assert_eq!(a.count(), values.len() as u64);
        }
    }
}
