//! Schedulability analysis: is every deadline met, whatever the phasing of releases?
//!
//! Per accelerator, tasks are served by fixed priority. Two analyses, both exact for
//! their model, with release jitter:
//!
//! - **preemptive** (Joseph & Pandya, Audsley et al., with Tindell's jitter and
//!   busy-period extension): a job is delayed only by higher-priority work;
//! - **non-preemptive** (Davis, Burns, Bril & Lukkien 2007, "CAN schedulability
//!   analysis: refuted, revisited and revised"): a job may also wait for the one
//!   lower-priority job already running, and every job in the level-i busy period is
//!   checked, not only the first (the flaw that paper corrects).
//!
//! Equal priorities are treated as interfering both ways, which is safe for any
//! tie-break the executive uses. Times are integer nanoseconds; the non-preemptive
//! analysis uses one nanosecond as the time granule.

use core::fmt;

use heapless::Vec;

use crate::task::{AcceleratorId, MAX_ACCELERATORS, MAX_TASKS, Name, TaskId, TaskSet, TaskSpec};

/// A response-time iteration that passes this many deadlines is abandoned: the task
/// misses by so much that the exact figure does not matter.
const DIVERGENCE_FACTOR: u64 = 1_000;

/// The verdict for one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskVerdict {
    /// Worst-case response time (release to end, jitter included); `None` when the
    /// busy period does not end (the accelerator is overloaded) or passes
    /// 1000 deadlines.
    pub wcrt_ns: Option<u64>,
    /// The task's relative deadline.
    pub deadline_ns: u64,
    /// Longest blocking by one lower-priority job (non-preemptive accelerators only).
    pub blocking_ns: u64,
}

impl TaskVerdict {
    /// Whether the worst case meets the deadline.
    pub fn schedulable(&self) -> bool {
        self.wcrt_ns.is_some_and(|r| r <= self.deadline_ns)
    }
}

/// Why a set was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unschedulable {
    /// The first task (in set order) that can miss its deadline.
    pub task: Name,
    /// Its accelerator's name.
    pub accelerator: Name,
    /// Its verdict.
    pub verdict: TaskVerdict,
    /// Its accelerator's utilisation, in parts per million.
    pub utilisation_ppm: u64,
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        let util = self.utilisation_ppm as f64 / 1e4;
        match self.verdict.wcrt_ns {
            Some(r) => write!(
                f,
                "task `{}` can miss its deadline: worst-case response {:.3} ms > deadline {:.3} ms \
                 (accelerator `{}` at {util:.1} % utilisation)",
                self.task,
                ms(r),
                ms(self.verdict.deadline_ns),
                self.accelerator
            ),
            None => write!(
                f,
                "task `{}` can miss its deadline without bound: accelerator `{}` is overloaded \
                 ({util:.1} % utilisation of it and the tasks above it)",
                self.task, self.accelerator
            ),
        }
    }
}

/// The analysis of a whole set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    verdicts: Vec<TaskVerdict, MAX_TASKS>,
    utilisation_ppm: Vec<u64, MAX_ACCELERATORS>,
}

impl Analysis {
    /// Analyses every task of `set` on its accelerator.
    pub fn of(set: &TaskSet) -> Self {
        let verdicts = (0..set.tasks().len())
            .map(|i| analyse_task(set, i as TaskId))
            .collect();
        let utilisation_ppm = (0..set.accelerators().len())
            .map(|a| {
                set.tasks_on(a as AcceleratorId)
                    .map(|t| utilisation_ppm(set.task(t)))
                    .sum()
            })
            .collect();
        Self {
            verdicts,
            utilisation_ppm,
        }
    }

    /// Task `id`'s verdict.
    pub fn verdict(&self, id: TaskId) -> &TaskVerdict {
        &self.verdicts[usize::from(id)]
    }

    /// Every verdict, indexed by [`TaskId`].
    pub fn verdicts(&self) -> &[TaskVerdict] {
        &self.verdicts
    }

    /// Accelerator `id`'s utilisation (sum of budget / period), in parts per million.
    pub fn utilisation_ppm(&self, id: AcceleratorId) -> u64 {
        self.utilisation_ppm[usize::from(id)]
    }

    /// Whether every task meets its deadline in the worst case.
    pub fn schedulable(&self) -> bool {
        self.verdicts.iter().all(TaskVerdict::schedulable)
    }

    /// `Ok` when schedulable, else the first task that can miss, with the reason.
    pub fn check(&self, set: &TaskSet) -> Result<(), Unschedulable> {
        match self.verdicts.iter().position(|v| !v.schedulable()) {
            None => Ok(()),
            Some(i) => {
                let task = &set.tasks()[i];
                Err(Unschedulable {
                    task: task.name.clone(),
                    accelerator: set.accelerators()[usize::from(task.accelerator)]
                        .name
                        .clone(),
                    verdict: self.verdicts[i],
                    utilisation_ppm: self.utilisation_ppm[usize::from(task.accelerator)],
                })
            }
        }
    }
}

