//! The task model: periodic tasks on accelerators, each with a deadline, a budget and a
//! priority, and what to do when a job overruns.
//!
//! Every capacity is a const so a [`TaskSet`] lives in a `static` on firmware.

use core::fmt;

use heapless::{String, Vec};

/// Most tasks in one set.
pub const MAX_TASKS: usize = 16;
/// Most accelerators in one set.
pub const MAX_ACCELERATORS: usize = 8;
/// Longest task or accelerator name, in bytes.
pub const NAME_LEN: usize = 32;

/// A task or accelerator name.
pub type Name = String<NAME_LEN>;

/// Index of a task in its [`TaskSet`].
pub type TaskId = u8;
/// Index of an accelerator in its [`TaskSet`].
pub type AcceleratorId = u8;

/// What happens to a task's frames when one of its jobs overruns (contract 3: every
/// frame still ends in exactly one recorded state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrunPolicy {
    /// A late job runs to completion (`late`); every release of the task that comes
    /// while a job of it is still queued or running is `skipped`.
    SkipNext,
    /// A job never delivers a result after its deadline: one not started by then is
    /// dropped, one still running is abandoned (cut at the deadline on a preemptive
    /// accelerator; on a non-preemptive one it finishes but its result is dropped). Such
    /// frames are `skipped`.
    Abort,
    /// After a job completes late or fails, the task's next job runs its fallback (a
    /// cheaper package, another backend) with `fallback_budget_ns`; a release that comes
    /// while a job is still running waits for it (one at most; more are `skipped`).
    Degrade {
        /// Worst-case execution time of the fallback.
        fallback_budget_ns: u64,
    },
}

impl fmt::Display for OverrunPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SkipNext => f.write_str("skip-next"),
            Self::Abort => f.write_str("abort"),
            Self::Degrade { .. } => f.write_str("degrade"),
        }
    }
}

/// A device jobs run on, and whether a running job can be preempted there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceleratorSpec {
    /// Name used in scenarios and reports.
    pub name: Name,
    /// `false` for devices that run a job to completion once started (a GPU, an NPU,
    /// a host worker thread): the analysis then charges blocking by lower-priority jobs.
    pub preemptive: bool,
}

/// One periodic task. Times are nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    /// Name used in scenarios and reports.
    pub name: Name,
    /// The accelerator its jobs run on.
    pub accelerator: AcceleratorId,
    /// Time between releases.
    pub period_ns: u64,
    /// Relative deadline: a job must end within this of its release.
    pub deadline_ns: u64,
    /// Worst-case execution time the analysis assumes.
    pub budget_ns: u64,
    /// Higher is more urgent. Equal priorities are analysed as interfering both ways.
    pub priority: u8,
    /// Largest delay between a nominal release instant and the job becoming ready
    /// (sensor arrival variation).
    pub release_jitter_ns: u64,
    /// What an overrun does.
    pub policy: OverrunPolicy,
}

impl TaskSpec {
    /// The common case, spelled once: deadline equal to the period, no release jitter,
    /// and the `skip-next` policy.
    pub fn periodic(
        name: &str,
        accelerator: AcceleratorId,
        period_ns: u64,
        budget_ns: u64,
        priority: u8,
    ) -> Self {
        Self {
            name: self::name(name),
            accelerator,
            period_ns,
            deadline_ns: period_ns,
            budget_ns,
            priority,
            release_jitter_ns: 0,
            policy: OverrunPolicy::SkipNext,
        }
    }
}

/// Why a task set is not well formed. Checked before any analysis or run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskSetError {
    /// More tasks than [`MAX_TASKS`].
    TooManyTasks,
    /// More accelerators than [`MAX_ACCELERATORS`].
    TooManyAccelerators,
    /// Two tasks or two accelerators share a name.
    DuplicateName(Name),
    /// A task names an accelerator index that does not exist.
    UnknownAccelerator {
        /// The task.
        task: Name,
    },
    /// A period, deadline or budget is zero.
    ZeroTime {
        /// The task.
        task: Name,
        /// Which field.
        field: &'static str,
    },
    /// The deadline is longer than the period: jobs of one task could overlap, which the
    /// table-driven executive does not allow.
    DeadlineAfterPeriod {
        /// The task.
        task: Name,
    },
    /// A budget longer than the deadline can never be met.
    BudgetAfterDeadline {
        /// The task.
        task: Name,
    },
}

