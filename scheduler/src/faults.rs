//! Fault injection for the simulator: a seeded, reproducible mix of what a vehicle
//! meets (jobs that overrun their budget, backend errors, corrupted and dropped sensor
//! frames) and a burst window in which every job runs slower (thermal throttling, a
//! noisy neighbour on the bus) long enough to make the set unschedulable for a while.
//!
//! Every decision is a hash of the seed, the fault kind, the task, the job's sequence
//! number and its mode (a counter-based generator built on SplitMix64), never a draw
//! from a stream. So the faults do not depend on the order the simulator asks in, one
//! seed gives the same faults on the same frames, another seed other ones, and the
//! cause of any recorded frame can be named after the fact ([`FaultPlan::cause`]).
//!
//! How each fault ends up recorded (every frame still ends in exactly one state):
//!
//! | fault | what happens | state of that frame |
//! |---|---|---|
//! | dropped input | released, nothing to run: [`InputFault::Missing`] | `skipped`, no start |
//! | corrupted input | released, refused by its checks: [`InputFault::Corrupted`] | `failed`, no start |
//! | backend error | the job runs its time, the backend reports an error at the end | `failed` |
//! | overrun | the job runs 1.5 to 2.5 times its budget | `late` (skip-next, degrade) or `skipped` (abort), by policy |
//! | burst | jobs released in the window run `factor` times longer | as an overrun |
//!
//! An overrun also delays the jobs queued behind it: those frames carry no fault of
//! their own (their cause is `None`) but may end late or skipped by policy.

use core::fmt;

use heapless::Vec;

use crate::executive::{FrameRecord, InputFault, Mode};
use crate::sim::{Budgets, Execution, ExecutionModel};
use crate::table::ScheduleTable;
use crate::task::{MAX_TASKS, OverrunPolicy, TaskId, TaskSet, TaskSetError, TaskSpec};

/// Rates are in parts per million of the jobs (or releases) they apply to.
pub const PPM: u32 = 1_000_000;

/// Shortest overrun, as a multiple of the budget in parts per million (1.5 times).
const OVERRUN_MIN_PPM: u64 = 1_500_000;
/// Spread of overruns above [`OVERRUN_MIN_PPM`] (up to 2.5 times the budget).
const OVERRUN_SPREAD_PPM: u64 = 1_000_000;

/// One kind of injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The sensor frame never arrived.
    DroppedInput,
    /// The sensor frame arrived damaged.
    CorruptedInput,
    /// The backend reported an error when the job ended.
    BackendError,
    /// The job ran over its budget.
    Overrun,
    /// The job was released inside the burst window and ran slower.
    Burst,
}

impl Fault {
    /// Every kind, in the order reports list them.
    pub const ALL: [Self; 5] = [
        Self::DroppedInput,
        Self::CorruptedInput,
        Self::BackendError,
        Self::Overrun,
        Self::Burst,
    ];

    /// Its position in [`Fault::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Mixed into the hash so each kind draws independently of the others.
    fn salt(self) -> u64 {
        (self as u64 + 1) << 56
    }
}

impl From<InputFault> for Fault {
    fn from(fault: InputFault) -> Self {
        match fault {
            InputFault::Missing => Self::DroppedInput,
            InputFault::Corrupted => Self::CorruptedInput,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DroppedInput => "dropped input",
            Self::CorruptedInput => "corrupted input",
            Self::BackendError => "backend error",
            Self::Overrun => "overrun",
            Self::Burst => "burst",
        })
    }
}

/// A window of simulated time in which every job released runs `factor_percent` / 100
/// times longer than it would have (its fallback included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burst {
    /// First release instant inside the window.
    pub from_ns: u64,
    /// First release instant after it.
    pub until_ns: u64,
    /// Slow-down, in percent of the normal execution time (200: twice as long).
    pub factor_percent: u32,
}

impl Burst {
    /// Whether a job released at `release_ns` runs inside the burst.
    pub fn covers(&self, release_ns: u64) -> bool {
        (self.from_ns..self.until_ns).contains(&release_ns)
    }

    fn inflate(&self, ns: u64) -> u64 {
        (u128::from(ns) * u128::from(self.factor_percent) / 100) as u64
    }