fn utilisation_ppm(t: &TaskSpec) -> u64 {
    (u128::from(t.budget_ns) * 1_000_000 / u128::from(t.period_ns)) as u64
}

fn analyse_task(set: &TaskSet, id: TaskId) -> TaskVerdict {
    let task = set.task(id);
    let accelerator = &set.accelerators()[usize::from(task.accelerator)];
    let peers = || {
        set.tasks_on(task.accelerator)
            .filter(move |&j| j != id)
            .map(|j| set.task(j))
    };
    let higher: Vec<&TaskSpec, MAX_TASKS> =
        peers().filter(|t| t.priority >= task.priority).collect();
    let blocking_ns = if accelerator.preemptive {
        0
    } else {
        peers()
            .filter(|t| t.priority < task.priority)
            .map(|t| t.budget_ns)
            .max()
            .unwrap_or(0)
    };
    // Past this, the task misses by so much that iterating on is pointless.
    let limit = task.deadline_ns.saturating_mul(DIVERGENCE_FACTOR);
    let wcrt_ns = busy_period(task, &higher, blocking_ns, limit).and_then(|busy| {
        let jobs = (busy + task.release_jitter_ns)
            .div_ceil(task.period_ns)
            .max(1);
        let mut worst = 0u64;
        for q in 0..jobs {
            let r = if accelerator.preemptive {
                preemptive_response(task, &higher, q, limit)?
            } else {
                non_preemptive_response(task, &higher, blocking_ns, q, limit)?
            };
            worst = worst.max(r);
        }
        Some(worst)
    });
    TaskVerdict {
        wcrt_ns,
        deadline_ns: task.deadline_ns,
        blocking_ns,
    }
}

/// Interference of `higher` tasks over a window of `w` (their releases in it, jitter
/// included, times their budgets).
fn interference(higher: &[&TaskSpec], releases: impl Fn(&TaskSpec) -> u64) -> u64 {
    higher
        .iter()
        .map(|t| releases(t).saturating_mul(t.budget_ns))
        .fold(0, u64::saturating_add)
}

/// Iterates `w = f(w)` from `start` to its least fixed point; `None` past `limit`.
fn fixed_point(start: u64, limit: u64, f: impl Fn(u64) -> u64) -> Option<u64> {
    let mut w = start;
    loop {
        let next = f(w);
        if next == w {
            return Some(w);
        }
        if next > limit {
            return None;
        }
        w = next;
    }
}

/// Length of the level-i busy period: the longest time the accelerator stays busy with
/// work of this priority or above (plus the initial blocking) from a critical instant.
fn busy_period(task: &TaskSpec, higher: &[&TaskSpec], blocking_ns: u64, limit: u64) -> Option<u64> {
    let own = |w: u64| (w + task.release_jitter_ns).div_ceil(task.period_ns) * task.budget_ns;
    fixed_point(task.budget_ns + blocking_ns, limit, |w| {
        blocking_ns
            .saturating_add(own(w))
            .saturating_add(interference(higher, |t| {
                (w + t.release_jitter_ns).div_ceil(t.period_ns)
            }))
    })
}

/// Response time of job `q` (0-based) of the busy period, preemptive.
fn preemptive_response(task: &TaskSpec, higher: &[&TaskSpec], q: u64, limit: u64) -> Option<u64> {
    let own = (q + 1) * task.budget_ns;
    let end = fixed_point(own, limit, |w| {
        own.saturating_add(interference(higher, |t| {
            (w + t.release_jitter_ns).div_ceil(t.period_ns)
        }))
    })?;
    Some((end + task.release_jitter_ns).saturating_sub(q * task.period_ns))
}

