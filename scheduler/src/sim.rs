//! The simulator: the [`Executive`] driven by a simulated clock and an execution-time
//! model instead of real jobs.
//!
//! Releases follow the [`ScheduleTable`] from t = 0, where every task releases together
//! (the critical instant), and each accelerator follows its preemption model, so the
//! simulator and the analysis judge the same system. Everything is integer
//! nanoseconds and events at one instant are handled in a fixed order (completions,
//! then abort deadlines, then releases in table order), so a run is bit-for-bit
//! reproducible.

use heapless::Vec;

use cadence_hal::{Clock, SimClock};

use crate::executive::{Cut, Dispatch, Executive, InputFault, Mode, Recorder};
use crate::table::ScheduleTable;
use crate::task::{AcceleratorId, MAX_ACCELERATORS, MAX_TASKS, OverrunPolicy, TaskId, TaskSet};

/// How long a simulated job runs, and whether it fails at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Execution {
    /// Execution time.
    pub ns: u64,
    /// `true`: the backend reports a fault when the job ends.
    pub fails: bool,
}

/// Where simulated execution times come from: recorded budgets, measured traces, fault
/// injection.
pub trait ExecutionModel {
    /// The execution of job `seq` of `task` running in `mode`.
    fn execution(&mut self, set: &TaskSet, task: TaskId, seq: u32, mode: Mode) -> Execution;

    /// Whether job `seq` of `task` has its sensor input at its release: `None` when it
    /// arrived intact (the default: every input does), or why it cannot run, in which
    /// case the simulator hands it to [`Executive::release_refused`] and it never runs.
    /// Asked once per release, in release order.
    fn input_fault(&mut self, _set: &TaskSet, _task: TaskId, _seq: u32) -> Option<InputFault> {
        None
    }
}

/// Every job runs exactly its budget (the fallback's under the degrade policy): the
/// worst case the analysis assumes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Budgets;

impl ExecutionModel for Budgets {
    fn execution(&mut self, set: &TaskSet, task: TaskId, _seq: u32, mode: Mode) -> Execution {
        let spec = set.task(task);
        let ns = match (mode, spec.policy) {
            (Mode::Fallback, OverrunPolicy::Degrade { fallback_budget_ns }) => fallback_budget_ns,
            _ => spec.budget_ns,
        };
        Execution { ns, fails: false }
    }
}

impl<F: FnMut(&TaskSet, TaskId, u32, Mode) -> Execution> ExecutionModel for F {
    fn execution(&mut self, set: &TaskSet, task: TaskId, seq: u32, mode: Mode) -> Execution {
        self(set, task, seq, mode)
    }
}

#[derive(Clone, Copy, Debug)]
struct Running {
    task: TaskId,
    seq: u32,
    first_start_ns: u64,
    /// When it last started or resumed.
    resumed_ns: u64,
    remaining_ns: u64,
    fails: bool,
}

impl Running {
    fn end_ns(&self) -> u64 {
        self.resumed_ns + self.remaining_ns
    }
}

/// What a simulation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimOutcome {
    /// Jobs released.
    pub released: u64,
    /// Simulated time at which the last job ended.
    pub end_ns: u64,
}

/// A simulation of one task set; see the module docs.
#[derive(Debug)]
pub struct Simulator<'s> {
    set: &'s TaskSet,
    table: &'s ScheduleTable,
    executive: Executive<'s>,
    clock: SimClock,
    running: [Option<Running>; MAX_ACCELERATORS],
    suspended: Vec<Running, MAX_TASKS>,
}

impl<'s> Simulator<'s> {
    /// A simulator at t = 0.
    pub fn new(set: &'s TaskSet, table: &'s ScheduleTable) -> Self {
        Self {
            set,
            table,
            executive: Executive::new(set),
            clock: SimClock::new(),
            running: [None; MAX_ACCELERATORS],
            suspended: Vec::new(),
        }
    }

    /// Releases `frames` jobs (in table order) and runs until every one of them has
    /// ended, each recorded once in `recorder`.
    pub fn run(
        &mut self,
        frames: u64,
        model: &mut impl ExecutionModel,
        recorder: &mut (impl Recorder + ?Sized),
    ) -> SimOutcome {
        let mut releases = self.table.cursor();
        let mut released = 0;
        loop {
            let next_release = (released < frames).then(|| releases.peek().0);
            let next_end = self
                .running
                .iter()
                .enumerate()
                .filter_map(|(a, r)| r.map(|r| (r.end_ns(), a as AcceleratorId)))
                .min();
            let next_expiry = self.executive.next_expiry();
            let Some(now) = [next_release, next_end.map(|e| e.0), next_expiry]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            self.clock.advance_to(now);
            if let Some((_, accelerator)) = next_end.filter(|e| e.0 == now) {
                self.end_job(accelerator, model, recorder);
            } else if next_expiry == Some(now) {
                while let Some(cut) = self.executive.expire(now, recorder) {
                    self.cut(cut, model);
                }
                // Preempted jobs dropped from the ready queue never resume.
                let executive = &self.executive;
                self.suspended
                    .retain(|r| executive.is_queued(r.task, r.seq));
            } else {
                let (_, task) = releases.peek();
                releases.advance();
                released += 1;
                let seq = self.executive.counts(task).released;
                if let Some(fault) = model.input_fault(self.set, task, seq) {
                    self.executive.release_refused(task, now, fault, recorder);
                } else if let Some(d) = self.executive.release(task, now, recorder) {
                    self.start(d, model);
                }
            }
        }
        SimOutcome {
            released,
            end_ns: self.clock.now_ns(),
        }
    }

    /// The executive (for its counts).
    pub fn executive(&self) -> &Executive<'s> {
        &self.executive
    }

    fn end_job(
        &mut self,
        accelerator: AcceleratorId,
        model: &mut impl ExecutionModel,
        recorder: &mut (impl Recorder + ?Sized),
    ) {
        let Some(job) = self.running[usize::from(accelerator)].take() else {
            return;
        };
        let now = self.clock.now_ns();
        if let Some(d) =
            self.executive
                .complete(accelerator, job.first_start_ns, now, !job.fails, recorder)
        {
            self.start(d, model);
        }
    }

    fn cut(&mut self, cut: Cut, model: &mut impl ExecutionModel) {
        self.running[usize::from(cut.accelerator)] = None;
        if let Some(d) = cut.next {
            self.start(d, model);
        }
    }

    fn start(&mut self, d: Dispatch, model: &mut impl ExecutionModel) {
        let now = self.clock.now_ns();
        let slot = &mut self.running[usize::from(d.accelerator)];
        if let (Some(shown), Some(mut running)) = (d.displaces, slot.take()) {
            debug_assert_eq!((shown.task, shown.seq), (running.task, running.seq));
            running.remaining_ns -= now - running.resumed_ns;
            // Cannot fail: at most one suspended job per task.
            let _ = self.suspended.push(running);
        }
        let job = if d.resume {
            let i = self
                .suspended
                .iter()
                .position(|r| r.task == d.task && r.seq == d.seq)
                .expect("the executive resumes only jobs it preempted");
            let mut job = self.suspended.swap_remove(i);
            job.resumed_ns = now;
            job
        } else {
            let e = model.execution(self.set, d.task, d.seq, d.mode);
            Running {
                task: d.task,
                seq: d.seq,
                first_start_ns: now,
                resumed_ns: now,
                remaining_ns: e.ns,
                fails: e.fails,
            }
        };
        self.running[usize::from(d.accelerator)] = Some(job);
    }
}
