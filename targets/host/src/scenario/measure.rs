//! Budgets marked `"measure"`: run the task's own runner (its packages on its recorded
//! sensor data) a number of times and take the slowest run, with a safety margin.

use std::time::Instant;

use cadence_scheduler::executive::{Dispatch, Mode};
use cadence_scheduler::task::TaskId;

use super::{Budget, Overrun, Scenario, ScenarioError, ns_to_ms};

/// How budgets are measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeasureConfig {
    /// Untimed runs first (caches, page faults, the CPU's clock ramp).
    pub warmup: u32,
    /// Timed runs; the budget is the slowest of them times `margin`.
    pub runs: u32,
    /// Safety factor over the slowest run (1.2: 20 % headroom for what the runs did not
    /// see).
    pub margin: f64,
    /// Measure every budget of a task with packages, also those the file gives: does
    /// this machine meet the budgets the scenario was written for?
    pub remeasure: bool,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        Self {
            warmup: 3,
            runs: 20,
            margin: 1.2,
            remeasure: false,
        }
    }
}

/// A budget that was measured rather than given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeasuredBudget {
    /// The task.
    pub task: TaskId,
    /// `true`: the task's own budget; `false`: its degrade fallback's.
    pub primary: bool,
    /// Timed runs.
    pub runs: u32,
    /// Slowest timed run, ns.
    pub max_ns: u64,
    /// The budget set: `max_ns` times the margin, ns.
    pub budget_ns: u64,
}

/// Measures every budget `scenario` marks `"measure"` (every budget of a task with
/// packages, with `remeasure`), in task order (primary, then fallback).
pub(super) fn measure_budgets(
    scenario: &Scenario,
    config: &MeasureConfig,
) -> Result<Vec<MeasuredBudget>, ScenarioError> {
    let mut measured = Vec::new();
    for (id, t) in scenario.tasks().iter().enumerate() {
        let measure =
            |b: Budget| b == Budget::Measure || (config.remeasure && !t.packages.is_empty());
        let fallback = match &t.overrun {
            Overrun::Degrade {
                budget, budget_at, ..
            } if measure(*budget) => Some(budget_at),
            _ => None,
        };
        let mut wanted = Vec::new();
        if measure(t.budget) {
            wanted.push((Mode::Primary, &t.budget_at, "budget_ms"));
        }
        if let Some(at) = fallback {
            wanted.push((Mode::Fallback, at, "fallback_budget_ms"));
        }
        if wanted.is_empty() {
            continue;
        }
        let id = id as TaskId;
        let mut runner = scenario.load_runner(id, 0)?;
        for (mode, at, key) in wanted {
            let mut max_ns = 0u64;
            for run in 0..config.warmup + config.runs {
                let job = Dispatch {
                    accelerator: t.accelerator as u8,
                    task: id,
                    seq: run,
                    mode,
                    release_ns: 0,
                    deadline_ns: u64::MAX,
                    resume: false,
                    displaces: None,
                };
                let start = Instant::now();
                runner.run(&job).map_err(|_| ScenarioError::MeasureFailed {
                    at: at.clone(),
                    task: t.name.clone(),
                    run,
                })?;
                if run >= config.warmup {
                    max_ns = max_ns.max(start.elapsed().as_nanos() as u64);
                }
            }
            let budget_ns = (max_ns as f64 * config.margin).ceil() as u64;
            if budget_ns > t.deadline_ns {
                return Err(ScenarioError::MeasuredOverDeadline {
                    at: at.clone(),
                    task: t.name.clone(),
                    key,
                    budget_ms: ns_to_ms(budget_ns),
                    deadline_ms: ns_to_ms(t.deadline_ns),
                });
            }
            measured.push(MeasuredBudget {
                task: id,
                primary: mode == Mode::Primary,
                runs: config.runs,
                max_ns,
                budget_ns,
            });
        }
    }
    Ok(measured)
}
