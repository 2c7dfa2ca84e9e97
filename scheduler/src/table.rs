//! The static schedule table: every release of one hyperperiod, computed before the
//! system runs, then replayed cycle after cycle.
//!
//! Sensor rates are rarely harmonic in nanoseconds (30 Hz is 33 333 333.3 ns), so the
//! exact least common multiple of the periods can be hours long. The table instead
//! picks the shortest hyperperiod `H` (a multiple of the longest period) in which every
//! task releases `n = floor(H / T)` times with an effective period `H / n` within
//! [`RATE_TOLERANCE_PPM`] of its declared one, and places release `k` at
//! `floor(k · H / n)`. Because `n · T ≤ H`, consecutive releases are never closer than
//! the declared period, so the analysis on declared periods stays safe.

use core::fmt;

use heapless::Vec;

use crate::task::{MAX_TASKS, Name, TaskId, TaskSet};

/// Most releases in one hyperperiod.
pub const MAX_RELEASES: usize = 512;
/// Largest stretch of a task's effective period over its declared one, in parts per
/// million (0.01 %: a 30 Hz camera declared as 33.333 ms runs at 33.3333 ms).
pub const RATE_TOLERANCE_PPM: u64 = 100;
/// Most multiples of the longest period tried as a hyperperiod.
pub const MAX_MULTIPLE: u64 = 1_000;

/// One release in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    /// Offset from the start of the hyperperiod, in nanoseconds.
    pub at_ns: u64,
    /// The task released.
    pub task: TaskId,
}

/// Why no table could be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The set has no tasks.
    Empty,
    /// No hyperperiod up to [`MAX_MULTIPLE`] times the longest period fits every rate
    /// within [`RATE_TOLERANCE_PPM`] and [`MAX_RELEASES`] releases.
    NoHyperperiod {
        /// The task with the shortest period (the one filling the table).
        shortest: Name,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the task set is empty: nothing to schedule"),
            Self::NoHyperperiod { shortest } => write!(
                f,
                "the periods have no common hyperperiod with at most {MAX_RELEASES} releases \
                 (shortest period: task `{shortest}`); make the periods closer to harmonic"
            ),
        }
    }
}

/// Every release of one hyperperiod, in the order the executive processes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleTable {
    hyperperiod_ns: u64,
    releases: Vec<Release, MAX_RELEASES>,
    /// Releases of each task per hyperperiod, indexed by [`TaskId`].
    per_cycle: [u64; MAX_TASKS],
}

impl ScheduleTable {
    /// Builds the table for `set`; releases at one instant are ordered by priority.
    pub fn new(set: &TaskSet) -> Result<Self, TableError> {
        let tasks = set.tasks();
        let longest = tasks
            .iter()
            .map(|t| t.period_ns)
            .max()
            .ok_or(TableError::Empty)?;
        let fits = |h: u64| {
            let mut total = 0u64;
            for t in tasks {
                let n = h / t.period_ns;
                // Effective period h / n stretched at most by the tolerance.
                let stretch_ok = u128::from(h) * 1_000_000
                    <= u128::from(n)
                        * u128::from(t.period_ns)
                        * u128::from(1_000_000 + RATE_TOLERANCE_PPM);
                if n == 0 || !stretch_ok {
                    return false;
                }
                total += n;
            }
            total <= MAX_RELEASES as u64
        };
        let hyperperiod_ns = (1..=MAX_MULTIPLE)
            .map(|m| longest * m)
            .find(|&h| fits(h))
            .ok_or_else(|| TableError::NoHyperperiod {
                shortest: tasks
                    .iter()
                    .min_by_key(|t| t.period_ns)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
            })?;
        let mut releases = Vec::new();
        let mut per_cycle = [0; MAX_TASKS];
        for (id, t) in tasks.iter().enumerate() {
            let n = hyperperiod_ns / t.period_ns;
            per_cycle[id] = n;
            for k in 0..n {
                // Cannot fail: `fits` bounded the total.
                let _ = releases.push(Release {
                    at_ns: release_offset_ns(k, hyperperiod_ns, n),
                    task: id as TaskId,
                });
            }
        }
        releases.sort_unstable_by(|a: &Release, b: &Release| {
            a.at_ns.cmp(&b.at_ns).then_with(|| {
                if set.runs_before(a.task, b.task) {
                    core::cmp::Ordering::Less
                } else if set.runs_before(b.task, a.task) {
                    core::cmp::Ordering::Greater
                } else {
                    core::cmp::Ordering::Equal
                }
            })
        });
        Ok(Self {
            hyperperiod_ns,
            releases,
            per_cycle,
        })
    }

    /// How many times task `task` releases in one hyperperiod.
    pub fn releases_per_cycle(&self, task: TaskId) -> u64 {
        self.per_cycle[usize::from(task)]
    }

    /// How many of the first `frames` releases (in table order, from t = 0) belong to
    /// task `task`: whole cycles times its releases per cycle, plus its share of the
    /// partial cycle at the end.
    pub fn releases_in(&self, task: TaskId, frames: u64) -> u64 {
        let per_cycle = self.releases.len() as u64;
        let rest = (frames % per_cycle) as usize;
        let in_rest = self.releases[..rest]
            .iter()
            .filter(|r| r.task == task)
            .count() as u64;
        frames / per_cycle * self.releases_per_cycle(task) + in_rest
    }

