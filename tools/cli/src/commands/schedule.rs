//! `cadence schedule`: a scenario's schedulability verdict, task by task (response-time
//! analysis against each accelerator's preemption model).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use cadence_host::scenario::{MeasureConfig, Plan, Scenario, ScenarioError};
use cadence_scheduler::task::{OverrunPolicy, TaskId};
use comfy_table::Table;
use serde::Serialize;

/// Exit status for a scenario that is well formed but can miss a deadline.
pub const EXIT_UNSCHEDULABLE: u8 = 1;
/// Exit status for a scenario file that is wrong.
pub const EXIT_BAD_SCENARIO: u8 = 2;

/// Arguments of `cadence schedule`.
#[derive(clap::Args)]
pub struct Args {
    /// The scenario file (TOML; see scenarios/README.md).
    file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    measure: MeasureArgs,
}

/// How budgets marked `"measure"` are measured.
#[derive(clap::Args)]
pub struct MeasureArgs {
    /// Timed runs per budget marked "measure" (the budget is the slowest × the margin).
    #[arg(long, default_value_t = MeasureConfig::default().runs,
          value_parser = clap::value_parser!(u32).range(1..))]
    measure_runs: u32,
    /// Untimed warm-up runs before them.
    #[arg(long, default_value_t = MeasureConfig::default().warmup)]
    measure_warmup: u32,
    /// Measure every budget of a task with packages, also those the file gives (does
    /// this machine meet the scenario's budgets?).
    #[arg(long)]
    remeasure: bool,
}

impl MeasureArgs {
    /// The measurement settings.
    pub fn config(&self) -> MeasureConfig {
        MeasureConfig {
            warmup: self.measure_warmup,
            runs: self.measure_runs,
            remeasure: self.remeasure,
            ..MeasureConfig::default()
        }
    }
}

/// Loads and plans `file`; on failure prints the reason and answers the exit status
/// (unschedulable or bad file).
pub fn load_plan(file: &Path, measure: &MeasureArgs) -> Result<Plan, ExitCode> {
    Scenario::load(file)
        .and_then(|s| s.plan(&measure.config()))
        .map_err(|e| refuse(&e))
}

/// Prints why a scenario is refused; answers the exit status that says so.
pub fn refuse(e: &ScenarioError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(if e.is_unschedulable() {
        EXIT_UNSCHEDULABLE
    } else {
        EXIT_BAD_SCENARIO
    })
}

/// Nanoseconds as milliseconds.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[derive(Serialize)]
struct ScheduleJson {
    schedulable: bool,
    tasks: Vec<TaskJson>,
    accelerators: Vec<AcceleratorJson>,
    hyperperiod_ms: f64,
}

#[derive(Serialize)]
struct TaskJson {
    name: String,
    wcrt_ms: Option<f64>,
    deadline_ms: f64,
    schedulable: bool,
    accelerator: String,
    period_ms: f64,
    budget_ms: f64,
    budget_measured: bool,
    fallback_budget_ms: Option<f64>,
    fallback_budget_measured: bool,
    priority: u8,
    priority_rate_monotonic: bool,
    release_jitter_ms: f64,
    blocking_ms: f64,
    slack_ms: Option<f64>,
    overrun: String,
}

#[derive(Serialize)]
struct AcceleratorJson {
    name: String,
    preemptive: bool,
    utilisation: f64,
}

