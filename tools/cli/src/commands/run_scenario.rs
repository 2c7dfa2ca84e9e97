//! `cadence run-scenario`: a scenario on the host's clock, each task's real frame path
//! (or a spin for its budget, for a task without packages), every frame recorded.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use cadence_host::scenario::{RunConfig, run_on_host};
use serde::Serialize;

use super::schedule::{MeasureArgs, load_plan, refuse};
use super::trace::{TaskResult, print_results, task_results, write_trace};

/// Arguments of `cadence run-scenario`.
#[derive(clap::Args)]
pub struct Args {
    /// The scenario file (TOML; see scenarios/README.md).
    file: PathBuf,
    /// How long to release jobs for.
    #[arg(long, value_parser = seconds)]
    seconds: Duration,
    /// Write every frame to this file (JSON, times from the first release).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    measure: MeasureArgs,
}

fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{v} is not a positive number of seconds"))
}

#[derive(Serialize)]
struct RunJson {
    tasks: Vec<TaskResult>,
    released: u64,
    wall_ms: f64,
}

/// Runs `cadence run-scenario`.
pub fn run(args: Args) -> Result<ExitCode> {
    let plan = match load_plan(&args.file, &args.measure) {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let report = match run_on_host(
        &plan,
        &RunConfig {
            duration: args.seconds,
        },
    ) {
        Ok(report) => report,
        Err(e) => return Ok(refuse(&e)),
    };
    let released: Vec<u64> = report.stats.iter().map(|s| s.frames()).collect();
    if let Some(path) = &args.trace {
        write_trace(path, &plan.set, &report.trace, report.outcome.origin_ns)?;
    }
    let tasks = task_results(&plan.set, &released, &report.stats);
    let wall_ms = report
        .outcome
        .end_ns
        .saturating_sub(report.outcome.origin_ns) as f64
        / 1e6;
    if args.json {
        let json = RunJson {
            tasks,
            released: report.outcome.released,
            wall_ms,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_results(&tasks);
        println!(
            "{} jobs released over {wall_ms:.1} ms",
            report.outcome.released
        );
    }
    Ok(ExitCode::SUCCESS)
}
