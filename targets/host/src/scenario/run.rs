//! A scenario on the host: each task's runner on the host's clock, one worker thread
//! per accelerator, every frame recorded. The deadline profiler calls
//! [`run_on_host`] too, so the statistics and the trace are returned, not printed.

use std::time::Duration;

use cadence_hal::EmbassyClock;
use cadence_runtime::stats::TaskStats;
use cadence_scheduler::FrameRecord;
use cadence_scheduler::host::{self, HostConfig, HostOutcome, JobRunner, Stop};
use cadence_scheduler::task::TaskId;

use super::{Plan, ScenarioError};

/// Settings of a host run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunConfig {
    /// How long jobs are released for (released jobs still end and are recorded).
    pub duration: Duration,
}

/// What a host run measured.
#[derive(Debug)]
pub struct RunReport {
    /// Per-task statistics, indexed by task id.
    pub stats: Vec<TaskStats>,
    /// Every frame, in the order its state became final; times on the host clock.
    pub trace: Vec<FrameRecord>,
    /// Releases, and the clock times of the first release and of the last end.
    pub outcome: HostOutcome,
}

/// Runs `plan` on the host for `config.duration`: refuses a preemptive accelerator (host
/// workers run jobs to completion) and an unschedulable set, builds every task's runner
/// (packages loaded, sensor data decoded), then releases jobs by the schedule table.
pub fn run_on_host(plan: &Plan, config: &RunConfig) -> Result<RunReport, ScenarioError> {
    plan.check_host()?;
    plan.check_schedulable()?;
    let scenario = &plan.scenario;
    let mut boxed = (0..plan.set.tasks().len())
        .map(|id| scenario.load_runner(id as TaskId, plan.set.task(id as TaskId).budget_ns))
        .collect::<Result<Vec<_>, _>>()?;
    let mut runners: Vec<&mut dyn JobRunner> = boxed
        .iter_mut()
        .map(|r| &mut **r as &mut dyn JobRunner)
        .collect();
    let mut stats: Vec<TaskStats> = plan.set.tasks().iter().map(|_| TaskStats::new()).collect();
    // Room for every frame up front, so recording never reallocates mid-run.
    let frames: u64 = plan
        .set
        .tasks()
        .iter()
        .map(|t| (config.duration.as_nanos() as u64).div_ceil(t.period_ns) + 1)
        .sum();
    let mut trace = Vec::with_capacity(frames as usize);
    let host_config = HostConfig {
        stop: Stop::After(config.duration),
        ..HostConfig::default()
    };
    let clock = EmbassyClock;
    let outcome = host::run(
        &plan.set,
        &plan.table,
        &mut runners,
        &clock,
        &host_config,
        &mut |frame: &FrameRecord| {
            stats[usize::from(frame.task)].record(frame.state, frame.times().as_ref());
            trace.push(*frame);
        },
    )
    .map_err(ScenarioError::Host)?;
    Ok(RunReport {
        stats,
        trace,
        outcome,
    })
}