    /// `set` with every budget (and fallback budget) slowed as the burst slows jobs:
    /// what the analysis would be asked to accept during the window. An error says a
    /// budget no longer fits its deadline at all.
    pub fn inflated(&self, set: &TaskSet) -> Result<TaskSet, TaskSetError> {
        let tasks: Vec<TaskSpec, MAX_TASKS> = set
            .tasks()
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.budget_ns = self.inflate(t.budget_ns);
                if let OverrunPolicy::Degrade { fallback_budget_ns } = &mut t.policy {
                    *fallback_budget_ns = self.inflate(*fallback_budget_ns);
                }
                t
            })
            .collect();
        TaskSet::new(set.accelerators(), &tasks)
    }
}

/// How often each fault happens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultMix {
    /// Share of jobs that run 1.5 to 2.5 times their budget, in [`PPM`].
    pub overrun_ppm: u32,
    /// Share of jobs whose backend fails, in [`PPM`].
    pub backend_error_ppm: u32,
    /// Share of releases whose sensor frame arrives corrupted, in [`PPM`].
    pub corrupted_ppm: u32,
    /// Share of releases whose sensor frame never arrives, in [`PPM`].
    pub dropped_ppm: u32,
    /// The slow window, if any.
    pub burst: Option<Burst>,
}

impl FaultMix {
    /// The soak mix for a run whose releases span `span_ns` of simulated time: 1 % of
    /// jobs overrun, 0.5 % hit a backend error, 0.2 % of frames arrive corrupted and
    /// 0.5 % never arrive; from the middle of the run, for a fiftieth of it, every job
    /// takes twice as long.
    pub fn soak(span_ns: u64) -> Self {
        let from_ns = span_ns / 2;
        Self {
            overrun_ppm: 10_000,
            backend_error_ppm: 5_000,
            corrupted_ppm: 2_000,
            dropped_ppm: 5_000,
            burst: Some(Burst {
                from_ns,
                until_ns: from_ns + span_ns / 50,
                factor_percent: 200,
            }),
        }
    }

    /// Whether any fault can happen.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The faults drawn for one job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobFaults {
    /// The overrun, as a multiple of the budget in [`PPM`], if the job overruns.
    pub overrun_ppm: Option<u64>,
    /// Whether its backend fails.
    pub backend_error: bool,
    /// Whether it was released inside the burst window.
    pub burst: bool,
}

/// The faults of one simulation: a mix, a seed, and the schedule table (it says when
/// each job is released, for the burst window). A pure function of its inputs.
#[derive(Clone, Copy, Debug)]
pub struct FaultPlan<'t> {
    seed: u64,
    mix: FaultMix,
    table: &'t ScheduleTable,
}

impl<'t> FaultPlan<'t> {
    /// The faults `mix` gives with `seed` on the releases of `table`.
    pub fn new(seed: u64, mix: FaultMix, table: &'t ScheduleTable) -> Self {
        Self { seed, mix, table }
    }

    /// The mix.
    pub fn mix(&self) -> &FaultMix {
        &self.mix
    }

    /// The schedule table the plan follows.
    pub fn table(&self) -> &'t ScheduleTable {
        self.table
    }

    /// A 64-bit draw for `fault` on job `seq` of `task` in `mode`.
    fn draw(&self, fault: Fault, task: TaskId, seq: u32, mode: Mode) -> u64 {
        let job =
            (u64::from(task) << 40) | (u64::from(seq) << 1) | u64::from(mode == Mode::Fallback);
        splitmix64(self.seed ^ splitmix64(job ^ fault.salt()))
    }

    /// Whether a draw falls within a rate in [`PPM`].
    fn hits(draw: u64, rate_ppm: u32) -> bool {
        draw % u64::from(PPM) < u64::from(rate_ppm)
    }

    /// The sensor input of job `seq` of `task`: `None` when it arrives intact.
    pub fn input_fault(&self, task: TaskId, seq: u32) -> Option<InputFault> {
        // One draw for both, so a frame is dropped or corrupted, never both.
        let draw = self.draw(Fault::DroppedInput, task, seq, Mode::Primary) % u64::from(PPM);
        let dropped = u64::from(self.mix.dropped_ppm);
        if draw < dropped {
            Some(InputFault::Missing)
        } else if draw < dropped + u64::from(self.mix.corrupted_ppm) {
            Some(InputFault::Corrupted)
        } else {
            None
        }
    }

    /// The faults of job `seq` of `task` running in `mode`.
    pub fn job_faults(&self, task: TaskId, seq: u32, mode: Mode) -> JobFaults {
        let overrun = self.draw(Fault::Overrun, task, seq, mode);
        JobFaults {
            overrun_ppm: Self::hits(overrun, self.mix.overrun_ppm)
                .then(|| OVERRUN_MIN_PPM + splitmix64(overrun) % (OVERRUN_SPREAD_PPM + 1)),
            backend_error: Self::hits(
                self.draw(Fault::BackendError, task, seq, mode),
                self.mix.backend_error_ppm,
            ),
            burst: self
                .mix
                .burst
                .is_some_and(|b| b.covers(self.table.release_ns(task, seq))),
        }
    }

    /// How job `seq` of `task` runs in `mode` with `faults` (its [`FaultPlan::job_faults`]):
    /// its budget (the fallback's in fallback mode), stretched by an overrun and by the
    /// burst.
    fn execution(
        &self,
        set: &TaskSet,
        task: TaskId,
        seq: u32,
        mode: Mode,
        faults: &JobFaults,
    ) -> Execution {
        let mut ns = Budgets.execution(set, task, seq, mode).ns;
        if let Some(ppm) = faults.overrun_ppm {
            ns = (u128::from(ns) * u128::from(ppm) / u128::from(PPM)) as u64;
        }
        if let Some(burst) = self.mix.burst.filter(|_| faults.burst) {
            ns = burst.inflate(ns);
        }
        Execution {
            ns,
            fails: faults.backend_error,
        }
    }

    /// The fault injected on the frame `record` describes, if any: its input fault if
    /// it was refused at release, else (if it started) its backend error, overrun or
    /// burst, in that order. `None` for frames no fault touched, including frames
    /// skipped or late because an earlier job overran.
    pub fn cause(&self, record: &FrameRecord) -> Option<Fault> {
        if record.start_ns.is_none() {
            return self.input_fault(record.task, record.seq).map(Fault::from);
        }
        let faults = self.job_faults(record.task, record.seq, record.mode);
        if faults.backend_error {
            Some(Fault::BackendError)
        } else if faults.overrun_ppm.is_some() {
            Some(Fault::Overrun)
        } else if faults.burst {
            Some(Fault::Burst)
        } else {
            None
        }
    }
}

