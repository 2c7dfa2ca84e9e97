//! The executive: the one state machine that turns releases and completions into
//! dispatch decisions and frame records, whoever drives it.
//!
//! It holds no clock and runs no jobs. A driver tells it what happened and when
//! ([`Executive::release`], [`Executive::complete`], [`Executive::expire`]) and carries
//! out the [`Dispatch`] it answers with: the simulator ([`crate::sim`]) advances a
//! simulated clock, the host driver (`crate::host`, feature `std`) sends the job to an
//! accelerator's worker thread, firmware would start a DMA. So the overrun policies,
//! the priority order and the accounting are written, and tested, once.
//!
//! Accounting (contract 3): every released job ends in exactly one [`FrameState`],
//! handed to the [`Recorder`] exactly once.

use heapless::Vec;

use cadence_runtime::stats::{FrameState, FrameTimes, TaskStats};

use crate::task::{AcceleratorId, MAX_ACCELERATORS, MAX_TASKS, OverrunPolicy, TaskId, TaskSet};

/// Jobs alive (queued or running) on one accelerator at most: two per task (one
/// running, one waiting under the degrade policy).
const MAX_ALIVE: usize = 2 * MAX_TASKS;

/// Which implementation a job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The task's own model.
    Primary,
    /// The fallback of the degrade policy.
    Fallback,
}

/// A job the driver must now run on `accelerator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// Where it runs.
    pub accelerator: AcceleratorId,
    /// Its task.
    pub task: TaskId,
    /// The task's release count when it was released (0-based): names the frame.
    pub seq: u32,
    /// Which implementation to run.
    pub mode: Mode,
    /// Its release instant.
    pub release_ns: u64,
    /// Its absolute deadline.
    pub deadline_ns: u64,
    /// `true` when a preempted job continues where it stopped.
    pub resume: bool,
    /// The job this one preempts, if the driver was running one.
    pub displaces: Option<Displaced>,
}

/// A running job preempted by a more urgent one; a later [`Dispatch`] resumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Displaced {
    /// Its task.
    pub task: TaskId,
    /// Its sequence number.
    pub seq: u32,
}

/// A running job the abort policy cut off a preemptive accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The accelerator to stop.
    pub accelerator: AcceleratorId,
    /// The task of the job cut.
    pub task: TaskId,
    /// Its sequence number.
    pub seq: u32,
    /// What runs there now, if anything is ready.
    pub next: Option<Dispatch>,
}

/// How one frame ended, with everything the trace shows about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRecord {
    /// Its task.
    pub task: TaskId,
    /// Its sequence number.
    pub seq: u32,
    /// Its accelerator.
    pub accelerator: AcceleratorId,
    /// Which implementation ran (or would have).
    pub mode: Mode,
    /// Release instant.
    pub release_ns: u64,
    /// First start, if it ever started.
    pub start_ns: Option<u64>,
    /// End, if it ran to the end.
    pub end_ns: Option<u64>,
    /// Absolute deadline.
    pub deadline_ns: u64,
    /// How it ended.
    pub state: FrameState,
}

impl FrameRecord {
    /// The instants the statistics need, for frames that ran to the end.
    pub fn times(&self) -> Option<FrameTimes> {
        Some(FrameTimes {
            capture_ns: self.release_ns,
            release_ns: self.release_ns,
            start_ns: self.start_ns?,
            end_ns: self.end_ns?,
        })
    }
}

/// Why a released frame's sensor input cannot run; see [`Executive::release_refused`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputFault {
    /// The sensor frame never arrived by its release: there is nothing to run. The
    /// frame is recorded `skipped` (it was not run), so a lost frame is counted, not
    /// silently absent.
    Missing,
    /// The sensor frame arrived but failed its checks (checksum, shape, a NaN): it is
    /// refused before any model runs on it and recorded `failed` (the error contract 6
    /// asks for, on the frame it concerns).
    Corrupted,
}

impl InputFault {
    /// The state a frame with this fault ends in.
    pub fn state(self) -> FrameState {
        match self {
            Self::Missing => FrameState::Skipped,
            Self::Corrupted => FrameState::Failed,
        }
    }
}

/// Where frame records go: statistics, a trace, a log line.
pub trait Recorder {
    /// Called exactly once per released frame, when its state is final.
    fn record(&mut self, frame: &FrameRecord);
}

impl<F: FnMut(&FrameRecord)> Recorder for F {
    fn record(&mut self, frame: &FrameRecord) {
        self(frame)
    }
}

/// Per-task statistics, indexed by [`TaskId`].
impl Recorder for [TaskStats] {
    fn record(&mut self, frame: &FrameRecord) {
        self[usize::from(frame.task)].record(frame.state, frame.times().as_ref());
    }
}

#[derive(Clone, Copy, Debug)]
struct Job {
    task: TaskId,
    seq: u32,
    release_ns: u64,
    deadline_ns: u64,
    mode: Mode,
    start_ns: Option<u64>,
    /// Recorded as skipped by the abort policy; still occupies a non-preemptive
    /// accelerator until its worker finishes.
    abandoned: bool,
}

