//! Scenario files: the task set a vehicle program runs, written as TOML, checked line by
//! line, then analysed, simulated or run on the host.
//!
//! The format is documented in `scenarios/README.md` (keys, defaults, how paths are
//! resolved, each policy). In short:
//!
//! ```toml
//! [[accelerator]]
//! name = "cpu0"
//! preemptive = false        # optional, default false: a job runs to completion
//!
//! [[task]]
//! name = "camera"
//! accelerator = "cpu0"
//! period_ms = 33.333
//! deadline_ms = 33.333      # optional, defaults to the period
//! budget_ms = 12.0          # worst-case execution time, or "measure"
//! priority = 2              # optional on every task or none: rate-monotonic
//! overrun = "degrade:models/camera/camera_det_pruned.cpk"  # or "skip-next" (default), "abort"
//! fallback_budget_ms = 8.0  # the fallback's budget, for degrade
//! package = "models/camera/camera_det.cpk"                 # optional
//! isolation = "process"     # optional, default "none": models in worker processes
//! ```
//!
//! Relative paths (packages, sensor data) are resolved against the **current
//! directory**, like every path given to `cadence`: run from the repository root,
//! `package = "models/camera/camera_det.cpk"` names the bundled model.
//!
//! [`Scenario::load`] refuses a bad file with a [`ScenarioError`] naming the file, the
//! line and the reason. [`Scenario::plan`] measures the budgets marked `"measure"`,
//! builds the scheduler's [`TaskSet`], its [`ScheduleTable`] and its [`Analysis`];
//! [`run_on_host`] runs a plan on the host's clock.

mod check;
mod error;
mod measure;
mod raw;
mod run;

use std::path::{Path, PathBuf};

use cadence_hal::BackendKind;
use cadence_scheduler::host::{HostError, JobRunner};
use cadence_scheduler::task::{self, TaskId};
use cadence_scheduler::{
    AcceleratorSpec, Analysis, OverrunPolicy, ScheduleTable, TableError, TaskSet, TaskSpec,
};

use crate::pipeline::{Isolation, RunnerSpec, Sensor};

pub use error::{Location, ScenarioError};
pub use measure::{MeasureConfig, MeasuredBudget};
pub use run::{RunConfig, RunReport, run_on_host};

/// One accelerator of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceleratorEntry {
    /// Its name.
    pub name: String,
    /// Whether a running job can be preempted there.
    pub preemptive: bool,
    /// Its declaration.
    pub at: Location,
}

/// A budget as the file gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Nanoseconds.
    Given(u64),
    /// Measured by running the task's packages ([`Scenario::plan`]).
    Measure,
}

/// One task of a scenario, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskEntry {
    /// Its name.
    pub name: String,
    /// Its `name` key: where errors about the task as a whole point.
    pub at: Location,
    /// Index of its accelerator in [`Scenario::accelerators`].
    pub accelerator: usize,
    /// Period, ns.
    pub period_ns: u64,
    /// Relative deadline, ns.
    pub deadline_ns: u64,
    /// Worst-case execution time.
    pub budget: Budget,
    /// Its `budget_ms` key.
    pub budget_at: Location,
    /// Priority, if the file gives one (higher is more urgent).
    pub priority: Option<u8>,
    /// Largest release delay, ns.
    pub release_jitter_ns: u64,
    /// What an overrun does.
    pub overrun: Overrun,
    /// The packages a job runs, in order (empty: the job runs for its budget).
    pub packages: Vec<PathBuf>,
    /// The sensor feeding it.
    pub sensor: Sensor,
    /// The backend it runs on.
    pub backend: BackendKind,
    /// Where its models run: in the scheduler's worker thread, or in worker processes.
    pub isolation: Isolation,
}

/// An overrun policy as the file gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overrun {
    /// `"skip-next"`.
    SkipNext,
    /// `"abort"`.
    Abort,
    /// `"degrade:<package>"` (or plain `"degrade"` without packages).
    Degrade {
        /// The chain the fallback job runs: the task's chain with its last package
        /// (the detector) replaced by the fallback package. Empty without packages.
        packages: Vec<PathBuf>,
        /// The fallback's budget.
        budget: Budget,
        /// Its `fallback_budget_ms` key (or the `overrun` key when measured by default).
        budget_at: Location,
    },
}

/// A parsed and checked scenario file.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    path: PathBuf,
    accelerators: Vec<AcceleratorEntry>,
    tasks: Vec<TaskEntry>,
}