    /// When job `seq` of `task` is released, counted from the first release at t = 0:
    /// what the [`ScheduleTable::cursor`] gives, without walking to it.
    pub fn release_ns(&self, task: TaskId, seq: u32) -> u64 {
        release_offset_ns(
            u64::from(seq),
            self.hyperperiod_ns,
            self.releases_per_cycle(task),
        )
    }

    /// Length of one cycle of the table.
    pub fn hyperperiod_ns(&self) -> u64 {
        self.hyperperiod_ns
    }

    /// The releases of one hyperperiod, in order.
    pub fn releases(&self) -> &[Release] {
        &self.releases
    }

    /// Releases from time zero on, forever: `(absolute time, task)`.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            table: self,
            cycle: 0,
            index: 0,
        }
    }
}

/// Release `k` of a task released `n` times per hyperperiod `h`: `floor(k · h / n)`.
/// For `k ≥ n` this is the same release `k mod n` of cycle `k / n`, so one formula
/// places releases in the table and names any job's release time.
fn release_offset_ns(k: u64, h: u64, n: u64) -> u64 {
    (u128::from(k) * u128::from(h) / u128::from(n)) as u64
}

/// Walks a table's releases cycle after cycle.
#[derive(Clone, Debug)]
pub struct Cursor<'t> {
    table: &'t ScheduleTable,
    cycle: u64,
    index: usize,
}

impl Cursor<'_> {
    /// The next release without consuming it: `(absolute time ns, task)`.
    pub fn peek(&self) -> (u64, TaskId) {
        let r = self.table.releases[self.index];
        (self.cycle * self.table.hyperperiod_ns + r.at_ns, r.task)
    }

    /// Moves past the release [`Cursor::peek`] shows.
    pub fn advance(&mut self) {
        self.index += 1;
        if self.index == self.table.releases.len() {
            self.index = 0;
            self.cycle += 1;
        }
    }
}

impl Iterator for Cursor<'_> {
    type Item = (u64, TaskId);

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.peek();
        self.advance();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{AcceleratorSpec, TaskSpec, name};

    fn set(periods: &[(u64, u8)]) -> TaskSet {
        let tasks: Vec<TaskSpec, 8> = periods
            .iter()
            .enumerate()
            .map(|(i, &(period, priority))| {
                TaskSpec::periodic(["a", "b", "c"][i], 0, period, 1, priority)
            })
            .collect();
        let acc = AcceleratorSpec {
            name: name("cpu0"),
            preemptive: false,
        };
        TaskSet::new(&[acc], &tasks).unwrap()
    }

    #[test]
    fn camera_and_lidar_rates_share_a_100_ms_table() {
        let s = set(&[(33_333_000, 2), (100_000_000, 1)]);
        let t = ScheduleTable::new(&s).unwrap();
        assert_eq!(t.hyperperiod_ns(), 100_000_000);
        let r: Vec<(u64, TaskId), 8> = t.releases().iter().map(|r| (r.at_ns, r.task)).collect();
        assert_eq!(
            r.as_slice(),
            &[(0, 0), (0, 1), (33_333_333, 0), (66_666_666, 0)]
        );
        // Never closer than the declared period, even across the cycle boundary.
        let times: Vec<u64, 16> = t
            .cursor()
            .filter(|&(_, k)| k == 0)
            .take(7)
            .map(|(at, _)| at)
            .collect();
        assert!(
            times.windows(2).all(|w| w[1] - w[0] >= 33_333_000),
            "{times:?}"
        );
    }

    #[test]
    fn harmonic_periods_use_the_exact_lcm_and_priority_orders_ties() {
        let s = set(&[(20, 1), (10, 2), (40, 3)]);
        let t = ScheduleTable::new(&s).unwrap();
        assert_eq!(t.hyperperiod_ns(), 40);
        let first: Vec<TaskId, 8> = t.releases().iter().take(3).map(|r| r.task).collect();
        assert_eq!(first.as_slice(), &[2, 1, 0]);
        assert_eq!(t.releases().len(), 4 + 2 + 1);
        let mut c = t.cursor();
        assert_eq!(c.nth(7), Some((40, 2)), "the second cycle starts at 40");
    }

    #[test]
    fn release_times_by_sequence_number_match_the_cursor() {
        let s = set(&[(33_333_000, 2), (100_000_000, 1), (50_000_000, 3)]);
        let t = ScheduleTable::new(&s).unwrap();
        let mut seqs = [0u32; 3];
        for (at, task) in t.cursor().take(200) {
            let seq = &mut seqs[usize::from(task)];
            assert_eq!(t.release_ns(task, *seq), at, "task {task} job {seq}");
            *seq += 1;
        }
        let per_cycle: Vec<u64, 3> = (0..3).map(|id| t.releases_per_cycle(id)).collect();
        assert_eq!(per_cycle.as_slice(), &[3, 1, 2]);
        let walked = |frames: usize, task: TaskId| {
            t.cursor().take(frames).filter(|&(_, k)| k == task).count() as u64
        };
        for frames in [0, 1, 5, 6, 7, 61, 200] {
            for task in 0..3 {
                assert_eq!(t.releases_in(task, frames as u64), walked(frames, task));
            }
        }
    }

    #[test]
    fn periods_without_a_short_common_cycle_are_refused() {
        let s = set(&[(1_000, 1), (999_983, 2)]);
        assert_eq!(
            ScheduleTable::new(&s).unwrap_err(),
            TableError::NoHyperperiod {
                shortest: name("a")
            }
        );
    }
}