/// A [`FaultPlan`] as the simulator's execution model, counting every fault it
/// injects, per task.
#[derive(Clone, Debug)]
pub struct FaultInjector<'t> {
    plan: FaultPlan<'t>,
    injected: [[u64; Fault::ALL.len()]; MAX_TASKS],
}

impl<'t> FaultInjector<'t> {
    /// Injects the faults of `plan`.
    pub fn new(plan: FaultPlan<'t>) -> Self {
        Self {
            plan,
            injected: [[0; Fault::ALL.len()]; MAX_TASKS],
        }
    }

    /// The plan it follows.
    pub fn plan(&self) -> &FaultPlan<'t> {
        &self.plan
    }

    /// How many `fault`s it injected into task `task`'s frames.
    pub fn injected(&self, task: TaskId, fault: Fault) -> u64 {
        self.injected[usize::from(task)][fault.index()]
    }

    fn count(&mut self, task: TaskId, fault: Fault) {
        self.injected[usize::from(task)][fault.index()] += 1;
    }
}

impl ExecutionModel for FaultInjector<'_> {
    fn execution(&mut self, set: &TaskSet, task: TaskId, seq: u32, mode: Mode) -> Execution {
        let faults = self.plan.job_faults(task, seq, mode);
        for (fault, hit) in [
            (Fault::BackendError, faults.backend_error),
            (Fault::Overrun, faults.overrun_ppm.is_some()),
            (Fault::Burst, faults.burst),
        ] {
            if hit {
                self.count(task, fault);
            }
        }
        self.plan.execution(set, task, seq, mode, &faults)
    }

    fn input_fault(&mut self, _set: &TaskSet, task: TaskId, seq: u32) -> Option<InputFault> {
        let fault = self.plan.input_fault(task, seq)?;
        self.count(task, fault.into());
        Some(fault)
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use cadence_runtime::stats::FrameState;

    use super::*;
    use crate::sim::Simulator;
    use crate::task::{AcceleratorSpec, name};

    /// A camera-like task on a worker of its own, `policy` on overrun; its budget is
    /// large enough that any overrun misses the deadline.
    fn set(policy: OverrunPolicy) -> TaskSet {
        let acc = AcceleratorSpec {
            name: name("cpu0"),
            preemptive: false,
        };
        let mut camera = TaskSpec::periodic("camera", 0, 100, 70, 1);
        camera.policy = policy;
        TaskSet::new(&[acc], &[camera]).unwrap()
    }

    /// One kind of fault at `rate_ppm`, nothing else.
    fn only(fault: Fault, rate_ppm: u32) -> FaultMix {
        let mut mix = FaultMix::default();
        match fault {
            Fault::DroppedInput => mix.dropped_ppm = rate_ppm,
            Fault::CorruptedInput => mix.corrupted_ppm = rate_ppm,
            Fault::BackendError => mix.backend_error_ppm = rate_ppm,
            Fault::Overrun => mix.overrun_ppm = rate_ppm,
            Fault::Burst => {
                mix.burst = Some(Burst {
                    from_ns: 1_000,
                    until_ns: 2_000,
                    factor_percent: 200,
                })
            }
        }
        mix
    }

    /// Every record of `frames` jobs of `set` under `mix` with `seed`, and the injector.
    fn simulate<'t>(
        set: &TaskSet,
        table: &'t ScheduleTable,
        mix: FaultMix,
        seed: u64,
        frames: u64,
    ) -> (std::vec::Vec<FrameRecord>, FaultInjector<'t>) {
        let mut injector = FaultInjector::new(FaultPlan::new(seed, mix, table));
        let mut records = std::vec::Vec::new();
        Simulator::new(set, table).run(frames, &mut injector, &mut |r: &FrameRecord| {
            records.push(*r)
        });
        (records, injector)
    }

    #[test]
    fn each_fault_ends_its_frame_as_documented() {
        // (fault, policy, the state of the faulted frame, whether it started)
        let cases = [
            (
                Fault::DroppedInput,
                OverrunPolicy::SkipNext,
                FrameState::Skipped,
                false,
            ),
            (
                Fault::CorruptedInput,
                OverrunPolicy::SkipNext,
                FrameState::Failed,
                false,
            ),
            (
                Fault::BackendError,
                OverrunPolicy::SkipNext,
                FrameState::Failed,
                true,
            ),
            (
                Fault::Overrun,
                OverrunPolicy::SkipNext,
                FrameState::Late,
                true,
            ),
            (
                Fault::Overrun,
                OverrunPolicy::Abort,
                FrameState::Skipped,
                true,
            ),
            (
                Fault::Burst,
                OverrunPolicy::SkipNext,
                FrameState::Late,
                true,
            ),
        ];
        for (fault, policy, state, started) in cases {
            let set = set(policy);
            let table = ScheduleTable::new(&set).unwrap();
            let (records, injector) = simulate(&set, &table, only(fault, 50_000), 1, 1_000);
            let plan = injector.plan();
            let faulted: std::vec::Vec<_> = records
                .iter()
                .filter(|r| plan.cause(r) == Some(fault))
                .collect();
            assert!(!faulted.is_empty(), "{fault}: none injected");
            assert_eq!(faulted.len() as u64, injector.injected(0, fault), "{fault}");
            for r in faulted {
                assert_eq!(r.state, state, "{fault} under {policy}: {r:?}");
                assert_eq!(r.start_ns.is_some(), started, "{fault}: {r:?}");
            }
            let others = records.iter().filter(|r| plan.cause(r).is_none());
            assert!(
                others.clone().all(|r| r.state != FrameState::Failed),
                "{fault}: only faulted frames fail"
            );
        }
    }

    #[test]
    fn a_refused_input_leaves_the_running_job_alone() {
        // Budget 70 of a 100 period: job 0 overruns to 150, so job 1 (released at 100)
        // would be skipped behind it; its input is dropped instead, and job 0 still ends.
        let set = set(OverrunPolicy::SkipNext);
        let table = ScheduleTable::new(&set).unwrap();
        let mut model = ModelOf(|seq: u32| (seq == 0).then_some(150), |seq| seq == 1);
        let mut records = std::vec::Vec::new();
        Simulator::new(&set, &table).run(3, &mut model, &mut |r: &FrameRecord| records.push(*r));
        let by_seq = |seq| records.iter().find(|r| r.seq == seq).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(by_seq(0).state, FrameState::Late);
        assert_eq!(by_seq(0).end_ns, Some(150));
        assert_eq!(by_seq(1).state, FrameState::Skipped);
        assert_eq!((by_seq(1).release_ns, by_seq(1).start_ns), (100, None));
        assert_eq!(by_seq(2).state, FrameState::Met);
    }

    /// A model from two functions of the sequence number: an execution time other
    /// than the budget, and whether the input is missing.
    struct ModelOf<E, M>(E, M);

    impl<E: FnMut(u32) -> Option<u64>, M: FnMut(u32) -> bool> ExecutionModel for ModelOf<E, M> {
        fn execution(&mut self, set: &TaskSet, task: TaskId, seq: u32, mode: Mode) -> Execution {
            let budget = Budgets.execution(set, task, seq, mode);
            Execution {
                ns: (self.0)(seq).unwrap_or(budget.ns),
                fails: false,
            }
        }

        fn input_fault(&mut self, _: &TaskSet, _: TaskId, seq: u32) -> Option<InputFault> {
            (self.1)(seq).then_some(InputFault::Missing)
        }
    }

    #[test]
    fn rates_are_honoured_within_sampling_error() {
        let set = set(OverrunPolicy::SkipNext);
        let table = ScheduleTable::new(&set).unwrap();
        let mix = FaultMix {
            overrun_ppm: 20_000,
            backend_error_ppm: 10_000,
            corrupted_ppm: 5_000,
            dropped_ppm: 30_000,
            burst: None,
        };
        let plan = FaultPlan::new(3, mix, &table);
        let jobs = 200_000u32;
        let share = |hits: usize, ppm: u32| {
            // Five standard deviations of a binomial count.
            let expected = f64::from(jobs) * f64::from(ppm) / f64::from(PPM);
            let sd = (expected * (1.0 - f64::from(ppm) / f64::from(PPM))).sqrt();
            assert!(
                (hits as f64 - expected).abs() < 5.0 * sd,
                "{hits} hits where {expected} expected"
            );
        };
        let inputs: std::vec::Vec<_> = (0..jobs).map(|s| plan.input_fault(0, s)).collect();
        share(
            inputs
                .iter()
                .filter(|f| **f == Some(InputFault::Missing))
                .count(),
            mix.dropped_ppm,
        );
        share(
            inputs
                .iter()
                .filter(|f| **f == Some(InputFault::Corrupted))
                .count(),
            mix.corrupted_ppm,
        );
        let jobs_faults: std::vec::Vec<_> = (0..jobs)
            .map(|s| plan.job_faults(0, s, Mode::Primary))
            .collect();
        share(
            jobs_faults.iter().filter(|f| f.backend_error).count(),
            mix.backend_error_ppm,
        );
        let overruns: std::vec::Vec<u64> =
            jobs_faults.iter().filter_map(|f| f.overrun_ppm).collect();
        share(overruns.len(), mix.overrun_ppm);
        assert!(
            overruns
                .iter()
                .all(|&p| (OVERRUN_MIN_PPM..=OVERRUN_MIN_PPM + OVERRUN_SPREAD_PPM).contains(&p))
        );
    }

    #[test]
    fn the_burst_slows_exactly_the_jobs_released_inside_it() {
        let set = set(OverrunPolicy::SkipNext);
        let table = ScheduleTable::new(&set).unwrap();
        let burst = only(Fault::Burst, 0).burst.unwrap();
        let (records, _) = simulate(&set, &table, only(Fault::Burst, 0), 0, 40);
        for r in &records {
            let ran = r.end_ns.map(|end| end - r.start_ns.unwrap());
            match (burst.covers(r.release_ns), ran) {
                (true, Some(ran)) => {
                    assert_eq!(r.state, FrameState::Late, "{r:?}");
                    assert_eq!(ran, 140, "twice the budget: {r:?}");
                }
                // Released while a slowed job still runs: skipped by the policy.
                (true, None) => assert_eq!(r.state, FrameState::Skipped, "{r:?}"),
                (false, ran) if r.release_ns > burst.until_ns => {
                    assert_eq!(ran, Some(70), "{r:?}")
                }
                (false, _) => {}
            }
        }
        assert!(records.iter().any(|r| burst.covers(r.release_ns)));
        let inflated = burst.inflated(&set);
        assert!(
            matches!(inflated, Err(TaskSetError::BudgetAfterDeadline { .. })),
            "140 of a 100 deadline: {inflated:?}"
        );
    }

    #[test]
    fn the_seed_decides_which_frames_fault_and_nothing_else_does() {
        let set = set(OverrunPolicy::Degrade {
            fallback_budget_ns: 30,
        });
        let table = ScheduleTable::new(&set).unwrap();
        let mix = FaultMix::soak(table.hyperperiod_ns() * 2_000);
        let (a, _) = simulate(&set, &table, mix, 11, 2_000);
        let (b, _) = simulate(&set, &table, mix, 11, 2_000);
        let (c, _) = simulate(&set, &table, mix, 12, 2_000);
        assert_eq!(a, b, "same seed, same records");
        assert_ne!(a, c, "another seed, other faults");
        let (clean, injector) = simulate(&set, &table, FaultMix::default(), 11, 2_000);
        assert!(clean.iter().all(|r| r.state == FrameState::Met));
        assert!(Fault::ALL.iter().all(|&f| injector.injected(0, f) == 0));
    }
}