/// Response time of job `q` (0-based) of the busy period, non-preemptive: the queuing
/// delay until it starts, then its whole budget without interruption.
fn non_preemptive_response(
    task: &TaskSpec,
    higher: &[&TaskSpec],
    blocking_ns: u64,
    q: u64,
    limit: u64,
) -> Option<u64> {
    let before = blocking_ns + q * task.budget_ns;
    let start = fixed_point(before, limit, |w| {
        // Releases up to and including the instant the job would start (granule 1 ns).
        before.saturating_add(interference(higher, |t| {
            (w + t.release_jitter_ns) / t.period_ns + 1
        }))
    })?;
    Some((start + task.budget_ns + task.release_jitter_ns).saturating_sub(q * task.period_ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{AcceleratorSpec, name};

    fn set(preemptive: bool, tasks: &[(u64, u64, u64, u8)]) -> TaskSet {
        let tasks: Vec<TaskSpec, MAX_TASKS> = tasks
            .iter()
            .enumerate()
            .map(|(i, &(period, deadline, budget, priority))| TaskSpec {
                deadline_ns: deadline,
                ..TaskSpec::periodic(["a", "b", "c", "d", "e"][i], 0, period, budget, priority)
            })
            .collect();
        let acc = AcceleratorSpec {
            name: name("cpu0"),
            preemptive,
        };
        TaskSet::new(&[acc], &tasks).unwrap()
    }

    fn wcrts(s: &TaskSet) -> [Option<u64>; 3] {
        let a = Analysis::of(s);
        core::array::from_fn(|i| a.verdicts().get(i).and_then(|v| v.wcrt_ns))
    }

    /// Burns & Wellings, "Real-Time Systems and Programming Languages", 4th ed., §11.5:
    /// (T, C) = (7, 3), (12, 3), (20, 5), rate-monotonic. U = 0.9 is above the Liu &
    /// Layland bound for three tasks (0.780), yet exact RTA shows it schedulable with
    /// R = 3, 6, 20.
    #[test]
    fn textbook_set_schedulable_only_by_exact_analysis() {
        let s = set(true, &[(7, 7, 3, 3), (12, 12, 3, 2), (20, 20, 5, 1)]);
        assert_eq!(wcrts(&s), [Some(3), Some(6), Some(20)]);
        let a = Analysis::of(&s);
        assert!(a.schedulable());
        let bound = 3.0 * (2f64.powf(1.0 / 3.0) - 1.0);
        assert!(a.utilisation_ppm(0) as f64 / 1e6 > bound);
    }

    /// Burns & Wellings §11.4, task set A: (T, C) = (50, 12), (40, 10), (30, 10),
    /// rate-monotonic, U = 0.82. The lowest-priority task misses: R = 12 + 2·10 + 2·10
    /// = 52 > 50.
    #[test]
    fn textbook_set_that_misses_names_the_task() {
        let s = set(true, &[(50, 50, 12, 1), (40, 40, 10, 2), (30, 30, 10, 3)]);
        let a = Analysis::of(&s);
        assert_eq!(wcrts(&s), [Some(52), Some(20), Some(10)]);
        let err = a.check(&s).unwrap_err();
        assert_eq!(err.task, name("a"));
        assert!(err.to_string().starts_with("task `a` can miss"), "{err}");
    }

    /// The point of Davis et al. 2007: without preemption, a later job of the level-i
    /// busy period can respond slower than the first. (T, D, C) = (10, 10, 4),
    /// (14, 13, 4), (14, 14, 4), priorities high to low. Worked by hand, all released
    /// at 0: a 0–4, b 4–8, c 8–12 (R = 12); a at 10 runs 12–16; b and c at 14: b
    /// 16–20, a (released 20) 20–24, c 24–28, so c's second job has R = 28 − 14 = 14.
    /// Checking only the first job would report 12.
    #[test]
    fn non_preemptive_checks_every_job_of_the_busy_period() {
        let s = set(false, &[(10, 10, 4, 3), (14, 13, 4, 2), (14, 14, 4, 1)]);
        let a = Analysis::of(&s);
        assert_eq!(a.verdict(2).wcrt_ns, Some(14));
        assert!(a.verdict(2).schedulable());
        assert_eq!(a.verdict(1).blocking_ns, 4);
        // a waits at most for one lower job (4), then runs (4).
        assert_eq!(a.verdict(0).wcrt_ns, Some(8));
    }

    #[test]
    fn overload_has_no_bounded_response() {
        let s = set(true, &[(10, 10, 6, 2), (10, 10, 5, 1)]);
        let a = Analysis::of(&s);
        assert_eq!(a.verdict(1).wcrt_ns, None);
        assert!(a.check(&s).unwrap_err().to_string().contains("overloaded"));
    }

    #[test]
    fn jitter_adds_to_the_response() {
        let mut s = set(true, &[(10, 10, 2, 2), (20, 20, 5, 1)]);
        assert_eq!(wcrts(&s)[1], Some(7));
        let mut tasks: Vec<TaskSpec, MAX_TASKS> = Vec::from_slice(s.tasks()).unwrap();
        tasks[0].release_jitter_ns = 3;
        tasks[1].release_jitter_ns = 1;
        s = TaskSet::new(s.accelerators(), &tasks).unwrap();
        // w = 5 + ceil((w + 3) / 10) * 2: 7 -> 7; R = 7 + 1.
        assert_eq!(wcrts(&s)[1], Some(8));
        tasks[0].release_jitter_ns = 4;
        s = TaskSet::new(s.accelerators(), &tasks).unwrap();
        // w = 5 + ceil((w + 4) / 10) * 2: 7 -> 9 -> 9, a second release of the high
        // task now lands in the window; R = 9 + 1.
        assert_eq!(wcrts(&s)[1], Some(10));
    }
}
