//! Accounting for contract 3, checked rather than assumed: every released frame ends in
//! exactly one state, and the totals add up per task and overall.
//!
//! A [`Ledger`] is a [`Recorder`]: it counts each task's frames by state and by the
//! fault that caused them ([`FaultPlan::cause`]), and folds each frame's sequence
//! number into a multiset hash (the wrapping sum of a 64-bit hash of each number). After
//! a run, [`Ledger::check`] compares the counts with the executive's and with the
//! schedule table's arithmetic, and the hash with the hash of `0..released`: a frame
//! recorded twice and another never would leave the count right but the hash wrong.
//! Nothing is stored per frame, so a ledger runs without a heap for any length of run.

use core::fmt;

use cadence_runtime::stats::FrameState;

use crate::executive::{Executive, FrameRecord, Recorder};
use crate::faults::{Fault, FaultPlan, splitmix64};
use crate::task::{MAX_TASKS, Name, TaskId, TaskSet};

/// The four states, in the order reports list them.
pub const STATES: [FrameState; 4] = [
    FrameState::Met,
    FrameState::Late,
    FrameState::Skipped,
    FrameState::Failed,
];

/// Rows of the cause table: one per [`Fault`], then frames no fault touched.
const CAUSES: usize = Fault::ALL.len() + 1;

fn state_index(state: FrameState) -> usize {
    match state {
        FrameState::Met => 0,
        FrameState::Late => 1,
        FrameState::Skipped => 2,
        FrameState::Failed => 3,
    }
}

fn cause_index(cause: Option<Fault>) -> usize {
    cause.map_or(Fault::ALL.len(), Fault::index)
}

/// A frame's contribution to the multiset hash of its task's sequence numbers.
fn seq_hash(seq: u64) -> u64 {
    splitmix64(seq)
}

#[derive(Clone, Copy, Debug, Default)]
struct TaskLedger {
    by_cause: [[u64; STATES.len()]; CAUSES],
    seq_hash: u64,
}

/// Counts of every frame recorded; see the module docs.
#[derive(Clone, Debug)]
pub struct Ledger<'t> {
    set: &'t TaskSet,
    plan: FaultPlan<'t>,
    tasks: [TaskLedger; MAX_TASKS],
}

impl<'t> Ledger<'t> {
    /// An empty ledger for `set`, naming causes by `plan`.
    pub fn new(set: &'t TaskSet, plan: FaultPlan<'t>) -> Self {
        Self {
            set,
            plan,
            tasks: [TaskLedger::default(); MAX_TASKS],
        }
    }

    /// Frames of task `task` that ended in `state` with `cause` (`None`: no fault of
    /// their own).
    pub fn count(&self, task: TaskId, cause: Option<Fault>, state: FrameState) -> u64 {
        self.tasks[usize::from(task)].by_cause[cause_index(cause)][state_index(state)]
    }

    /// Frames of task `task` that ended in `state`.
    pub fn state(&self, task: TaskId, state: FrameState) -> u64 {
        self.tasks[usize::from(task)]
            .by_cause
            .iter()
            .map(|row| row[state_index(state)])
            .sum()
    }

    /// Frames of task `task` recorded, in any state.
    pub fn recorded(&self, task: TaskId) -> u64 {
        STATES.iter().map(|&s| self.state(task, s)).sum()
    }

    /// Frames recorded over all tasks.
    pub fn total(&self) -> u64 {
        self.task_ids().map(|id| self.recorded(id)).sum()
    }

    fn task_ids(&self) -> core::ops::Range<TaskId> {
        0..self.set.tasks().len() as TaskId
    }

    /// Checks a finished run that released `frames` jobs: for every task, the
    /// executive released what the schedule table gives for `frames`, every release
    /// was recorded, and the sequence numbers recorded are `0..released`, each once;
    /// over all tasks, `frames` were recorded.
    pub fn check(&self, executive: &Executive<'_>, frames: u64) -> Result<(), AccountingError> {
        let table = self.plan.table();
        for id in self.task_ids() {
            let task = || self.set.task(id).name.clone();
            let expected = table.releases_in(id, frames);
            let released = u64::from(executive.counts(id).released);
            if released != expected {
                return Err(AccountingError::Released {
                    task: task(),
                    expected,
                    released,
                });
            }
            let recorded = self.recorded(id);
            if recorded != released {
                return Err(AccountingError::Unrecorded {
                    task: task(),
                    released,
                    recorded,
                });
            }
            let hash = (0..released).fold(0u64, |h, seq| h.wrapping_add(seq_hash(seq)));
            if hash != self.tasks[usize::from(id)].seq_hash {
                return Err(AccountingError::NotOnce { task: task() });
            }
        }
        let recorded = self.total();
        if recorded != frames {
            return Err(AccountingError::Total { frames, recorded });
        }
        Ok(())
    }
}

