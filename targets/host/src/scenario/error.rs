//! Why a scenario was refused: one variant per mistake, each naming the file, the line
//! and column, and what to change.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use cadence_scheduler::host::HostError;
use cadence_scheduler::task::{MAX_ACCELERATORS, MAX_TASKS, NAME_LEN};

use crate::pipeline::PipelineError;

/// A place in a scenario file: `file:line:column`, 1-based, as editors jump to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The scenario file, as it was named.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Why a scenario cannot be analysed, simulated or run.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("cannot read scenario `{}`: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: std::io::Error,
    },
    /// Not valid TOML.
    #[error("{at}: TOML syntax error: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// A key the format does not have (often a typo).
    #[error("{at}: {message}; see scenarios/README.md for the keys")]
    UnknownKey {
        /// Where.
        at: Location,
        /// The key.
        key: String,
        /// The parser's message, listing the keys allowed there.
        message: String,
    },
    /// A required key is absent.
    #[error("{at}: this table lacks the required key `{key}`")]
    MissingKey {
        /// The table missing it.
        at: Location,
        /// The key.
        key: String,
    },
    /// A value of the wrong type or out of range (a string where a number goes, a
    /// priority above 255).
    #[error("{at}: {message}")]
    BadValue {
        /// Where.
        at: Location,
        /// What was wrong.
        message: String,
    },
    /// No `[[task]]` at all.
    #[error("{at}: the scenario declares no [[task]]: nothing to schedule")]
    NoTasks {
        /// The file (line 1).
        at: Location,
    },
    /// A task or accelerator name that is empty or too long.
    #[error("{at}: {kind} name `{name}` must be 1 to {NAME_LEN} bytes long")]
    BadName {
        /// Where.
        at: Location,
        /// `task` or `accelerator`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// Two tasks or two accelerators share a name.
    #[error(
        "{at}: {kind} `{name}` is declared twice (first at line {first_line}); give each its own name"
    )]
    DuplicateName {
        /// The second declaration.
        at: Location,
        /// `task` or `accelerator`.
        kind: &'static str,
        /// The name.
        name: String,
        /// Line of the first declaration.
        first_line: usize,
    },
    /// More tasks than the scheduler holds.
    #[error("{at}: task `{task}` is one task too many: a scenario holds at most {MAX_TASKS}")]
    TooManyTasks {
        /// The first task past the limit.
        at: Location,
        /// Its name.
        task: String,
    },
    /// More accelerators than the scheduler holds.
    #[error(
        "{at}: accelerator `{accelerator}` is one too many: a scenario holds at most {MAX_ACCELERATORS}"
    )]
    TooManyAccelerators {
        /// The first accelerator past the limit.
        at: Location,
        /// Its name.
        accelerator: String,
    },
    /// A task runs on an accelerator no `[[accelerator]]` declares.
    #[error(
        "{at}: task `{task}` runs on accelerator `{accelerator}`, which is not declared \
         (declared: {declared}); add an [[accelerator]] with that name or fix the spelling"
    )]
    UndeclaredAccelerator {
        /// The `accelerator` key.
        at: Location,
        /// The task.
        task: String,
        /// The name it gave.
        accelerator: String,
        /// The declared names, comma-separated.
        declared: String,
    },
    /// A period, deadline, budget or jitter that is not a usable number of milliseconds.
    #[error(
        "{at}: task `{task}`: `{key}` is {value}, but it must be {requirement} number of milliseconds"
    )]
    BadTime {
        /// The key.
        at: Location,
        /// The task.
        task: String,
        /// The key's name.
        key: &'static str,
        /// The value given.
        value: f64,
        /// `a positive, finite` or `a non-negative, finite`.
        requirement: &'static str,
    },
    /// The deadline is longer than the period.
    #[error(
        "{at}: task `{task}`: deadline {deadline_ms} ms is longer than the period {period_ms} ms \
         (jobs of one task may not overlap); shorten the deadline or lengthen the period"
    )]
    DeadlineAfterPeriod {
        /// The `deadline_ms` key.
        at: Location,
        /// The task.
        task: String,
        /// Its deadline.
        deadline_ms: f64,
        /// Its period.
        period_ms: f64,
    },
    /// A budget (or fallback budget) longer than the deadline.
    #[error(
        "{at}: task `{task}`: `{key}` {budget_ms} ms is longer than the deadline {deadline_ms} ms, \
         so it can never be met; speed the model up or relax the deadline"
    )]
    BudgetAfterDeadline {
        /// The budget key.
        at: Location,
        /// The task.
        task: String,
        /// `budget_ms` or `fallback_budget_ms`.
        key: &'static str,
        /// The budget.
        budget_ms: f64,
        /// The deadline.
        deadline_ms: f64,
    },
    /// An `overrun` value that is not a policy.
    #[error(
        "{at}: task `{task}`: overrun `{value}` is not a policy; use \"skip-next\", \"abort\" or \
         \"degrade:<fallback package>\" (plain \"degrade\" only for a task without a package)"
    )]
    BadOverrun {
        /// The `overrun` key.
        at: Location,
        /// The task.
        task: String,
        /// The value given.
        value: String,
    },
    /// Degrade without the fallback's budget.
    #[error(
        "{at}: task `{task}` degrades on overrun but has no `fallback_budget_ms`; give the \
         fallback's worst-case execution time in milliseconds (or \"measure\")"
    )]
    DegradeWithoutFallbackBudget {
        /// The `overrun` key.
        at: Location,
        /// The task.
        task: String,
    },
    /// A task with a package degrades without naming the fallback package.
    #[error(
        "{at}: task `{task}` runs a package, so its degrade policy must name the fallback \
         package: `overrun = \"degrade:<path to .cpk>\"`"
    )]
    DegradeWithoutFallbackPackage {
        /// The `overrun` key.
        at: Location,
        /// The task.
        task: String,
    },
    /// A key that means nothing with the rest of the task.
    #[error("{at}: task `{task}`: `{key}` has no effect here: {reason}")]
    UnexpectedKey {
        /// The key.
        at: Location,
        /// The task.
        task: String,
        /// The key's name.
        key: &'static str,
        /// Why, and what to do.
        reason: &'static str,
    },
    /// A package file that does not exist.
    #[error(
        "{at}: task `{task}`: package `{}` does not exist (relative paths are resolved against \
         the current directory, `{}`); build the bundled ones with `bash tools/build-models.sh`",
        path.display(), cwd.display()
    )]
    MissingPackage {
        /// The key naming it.
        at: Location,
        /// The task.
        task: String,
        /// The path given.
        path: PathBuf,
        /// The current directory it was resolved against.
        cwd: PathBuf,
    },
    /// A package that exists but cannot be read or parsed.
    #[error("{at}: task `{task}`: package `{}` is unusable: {reason}", path.display())]
    BadPackage {
        /// The key naming it.
        at: Location,
        /// The task.
        task: String,
        /// The path.
        path: PathBuf,
        /// The read or parse error.
        reason: String,
    },
    /// A package of another model family than its place in the task needs.
    #[error("{at}: task `{task}`: package `{}` is a `{found}` model, but {needed}", path.display())]
    WrongFamily {
        /// The key naming it.
        at: Location,
        /// The task.
        task: String,
        /// The path.
        path: PathBuf,
        /// Its family.
        found: &'static str,
        /// What the place needs, in words.
        needed: &'static str,
    },
    /// A `sensor` that is not one of the known ones.
    #[error(
        "{at}: task `{task}`: sensor `{value}` is unknown; use \"camera\", \"lidar\" or \"none\""
    )]
    BadSensor {
        /// The `sensor` key.
        at: Location,
        /// The task.
        task: String,
        /// The value given.
        value: String,
    },
    /// A sensor without a package to feed.
    #[error(
        "{at}: task `{task}` reads the {sensor} sensor but runs no package; give it a `package` \
         or set `sensor = \"none\"`"
    )]
    SensorWithoutPackage {
        /// The `sensor` key.
        at: Location,
        /// The task.
        task: String,
        /// The sensor.
        sensor: &'static str,
    },
    /// A lidar task without its pillar feature net.
    #[error(
        "{at}: task `{task}` is a lidar task but has no `pfn_package`: name the pillar feature \
         net that runs before its backbone (e.g. models/lidar/pfn.cpk)"
    )]
    LidarWithoutPfn {
        /// The task.
        at: Location,
        /// The task.
        task: String,
    },
    /// Recorded sensor data that does not exist.
    #[error(
        "{at}: task `{task}`: sensor data `{}` does not exist (relative paths are resolved \
         against the current directory); name a folder of recorded frames with `sensor_data`",
        path.display()
    )]
    MissingSensorData {
        /// The `sensor_data` key (or the task, for the default).
        at: Location,
        /// The task.
        task: String,
        /// The path.
        path: PathBuf,
    },
    /// A backend that is not built.
    #[error("{at}: task `{task}`: backend `{backend}` is not built; the backends are: {known}")]
    UnknownBackend {
        /// The `backend` key.
        at: Location,
        /// The task.
        task: String,
        /// The value given.
        backend: String,
        /// The backends built, comma-separated.
        known: String,
    },
    /// A task's backend cannot start on this machine (a `cuda` task without a driver).
    #[error("{at}: task `{task}`: backend `{backend}` cannot start: {reason}")]
    BackendUnavailable {
        /// The task.
        at: Location,
        /// The task's name.
        task: String,
        /// The backend.
        backend: cadence_hal::BackendKind,
        /// Why.
        reason: Box<crate::backend::BackendStartError>,
    },
    /// A `cuda` task on an accelerator that is not a GPU's: preemptive, or shared with
    /// tasks on another backend.
    #[error(
        "{at}: task `{task}`: backend `cuda` needs an accelerator of its own that is not preemptive (a GPU runs a kernel to completion and has its own worker); {reason}"
    )]
    GpuAccelerator {
        /// The `accelerator` key.
        at: Location,
        /// The task.
        task: String,
        /// What is wrong with accelerator.
        reason: String,
    },
    /// Some tasks give a priority, others do not.
    #[error(
        "{at}: task `{task}` has no `priority` while task `{other}` has one; give every task \
         a priority, or none (they are then assigned rate-monotonically)"
    )]
    MixedPriorities {
        /// The task without one.
        at: Location,
        /// Its name.
        task: String,
        /// A task with one.
        other: String,
    },
    /// `budget_ms = "measure"` on a task with nothing to measure.
    #[error(
        "{at}: task `{task}`: a budget can only be measured by running a `package`; give this \
         task's budget in milliseconds"
    )]
    MeasureWithoutPackage {
        /// The budget key.
        at: Location,
        /// The task.
        task: String,
    },
    /// A task's runner could not be built (package, sensor data).
    #[error("{at}: task `{task}`: {reason}")]
    Runner {
        /// The task.
        at: Location,
        /// The task.
        task: String,
        /// The pipeline's error.
        reason: Box<PipelineError>,
    },
    /// A job failed while its budget was measured.
    #[error(
        "{at}: task `{task}`: run {run} failed while its budget was being measured; check its \
         packages with `cadence selftest`"
    )]
    MeasureFailed {
        /// The budget key.
        at: Location,
        /// The task.
        task: String,
        /// Which run (0-based, warm-up included).
        run: u32,
    },
    /// A measured budget longer than the deadline.
    #[error(
        "{at}: task `{task}`: measured `{key}` {budget_ms:.3} ms (slowest of the runs × margin) \
         is longer than the deadline {deadline_ms} ms on this machine"
    )]
    MeasuredOverDeadline {
        /// The budget key.
        at: Location,
        /// The task.
        task: String,
        /// `budget_ms` or `fallback_budget_ms`.
        key: &'static str,
        /// The measured budget.
        budget_ms: f64,
        /// The deadline.
        deadline_ms: f64,
    },
    /// The analysis shows a task can miss its deadline.
    #[error("{at}: {reason}")]
    Unschedulable {
        /// The task that can miss.
        at: Location,
        /// The analysis' reason, naming the task.
        reason: Box<cadence_scheduler::Unschedulable>,
    },
    /// The periods have no usable schedule table.
    #[error("{at}: {reason}")]
    NoTable {
        /// The task with the shortest period.
        at: Location,
        /// The table builder's reason.
        reason: cadence_scheduler::TableError,
    },
    /// A preemptive accelerator given to the host runner, whose workers run jobs to
    /// completion.
    #[error("{at}: {reason}")]
    PreemptiveAccelerator {
        /// The accelerator's declaration.
        at: Location,
        /// The host driver's reason.
        reason: HostError,
    },
    /// The scheduler refused the task set for a reason the checks above do not mirror.
    #[error("{at}: the scheduler refused the task set: {reason}")]
    Rejected {
        /// The file (line 1).
        at: Location,
        /// The scheduler's reason.
        reason: cadence_scheduler::TaskSetError,
    },
    /// The host run itself failed (a worker panicked).
    #[error("the host run failed: {0}")]
    Host(HostError),
}

