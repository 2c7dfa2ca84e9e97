//! `cadence profile SCENARIO.toml`: the deadline profiler on a whole scenario. Runs it
//! on the host's clock with every task's real frame path, then profiles each package
//! the scenario uses layer by layer, and writes one report: per-task latency and
//! deadline figures, a timeline of the first jobs, time per layer, and the
//! cost/latency comparison of each task's model against its fallback.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use cadence_cli::report::{
    self, ClockKind, MAX_TIMELINE_JOBS, Report, TaskReport, TaskTiming, TimelineEntry,
};
use cadence_hal::BackendKind;
use cadence_host::scenario::{Overrun, Plan, RunConfig, RunReport, run_on_host};
use cadence_scheduler::task::TaskId;
use indicatif::ProgressBar;

use super::profile::{PackageProfile, profile_package, progress_bar};
use super::schedule::{MeasureArgs, load_plan, refuse};
use super::trace::{print_results, task_results};

/// Scenario-mode settings of `cadence profile`.
pub struct ScenarioProfile<'a> {
    /// The scenario file.
    pub file: &'a Path,
    /// The backend of the per-layer profile.
    pub backend: BackendKind,
    /// How long the scenario runs.
    pub duration: Duration,
    /// Timed frames per package in the per-layer profile.
    pub layer_frames: usize,
    /// Untimed frames before them.
    pub warmup: usize,
    /// How "measure" budgets are measured.
    pub measure: &'a MeasureArgs,
    /// Where report.json and report.html go.
    pub out: &'a Path,
    /// Print the report as JSON instead of tables.
    pub json: bool,
}

/// Runs the scenario, profiles its packages and writes the report.
pub fn run(settings: &ScenarioProfile<'_>) -> Result<ExitCode> {
    let plan = match load_plan(settings.file, settings.measure) {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let ticker = progress_ticker(settings.duration);
    let outcome = run_on_host(
        &plan,
        &RunConfig {
            duration: settings.duration,
        },
    );
    ticker.finish_and_clear();
    let run = match outcome {
        Ok(run) => run,
        Err(e) => return Ok(refuse(&e)),
    };

    let packages = scenario_packages(&plan);
    let progress = progress_bar((settings.layer_frames * packages.len()) as u64)?;
    let mut profiles: Vec<PackageProfile> = Vec::with_capacity(packages.len());
    for (task, path) in &packages {
        progress.set_message(path.display().to_string());
        profiles.push(profile_package(
            path,
            settings.backend,
            settings.layer_frames.max(1),
            settings.warmup,
            Some(task),
            &progress,
        )?);
    }
    progress.finish_and_clear();

    let mut report = Report::new(
        "Cadence deadline profile",
        settings.file.display().to_string(),
        ClockKind::Real,
    );
    report.tasks = task_reports(&plan, &run);
    report.timeline = timeline(&plan, &run);
    report.layers = profiles.iter().filter_map(|p| p.layers.clone()).collect();
    report.pareto = profiles.iter().map(|p| p.pareto.clone()).collect();
    let written = report::write(settings.out, &report)?;

    if settings.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let released: Vec<u64> = run.stats.iter().map(|s| s.frames()).collect();
        print_results(&task_results(&plan.set, &released, &run.stats));
        println!(
            "wrote {} and {}",
            written.json.display(),
            written.html.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A bar that fills over the run's duration (the run itself must not be disturbed by
/// progress updates from the frame path).
fn progress_ticker(duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_millis() as u64);
    let ticking = bar.clone();
    thread::spawn(move || {
        let start = Instant::now();
        while !ticking.is_finished() {
            ticking.set_position(start.elapsed().as_millis() as u64);
            thread::sleep(Duration::from_millis(100));
        }
    });
    bar
}

/// Every package the scenario runs, once each, with the task it serves: the primary
/// chain, then the degrade fallback's. A lidar PFN stage is its own entry, so the
/// comparison sets detector against detector.
fn scenario_packages(plan: &Plan) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for task in plan.scenario.tasks() {
        let fallback = match &task.overrun {
            Overrun::Degrade { packages, .. } => packages.as_slice(),
            Overrun::SkipNext | Overrun::Abort => &[],
        };
        let last = task.packages.len().saturating_sub(1);
        let stages = task
            .packages
            .iter()
            .enumerate()
            .chain(fallback.iter().enumerate());
        for (stage, path) in stages {
            let label = if stage == last {
                task.name.clone()
            } else {
                format!("{} stage {}", task.name, stage + 1)
            };
            if !out.iter().any(|(_, p)| p == path) {
                out.push((label, path.clone()));
            }
        }
    }
    out
}

fn task_reports(plan: &Plan, run: &RunReport) -> Vec<TaskReport> {
    plan.set
        .tasks()
        .iter()
        .enumerate()
        .map(|(id, t)| {
            let timing = TaskTiming {
                name: t.name.to_string(),
                accelerator: plan.set.accelerators()[usize::from(t.accelerator)]
                    .name
                    .to_string(),
                period_ns: t.period_ns,
                deadline_ns: t.deadline_ns,
                budget_ns: t.budget_ns,
                wcrt_ns: plan.analysis.verdict(id as TaskId).wcrt_ns,
            };
            TaskReport::new(&timing, &run.stats[id])
        })
        .collect()
}

/// The first jobs of the run, by release, with times from the first release.
fn timeline(plan: &Plan, run: &RunReport) -> Vec<TimelineEntry> {
    let origin = run.outcome.origin_ns;
    let at = |ns: u64| report::ms(ns.saturating_sub(origin));
    let mut frames: Vec<_> = run.trace.iter().collect();
    frames.sort_by_key(|f| (f.release_ns, f.task));
    frames
        .into_iter()
        .take(MAX_TIMELINE_JOBS)
        .map(|f| {
            let task = plan.set.task(f.task);
            TimelineEntry {
                task: task.name.to_string(),
                job: u64::from(f.seq),
                accelerator: plan.set.accelerators()[usize::from(f.accelerator)]
                    .name
                    .to_string(),
                release_ms: at(f.release_ns),
                start_ms: f.start_ns.map(at),
                end_ms: f.end_ns.map(at),
                deadline_ms: at(f.deadline_ns),
                state: f.state.into(),
            }
        })
        .collect()
}