impl fmt::Display for TaskSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyTasks => write!(f, "more than {MAX_TASKS} tasks"),
            Self::TooManyAccelerators => write!(f, "more than {MAX_ACCELERATORS} accelerators"),
            Self::DuplicateName(n) => write!(f, "the name `{n}` is used twice"),
            Self::UnknownAccelerator { task } => {
                write!(
                    f,
                    "task `{task}` runs on an accelerator that is not declared"
                )
            }
            Self::ZeroTime { task, field } => {
                write!(f, "task `{task}`: {field} must be greater than zero")
            }
            Self::DeadlineAfterPeriod { task } => write!(
                f,
                "task `{task}`: deadline is longer than the period (jobs of one task may not overlap)"
            ),
            Self::BudgetAfterDeadline { task } => write!(
                f,
                "task `{task}`: budget is longer than the deadline, it can never be met"
            ),
        }
    }
}

/// A checked set of tasks and the accelerators they run on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskSet {
    accelerators: Vec<AcceleratorSpec, MAX_ACCELERATORS>,
    tasks: Vec<TaskSpec, MAX_TASKS>,
}

impl TaskSet {
    /// Checks and builds a set.
    pub fn new(accelerators: &[AcceleratorSpec], tasks: &[TaskSpec]) -> Result<Self, TaskSetError> {
        let accelerators =
            Vec::from_slice(accelerators).map_err(|_| TaskSetError::TooManyAccelerators)?;
        let tasks = Vec::from_slice(tasks).map_err(|_| TaskSetError::TooManyTasks)?;
        let set = Self {
            accelerators,
            tasks,
        };
        set.check()?;
        Ok(set)
    }

    fn check(&self) -> Result<(), TaskSetError> {
        for (i, a) in self.accelerators.iter().enumerate() {
            if self.accelerators[..i].iter().any(|b| b.name == a.name) {
                return Err(TaskSetError::DuplicateName(a.name.clone()));
            }
        }
        for (i, t) in self.tasks.iter().enumerate() {
            let task = || t.name.clone();
            if self.tasks[..i].iter().any(|u| u.name == t.name) {
                return Err(TaskSetError::DuplicateName(task()));
            }
            if usize::from(t.accelerator) >= self.accelerators.len() {
                return Err(TaskSetError::UnknownAccelerator { task: task() });
            }
            for (field, value) in [
                ("period", t.period_ns),
                ("deadline", t.deadline_ns),
                ("budget", t.budget_ns),
            ] {
                if value == 0 {
                    return Err(TaskSetError::ZeroTime {
                        task: task(),
                        field,
                    });
                }
            }
            if t.deadline_ns > t.period_ns {
                return Err(TaskSetError::DeadlineAfterPeriod { task: task() });
            }
            if t.budget_ns > t.deadline_ns {
                return Err(TaskSetError::BudgetAfterDeadline { task: task() });
            }
        }
        Ok(())
    }

    /// The tasks, indexed by [`TaskId`].
    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    /// The accelerators, indexed by [`AcceleratorId`].
    pub fn accelerators(&self) -> &[AcceleratorSpec] {
        &self.accelerators
    }

    /// Task `id`.
    pub fn task(&self, id: TaskId) -> &TaskSpec {
        &self.tasks[usize::from(id)]
    }