fn report(plan: &Plan) -> ScheduleJson {
    let set = &plan.set;
    let rate_monotonic = plan.scenario.rate_monotonic();
    let tasks = set
        .tasks()
        .iter()
        .enumerate()
        .map(|(id, t)| {
            let id = id as TaskId;
            let v = plan.analysis.verdict(id);
            let fallback_budget_ns = match t.policy {
                OverrunPolicy::Degrade { fallback_budget_ns } => Some(fallback_budget_ns),
                OverrunPolicy::SkipNext | OverrunPolicy::Abort => None,
            };
            TaskJson {
                name: t.name.to_string(),
                wcrt_ms: v.wcrt_ns.map(ms),
                deadline_ms: ms(v.deadline_ns),
                schedulable: v.schedulable(),
                accelerator: set.accelerators()[usize::from(t.accelerator)]
                    .name
                    .to_string(),
                period_ms: ms(t.period_ns),
                budget_ms: ms(t.budget_ns),
                budget_measured: plan.is_measured(id, true),
                fallback_budget_ms: fallback_budget_ns.map(ms),
                fallback_budget_measured: plan.is_measured(id, false),
                priority: t.priority,
                priority_rate_monotonic: rate_monotonic,
                release_jitter_ms: ms(t.release_jitter_ns),
                blocking_ms: ms(v.blocking_ns),
                slack_ms: v.wcrt_ns.map(|r| (v.deadline_ns as f64 - r as f64) / 1e6),
                overrun: t.policy.to_string(),
            }
        })
        .collect();
    let accelerators = set
        .accelerators()
        .iter()
        .enumerate()
        .map(|(a, acc)| AcceleratorJson {
            name: acc.name.to_string(),
            preemptive: acc.preemptive,
            utilisation: plan.analysis.utilisation_ppm(a as u8) as f64 / 1e6,
        })
        .collect();
    ScheduleJson {
        schedulable: plan.analysis.schedulable(),
        tasks,
        accelerators,
        hyperperiod_ms: ms(plan.table.hyperperiod_ns()),
    }
}

fn print_table(plan: &Plan, r: &ScheduleJson) {
    let mut table = Table::new();
    table.set_header([
        "task",
        "accelerator",
        "period ms",
        "deadline ms",
        "budget ms",
        "priority",
        "overrun",
        "blocking ms",
        "WCRT ms",
        "slack ms",
        "verdict",
    ]);
    let measured = |yes: bool| if yes { " (measured)" } else { "" };
    for t in &r.tasks {
        let budget = match t.fallback_budget_ms {
            Some(f) => format!(
                "{:.3}{}\nfallback {f:.3}{}",
                t.budget_ms,
                measured(t.budget_measured),
                measured(t.fallback_budget_measured)
            ),
            None => format!("{:.3}{}", t.budget_ms, measured(t.budget_measured)),
        };
        let rm = if t.priority_rate_monotonic {
            " (RM)"
        } else {
            ""
        };
        table.add_row([
            t.name.clone(),
            t.accelerator.clone(),
            format!("{:.3}", t.period_ms),
            format!("{:.3}", t.deadline_ms),
            budget,
            format!("{}{rm}", t.priority),
            t.overrun.clone(),
            format!("{:.3}", t.blocking_ms),
            t.wcrt_ms.map_or("unbounded".into(), |w| format!("{w:.3}")),
            t.slack_ms.map_or("-".into(), |s| format!("{s:.3}")),
            (if t.schedulable { "meets" } else { "CAN MISS" }).into(),
        ]);
    }
    println!("{table}");
    for a in &r.accelerators {
        let model = if a.preemptive {
            "preemptive"
        } else {
            "non-preemptive"
        };
        println!(
            "{} ({model}): utilisation {:.1} %",
            a.name,
            a.utilisation * 100.0
        );
    }
    for m in &plan.measured {
        let task = &plan.set.task(m.task).name;
        let which = if m.primary {
            "budget"
        } else {
            "fallback budget"
        };
        println!(
            "{which} of `{task}` measured: slowest of {} runs {:.3} ms, × margin = {:.3} ms",
            m.runs,
            ms(m.max_ns),
            ms(m.budget_ns)
        );
    }
    println!("hyperperiod {:.3} ms", r.hyperperiod_ms);
}

/// Runs `cadence schedule`: exit 0 if schedulable, 1 if a task can miss (naming it), 2
/// for a bad scenario file.
pub fn run(args: Args) -> Result<ExitCode> {
    let plan = match load_plan(&args.file, &args.measure) {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let r = report(&plan);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_table(&plan, &r);
    }
    Ok(match plan.check_schedulable() {
        Ok(()) => {
            if !args.json {
                println!("schedulable: every task meets its deadline in the worst case");
            }
            ExitCode::SUCCESS
        }
        Err(e) => refuse(&e),
    })
}