impl Recorder for Ledger<'_> {
    fn record(&mut self, frame: &FrameRecord) {
        let cause = self.plan.cause(frame);
        let task = &mut self.tasks[usize::from(frame.task)];
        task.by_cause[cause_index(cause)][state_index(frame.state)] += 1;
        task.seq_hash = task.seq_hash.wrapping_add(seq_hash(u64::from(frame.seq)));
    }
}

/// Why a run's frames do not add up (contract 3 broken).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountingError {
    /// The executive released another number of jobs than the table gives.
    Released {
        /// The task.
        task: Name,
        /// Releases the schedule table gives.
        expected: u64,
        /// Releases the executive counted.
        released: u64,
    },
    /// Some released frames were never recorded, or more were recorded than released.
    Unrecorded {
        /// The task.
        task: Name,
        /// Releases the executive counted.
        released: u64,
        /// Frames recorded.
        recorded: u64,
    },
    /// As many frames as releases were recorded, but not each release once.
    NotOnce {
        /// The task.
        task: Name,
    },
    /// The tasks' frames do not sum to the jobs released.
    Total {
        /// Jobs released.
        frames: u64,
        /// Frames recorded over all tasks.
        recorded: u64,
    },
}

impl fmt::Display for AccountingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Released {
                task,
                expected,
                released,
            } => write!(
                f,
                "task `{task}` released {released} frames where the schedule table gives \
                 {expected}: the simulator lost or invented releases"
            ),
            Self::Unrecorded {
                task,
                released,
                recorded,
            } => write!(
                f,
                "task `{task}` released {released} frames but {recorded} were recorded: \
                 frames vanished or were recorded twice"
            ),
            Self::NotOnce { task } => write!(
                f,
                "task `{task}`: the frames recorded are not each release exactly once (one \
                 was recorded twice and another never)"
            ),
            Self::Total { frames, recorded } => write!(
                f,
                "{frames} frames were released but {recorded} recorded over all tasks"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultMix;
    use crate::sim::{Budgets, Simulator};
    use crate::table::ScheduleTable;
    use crate::task::{AcceleratorSpec, TaskSpec, name};

    fn set() -> TaskSet {
        let acc = AcceleratorSpec {
            name: name("cpu0"),
            preemptive: false,
        };
        let tasks = [
            TaskSpec::periodic("camera", 0, 10, 2, 2),
            TaskSpec::periodic("lidar", 0, 30, 5, 1),
        ];
        TaskSet::new(&[acc], &tasks).unwrap()
    }

    /// Runs 100 frames; `tamper` may change the record the ledger sees, or drop it.
    fn check_with(
        tamper: impl Fn(&FrameRecord) -> Option<FrameRecord>,
    ) -> Result<(), AccountingError> {
        let set = set();
        let table = ScheduleTable::new(&set).unwrap();
        let mut ledger = Ledger::new(&set, FaultPlan::new(0, FaultMix::default(), &table));
        let mut sim = Simulator::new(&set, &table);
        sim.run(100, &mut Budgets, &mut |r: &FrameRecord| {
            if let Some(r) = tamper(r) {
                ledger.record(&r);
            }
        });
        ledger.check(sim.executive(), 100)
    }

    #[test]
    fn an_honest_run_adds_up() {
        assert_eq!(check_with(|r| Some(*r)), Ok(()));
    }

    #[test]
    fn a_lost_frame_is_caught() {
        let err = check_with(|r| (r.task != 1 || r.seq != 3).then_some(*r)).unwrap_err();
        assert!(
            matches!(&err, AccountingError::Unrecorded { task, released: 25, recorded: 24 } if task == "lidar"),
            "{err}"
        );
    }

    #[test]
    fn a_frame_recorded_in_place_of_another_is_caught() {
        let err = check_with(|r| {
            let mut r = *r;
            if r.task == 0 && r.seq == 7 {
                r.seq = 6;
            }
            Some(r)
        })
        .unwrap_err();
        assert_eq!(
            err,
            AccountingError::NotOnce {
                task: name("camera")
            }
        );
    }

    #[test]
    fn releases_are_checked_against_the_table() {
        let set = set();
        let table = ScheduleTable::new(&set).unwrap();
        let plan = FaultPlan::new(0, FaultMix::default(), &table);
        let mut ledger = Ledger::new(&set, plan);
        let mut sim = Simulator::new(&set, &table);
        sim.run(40, &mut Budgets, &mut ledger);
        let err = ledger.check(sim.executive(), 41).unwrap_err();
        assert!(matches!(err, AccountingError::Released { .. }), "{err}");
        assert_eq!(ledger.count(0, None, FrameState::Met), 30);
        assert_eq!(ledger.state(1, FrameState::Met), 10);
        assert_eq!(ledger.count(1, None, FrameState::Late), 0);
    }
}