impl Job {
    fn record(
        &self,
        accelerator: AcceleratorId,
        end_ns: Option<u64>,
        state: FrameState,
    ) -> FrameRecord {
        FrameRecord {
            task: self.task,
            seq: self.seq,
            accelerator,
            mode: self.mode,
            release_ns: self.release_ns,
            start_ns: self.start_ns,
            end_ns,
            deadline_ns: self.deadline_ns,
            state,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct AcceleratorState {
    running: Option<Job>,
    ready: Vec<Job, MAX_ALIVE>,
}

#[derive(Clone, Copy, Debug, Default)]
struct TaskState {
    released: u32,
    /// Jobs queued or running and not abandoned.
    alive: u8,
    degraded: bool,
}

/// Counts the executive keeps of every task (for checks that nothing vanished).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Jobs released.
    pub released: u32,
    /// Jobs queued or running now.
    pub alive: u8,
}

/// The executive's state; see the module docs.
#[derive(Clone, Debug)]
pub struct Executive<'s> {
    set: &'s TaskSet,
    tasks: [TaskState; MAX_TASKS],
    accelerators: [AcceleratorState; MAX_ACCELERATORS],
}

impl<'s> Executive<'s> {
    /// An idle executive for `set` (which should have passed the analysis).
    pub fn new(set: &'s TaskSet) -> Self {
        Self {
            set,
            tasks: [TaskState::default(); MAX_TASKS],
            accelerators: core::array::from_fn(|_| AcceleratorState::default()),
        }
    }

    /// Task `id`'s counts.
    pub fn counts(&self, id: TaskId) -> TaskCounts {
        let t = &self.tasks[usize::from(id)];
        TaskCounts {
            released: t.released,
            alive: t.alive,
        }
    }

    /// Whether any job is queued or running (abandoned ones included: their worker is
    /// still busy).
    pub fn busy(&self) -> bool {
        self.accelerators[..self.set.accelerators().len()]
            .iter()
            .any(|a| a.running.is_some() || !a.ready.is_empty())
    }

    /// Whether job `seq` of `task` waits in a ready queue.
    pub fn is_queued(&self, task: TaskId, seq: u32) -> bool {
        let acc = &self.accelerators[usize::from(self.set.task(task).accelerator)];
        acc.ready.iter().any(|j| j.task == task && j.seq == seq)
    }

    /// Releases the next job of `task` at `now_ns`. Answers the dispatch to carry out,
    /// if the job (or a preemption) starts now.
    pub fn release(
        &mut self,
        task: TaskId,
        now_ns: u64,
        recorder: &mut (impl Recorder + ?Sized),
    ) -> Option<Dispatch> {
        let job = self.next_job(task, now_ns);
        let spec = self.set.task(task);
        let state = &mut self.tasks[usize::from(task)];
        let room = match spec.policy {
            OverrunPolicy::Degrade { .. } => state.alive < 2,
            OverrunPolicy::SkipNext | OverrunPolicy::Abort => state.alive == 0,
        };
        let accelerator = spec.accelerator;
        let acc = &mut self.accelerators[usize::from(accelerator)];
        if !room || acc.ready.push(job).is_err() {
            recorder.record(&job.record(accelerator, None, FrameState::Skipped));
            return None;
        }
        state.alive += 1;
        self.dispatch(accelerator, now_ns)
    }

    /// Releases the next job of `task` at `now_ns` when its sensor input cannot run
    /// (`fault`): the frame takes its sequence number and is recorded at once in
    /// [`InputFault::state`], with no start or end. Nothing is queued, so the task's
    /// other jobs and its degrade state are untouched: the next frame with good input
    /// runs as it would have.
    pub fn release_refused(
        &mut self,
        task: TaskId,
        now_ns: u64,
        fault: InputFault,
        recorder: &mut (impl Recorder + ?Sized),
    ) {
        let job = self.next_job(task, now_ns);
        let accelerator = self.set.task(task).accelerator;
        recorder.record(&job.record(accelerator, None, fault.state()));
    }

    /// Task `task`'s next job, released at `now_ns`: takes the next sequence number.
    fn next_job(&mut self, task: TaskId, now_ns: u64) -> Job {
        let state = &mut self.tasks[usize::from(task)];
        let job = Job {
            task,
            seq: state.released,
            release_ns: now_ns,
            deadline_ns: now_ns.saturating_add(self.set.task(task).deadline_ns),
            mode: Mode::Primary,
            start_ns: None,
            abandoned: false,
        };
        state.released += 1;
        job
    }