impl ScenarioError {
    /// Where in the file the mistake is, when it is in the file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { .. } | Self::Host(_) => None,
            Self::Syntax { at, .. }
            | Self::UnknownKey { at, .. }
            | Self::MissingKey { at, .. }
            | Self::BadValue { at, .. }
            | Self::NoTasks { at }
            | Self::BadName { at, .. }
            | Self::DuplicateName { at, .. }
            | Self::TooManyTasks { at, .. }
            | Self::TooManyAccelerators { at, .. }
            | Self::UndeclaredAccelerator { at, .. }
            | Self::BadTime { at, .. }
            | Self::DeadlineAfterPeriod { at, .. }
            | Self::BudgetAfterDeadline { at, .. }
            | Self::BadOverrun { at, .. }
            | Self::DegradeWithoutFallbackBudget { at, .. }
            | Self::DegradeWithoutFallbackPackage { at, .. }
            | Self::UnexpectedKey { at, .. }
            | Self::MissingPackage { at, .. }
            | Self::BadPackage { at, .. }
            | Self::WrongFamily { at, .. }
            | Self::BadSensor { at, .. }
            | Self::SensorWithoutPackage { at, .. }
            | Self::LidarWithoutPfn { at, .. }
            | Self::MissingSensorData { at, .. }
            | Self::UnknownBackend { at, .. }
            | Self::BackendUnavailable { at, .. }
            | Self::GpuAccelerator { at, .. }
            | Self::MixedPriorities { at, .. }
            | Self::MeasureWithoutPackage { at, .. }
            | Self::Runner { at, .. }
            | Self::MeasureFailed { at, .. }
            | Self::MeasuredOverDeadline { at, .. }
            | Self::Unschedulable { at, .. }
            | Self::NoTable { at, .. }
            | Self::PreemptiveAccelerator { at, .. }
            | Self::Rejected { at, .. } => Some(at),
        }
    }

    /// Whether the scenario is well formed but its task set can miss deadlines, by the
    /// analysis or by a budget measured on this machine (as opposed to a file that is
    /// wrong): tools exit with a distinct status for it.
    pub fn is_unschedulable(&self) -> bool {
        matches!(
            self,
            Self::Unschedulable { .. } | Self::MeasuredOverDeadline { .. }
        )
    }
}