impl Scenario {
    /// Reads and checks the scenario at `path`.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ScenarioError::Read {
            path: path.to_owned(),
            reason,
        })?;
        Self::parse(path, &text)
    }

    /// Checks scenario `text`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let (accelerators, tasks) = check::parse(path, text)?;
        Ok(Self {
            path: path.to_owned(),
            accelerators,
            tasks,
        })
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The accelerators, in file order (= the scheduler's accelerator ids).
    pub fn accelerators(&self) -> &[AcceleratorEntry] {
        &self.accelerators
    }

    /// The tasks, in file order (= the scheduler's task ids).
    pub fn tasks(&self) -> &[TaskEntry] {
        &self.tasks
    }

    /// Whether priorities are assigned rate-monotonically (no task gives one).
    pub fn rate_monotonic(&self) -> bool {
        self.tasks.iter().all(|t| t.priority.is_none())
    }

    /// What [`crate::pipeline::load_runner`] needs to build task `id`'s runner, with
    /// `budget_ns` (which the runner of a task without packages spins for).
    pub fn runner_spec(&self, id: TaskId, budget_ns: u64) -> RunnerSpec {
        let t = &self.tasks[usize::from(id)];
        RunnerSpec {
            task: t.name.clone(),
            packages: t.packages.clone(),
            fallback: match &t.overrun {
                Overrun::Degrade { packages, .. } => packages.clone(),
                Overrun::SkipNext | Overrun::Abort => Vec::new(),
            },
            sensor: t.sensor.clone(),
            budget_ns,
            isolation: t.isolation,
        }
    }

    /// Builds task `id`'s job runner (packages loaded, sensor data decoded) with
    /// `budget_ns`, which the runner of a task without packages spins for.
    pub fn load_runner(
        &self,
        id: TaskId,
        budget_ns: u64,
    ) -> Result<Box<dyn JobRunner>, ScenarioError> {
        let t = &self.tasks[usize::from(id)];
        let spec = self.runner_spec(id, budget_ns);
        if t.backend == BackendKind::Cuda {
            return crate::backend::load_cuda_runner(&spec).map_err(|reason| {
                ScenarioError::BackendUnavailable {
                    at: t.at.clone(),
                    task: t.name.clone(),
                    backend: t.backend,
                    reason: Box::new(reason),
                }
            });
        }
        crate::pipeline::load_runner(&spec).map_err(|reason| ScenarioError::Runner {
            at: t.at.clone(),
            task: t.name.clone(),
            reason: Box::new(reason),
        })
    }

    /// Measures the budgets marked `"measure"` (see [`MeasureConfig`]), then builds the
    /// task set, its table and its analysis. An unschedulable set is not an error here
    /// (see [`Plan::check_schedulable`]): `cadence schedule` shows why.
    pub fn plan(self, measure: &MeasureConfig) -> Result<Plan, ScenarioError> {
        let measured = measure::measure_budgets(&self, measure)?;
        // A measured budget wins over a given one (`MeasureConfig::remeasure`).
        let budget = |id: usize, given: Budget, primary: bool| {
            let measured = measured
                .iter()
                .find(|m| usize::from(m.task) == id && m.primary == primary);
            match (measured, given) {
                (Some(m), _) => m.budget_ns,
                (None, Budget::Given(ns)) => ns,
                (None, Budget::Measure) => 0,
            }
        };
        let file_start = Location {
            file: self.path.clone(),
            line: 1,
            column: 1,
        };
        let accelerators: Vec<AcceleratorSpec> = self
            .accelerators
            .iter()
            .map(|a| AcceleratorSpec {
                name: task::name(&a.name),
                preemptive: a.preemptive,
            })
            .collect();
        let specs: Vec<TaskSpec> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(id, t)| TaskSpec {
                name: task::name(&t.name),
                accelerator: t.accelerator as u8,
                period_ns: t.period_ns,
                deadline_ns: t.deadline_ns,
                budget_ns: budget(id, t.budget, true),
                priority: t.priority.unwrap_or(0),
                release_jitter_ns: t.release_jitter_ns,
                policy: match &t.overrun {
                    Overrun::SkipNext => OverrunPolicy::SkipNext,
                    Overrun::Abort => OverrunPolicy::Abort,
                    Overrun::Degrade { budget: b, .. } => OverrunPolicy::Degrade {
                        fallback_budget_ns: budget(id, *b, false),
                    },
                },
            })
            .collect();
        let mut set =
            TaskSet::new(&accelerators, &specs).map_err(|reason| ScenarioError::Rejected {
                at: file_start,
                reason,
            })?;
        if self.rate_monotonic() {
            set.assign_rate_monotonic();
        }
        let table = ScheduleTable::new(&set).map_err(|reason| {
            let at = match &reason {
                TableError::NoHyperperiod { shortest } => self.task_at(shortest),
                TableError::Empty => self.tasks[0].at.clone(),
            };
            ScenarioError::NoTable { at, reason }
        })?;
        let analysis = Analysis::of(&set);
        Ok(Plan {
            scenario: self,
            set,
            table,
            analysis,
            measured,
        })
    }

    fn task_at(&self, name: &str) -> Location {
        self.tasks
            .iter()
            .find(|t| t.name == name)
            .map_or_else(|| self.tasks[0].at.clone(), |t| t.at.clone())
    }
}

/// A scenario ready to analyse, simulate or run.
#[derive(Debug)]
pub struct Plan {
    /// The scenario.
    pub scenario: Scenario,
    /// Its task set, budgets measured, priorities assigned.
    pub set: TaskSet,
    /// Its releases over one hyperperiod.
    pub table: ScheduleTable,
    /// The response-time analysis of `set`.
    pub analysis: Analysis,
    /// The budgets that were measured rather than given.
    pub measured: Vec<MeasuredBudget>,
}

impl Plan {
    /// `Ok` when every task meets its deadline in the worst case; else the first one
    /// that can miss, at its line in the file.
    pub fn check_schedulable(&self) -> Result<(), ScenarioError> {
        self.analysis
            .check(&self.set)
            .map_err(|reason| ScenarioError::Unschedulable {
                at: self.scenario.task_at(&reason.task),
                reason: Box::new(reason),
            })
    }

    /// `Ok` when the host can run the scenario: its workers run every job to
    /// completion, so no accelerator may be preemptive.
    pub fn check_host(&self) -> Result<(), ScenarioError> {
        match self.scenario.accelerators.iter().find(|a| a.preemptive) {
            None => Ok(()),
            Some(a) => Err(ScenarioError::PreemptiveAccelerator {
                at: a.at.clone(),
                reason: HostError::PreemptiveAccelerator(task::name(&a.name)),
            }),
        }
    }

    /// Whether task `id`'s budget (`primary`) or fallback budget was measured.
    pub fn is_measured(&self, id: TaskId, primary: bool) -> bool {
        self.measured
            .iter()
            .any(|m| m.task == id && m.primary == primary)
    }
}

/// Nanoseconds as milliseconds, for messages.
fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}