    /// Ids of the tasks on accelerator `accelerator`.
    pub fn tasks_on(&self, accelerator: AcceleratorId) -> impl Iterator<Item = TaskId> + '_ {
        self.tasks
            .iter()
            .enumerate()
            .filter(move |(_, t)| t.accelerator == accelerator)
            .map(|(i, _)| i as TaskId)
    }

    /// Whether task `a` is served before task `b` when both are ready: higher priority
    /// first, the lower index on ties (the order the executive and simulator use).
    pub fn runs_before(&self, a: TaskId, b: TaskId) -> bool {
        let (pa, pb) = (self.task(a).priority, self.task(b).priority);
        pa > pb || (pa == pb && a < b)
    }

    /// Sets every priority rate-monotonically: the shorter the period, the more urgent
    /// (ties broken by the shorter deadline, then by order). Optimal among fixed-priority
    /// assignments for preemptive, implicit-deadline sets.
    pub fn assign_rate_monotonic(&mut self) {
        let mut order: Vec<usize, MAX_TASKS> = (0..self.tasks.len()).collect();
        order.sort_unstable_by_key(|&i| (self.tasks[i].period_ns, self.tasks[i].deadline_ns, i));
        let n = order.len();
        for (rank, &i) in order.iter().enumerate() {
            self.tasks[i].priority = (n - rank) as u8;
        }
    }

    /// Sets task `id`'s budget (e.g. after measuring it).
    pub fn set_budget(&mut self, id: TaskId, budget_ns: u64) -> Result<(), TaskSetError> {
        let previous = core::mem::replace(&mut self.tasks[usize::from(id)].budget_ns, budget_ns);
        self.check().inspect_err(|_| {
            self.tasks[usize::from(id)].budget_ns = previous;
        })
    }

    /// Looks a task up by name.
    pub fn task_id(&self, name: &str) -> Option<TaskId> {
        self.tasks
            .iter()
            .position(|t| t.name == name)
            .map(|i| i as TaskId)
    }
}

/// A name from a `&str`, cut at [`NAME_LEN`] bytes (on a character boundary).
pub fn name(s: &str) -> Name {
    let mut out = Name::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(n: &str, period: u64, deadline: u64, budget: u64) -> TaskSpec {
        TaskSpec {
            name: name(n),
            accelerator: 0,
            period_ns: period,
            deadline_ns: deadline,
            budget_ns: budget,
            priority: 0,
            release_jitter_ns: 0,
            policy: OverrunPolicy::SkipNext,
        }
    }

    fn cpu() -> [AcceleratorSpec; 1] {
        [AcceleratorSpec {
            name: name("cpu0"),
            preemptive: true,
        }]
    }

    #[test]
    fn rate_monotonic_gives_short_periods_high_priority() {
        let mut set = TaskSet::new(
            &cpu(),
            &[
                task("slow", 100, 100, 1),
                task("fast", 10, 10, 1),
                task("mid", 50, 50, 1),
            ],
        )
        .unwrap();
        set.assign_rate_monotonic();
        let p: [u8; 3] = core::array::from_fn(|i| set.tasks()[i].priority);
        assert_eq!(p, [1, 3, 2]);
        assert!(set.runs_before(1, 2));
    }

    #[test]
    fn malformed_sets_are_refused_with_their_reason() {
        let bad = |t: TaskSpec| TaskSet::new(&cpu(), &[t]).unwrap_err();
        assert!(matches!(
            bad(task("a", 0, 1, 1)),
            TaskSetError::ZeroTime {
                field: "period",
                ..
            }
        ));
        assert!(matches!(
            bad(task("a", 10, 20, 1)),
            TaskSetError::DeadlineAfterPeriod { .. }
        ));
        assert!(matches!(
            bad(task("a", 10, 5, 6)),
            TaskSetError::BudgetAfterDeadline { .. }
        ));
        let mut off = task("a", 10, 10, 1);
        off.accelerator = 3;
        assert!(matches!(bad(off), TaskSetError::UnknownAccelerator { .. }));
        let dup = TaskSet::new(&cpu(), &[task("a", 10, 10, 1), task("a", 20, 20, 1)]);
        assert_eq!(dup.unwrap_err(), TaskSetError::DuplicateName(name("a")));
        let mut set = TaskSet::new(&cpu(), &[task("a", 10, 10, 1)]).unwrap();
        assert!(set.set_budget(0, 11).is_err());
        assert_eq!(
            set.task(0).budget_ns,
            1,
            "a refused budget leaves the old one"
        );
    }
}