    /// The job running on `accelerator` ended at `end_ns`: `ok` when it produced its
    /// outputs, `false` when the backend failed. `start_ns` is when it first started
    /// (the driver's clock; workers know it best). Answers the next dispatch there.
    ///
    /// A completion on an idle accelerator is ignored (answers `None`).
    pub fn complete(
        &mut self,
        accelerator: AcceleratorId,
        start_ns: u64,
        end_ns: u64,
        ok: bool,
        recorder: &mut (impl Recorder + ?Sized),
    ) -> Option<Dispatch> {
        let mut job = self.accelerators[usize::from(accelerator)].running.take()?;
        if !job.abandoned {
            job.start_ns = Some(start_ns);
            let spec = self.set.task(job.task);
            let in_time = end_ns <= job.deadline_ns;
            let state = match (ok, in_time, spec.policy) {
                (false, _, _) => FrameState::Failed,
                (true, true, _) => FrameState::Met,
                (true, false, OverrunPolicy::Abort) => FrameState::Skipped,
                (true, false, _) => FrameState::Late,
            };
            let end = (state != FrameState::Skipped).then_some(end_ns);
            recorder.record(&job.record(accelerator, end, state));
            let task = &mut self.tasks[usize::from(job.task)];
            task.alive -= 1;
            if let OverrunPolicy::Degrade { .. } = spec.policy {
                task.degraded = state != FrameState::Met;
            }
        }
        self.dispatch(accelerator, end_ns)
    }

    /// The earliest deadline the abort policy must act on, if any: call
    /// [`Executive::expire`] then.
    pub fn next_expiry(&self) -> Option<u64> {
        self.accelerators[..self.set.accelerators().len()]
            .iter()
            .flat_map(|a| a.running.iter().chain(a.ready.iter()))
            .filter(|j| !j.abandoned && self.set.task(j.task).policy == OverrunPolicy::Abort)
            .map(|j| j.deadline_ns)
            .min()
    }

    /// Applies the abort policy at `now_ns`: jobs of abort tasks whose deadline has
    /// passed are recorded `skipped`; queued ones are dropped, running ones are cut on a
    /// preemptive accelerator and left to finish, unreported, on a non-preemptive one.
    /// Answers at most one cut per call; call again while it answers `Some`.
    pub fn expire(&mut self, now_ns: u64, recorder: &mut (impl Recorder + ?Sized)) -> Option<Cut> {
        let set = self.set;
        let expired = |j: &Job| {
            !j.abandoned
                && j.deadline_ns <= now_ns
                && set.task(j.task).policy == OverrunPolicy::Abort
        };
        for a in 0..set.accelerators().len() {
            let accelerator = a as AcceleratorId;
            let acc = &mut self.accelerators[a];
            while let Some(i) = acc.ready.iter().position(expired) {
                let job = acc.ready.remove(i);
                recorder.record(&job.record(accelerator, None, FrameState::Skipped));
                self.tasks[usize::from(job.task)].alive -= 1;
            }
            let Some(job) = acc.running.as_mut().filter(|j| expired(j)) else {
                continue;
            };
            job.abandoned = true;
            let job = *job;
            recorder.record(&job.record(accelerator, None, FrameState::Skipped));
            self.tasks[usize::from(job.task)].alive -= 1;
            if set.accelerators()[a].preemptive {
                self.accelerators[a].running = None;
                return Some(Cut {
                    accelerator,
                    task: job.task,
                    seq: job.seq,
                    next: self.dispatch(accelerator, now_ns),
                });
            }
        }
        None
    }

    /// Picks the job to run on `accelerator`: the most urgent ready one, if nothing
    /// runs or (preemptive accelerators) if it outranks the running one.
    fn dispatch(&mut self, accelerator: AcceleratorId, now_ns: u64) -> Option<Dispatch> {
        let set = self.set;
        let preemptive = set.accelerators()[usize::from(accelerator)].preemptive;
        let acc = &mut self.accelerators[usize::from(accelerator)];
        let best = (0..acc.ready.len()).reduce(|best, i| {
            let (a, b) = (&acc.ready[i], &acc.ready[best]);
            let earlier = a.task == b.task && a.seq < b.seq;
            if earlier || (a.task != b.task && set.runs_before(a.task, b.task)) {
                i
            } else {
                best
            }
        })?;
        let displaces = match &acc.running {
            None => None,
            Some(running) => {
                let candidate = &acc.ready[best];
                if !preemptive
                    || running.abandoned
                    || !set.runs_before(candidate.task, running.task)
                {
                    return None;
                }
                Some(Displaced {
                    task: running.task,
                    seq: running.seq,
                })
            }
        };
        let mut job = acc.ready.remove(best);
        if let Some(preempted) = acc.running.take() {
            // Cannot fail: `best` was just removed from the same queue.
            let _ = acc.ready.push(preempted);
        }
        let resume = job.start_ns.is_some();
        if !resume {
            job.start_ns = Some(now_ns);
            job.mode = if self.tasks[usize::from(job.task)].degraded {
                Mode::Fallback
            } else {
                Mode::Primary
            };
        }
        acc.running = Some(job);
        Some(Dispatch {
            accelerator,
            task: job.task,
            seq: job.seq,
            mode: job.mode,
            release_ns: job.release_ns,
            deadline_ns: job.deadline_ns,
            resume,
            displaces,
        })
    }
}
