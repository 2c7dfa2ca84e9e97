//! `cadence profile`: the deadline profiler. Package mode runs each `.cpk` on a
//! backend (`--backend`, the CPU by default) frame after frame, timing every frame and,
//! where the backend runs steps one by one, every plan step, and writes the report
//! (`report.json`, `report.html`) with the per-layer profile and, for several packages,
//! the cost/latency comparison. Given a scenario (`.toml`), it runs the scenario
//! instead (see `profile_scenario`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cadence_cli::report::{self, ClockKind, LayerProfile, ParetoPoint, Report};
use cadence_hal::{Accelerator, BackendKind, Clock, Op, StdClock, StepTiming};
use cadence_runtime::engine::Engine;
use cadence_runtime::stats::{Histogram, Summary};
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};

use super::profile_scenario::{self, ScenarioProfile};
use super::schedule::MeasureArgs;
use super::{parse_package, read_package};
use crate::backends;

/// Arguments of `cadence profile`.
#[derive(clap::Args)]
pub struct Args {
    /// Packages (.cpk) to profile, or one scenario (.toml) to run. Several packages of
    /// one task (a model and its pruned variants) are compared on cost against latency.
    #[arg(required = true, value_name = "PKG.cpk|SCENARIO.toml")]
    inputs: Vec<PathBuf>,
    /// Timed frames per package (in scenario mode: per package of the per-layer
    /// profile).
    #[arg(long, default_value_t = 200)]
    frames: usize,
    /// Scenario mode: how long the scenario runs, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[command(flatten)]
    measure: MeasureArgs,
    /// Untimed warm-up frames per package.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// The backend the packages are profiled on. One that runs the plan as a unit
    /// (tract, cuda) is timed frame by frame only, without the per-layer profile.
    #[arg(long, default_value_t)]
    backend: BackendKind,
    /// Folder to write report.json and report.html into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// The task the packages compete for, as the comparison names it (default: each
    /// package's model family, so packages of different families are compared apart).
    #[arg(long)]
    task: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What profiling one package measured.
pub(super) struct PackageProfile {
    /// Nanoseconds per frame.
    latency: Histogram,
    /// Time per plan step; `None` on a backend that cannot time steps apart.
    pub layers: Option<LayerProfile>,
    /// Cost and latency.
    pub pareto: ParetoPoint,
}

/// A progress bar over `len` frames, on stderr (hidden when that is not a terminal).
pub(super) fn progress_bar(len: u64) -> Result<ProgressBar> {
    Ok(ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} frames ({eta} left)")
            .context("progress bar template")?,
    ))
}

/// Runs `cadence profile`.
pub fn run(args: Args) -> Result<ExitCode> {
    if let [scenario] = args.inputs.as_slice()
        && scenario.extension().is_some_and(|e| e == "toml")
    {
        let duration = std::time::Duration::try_from_secs_f64(args.seconds)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| format!("--seconds {} is not a positive duration", args.seconds))?;
        return profile_scenario::run(&ScenarioProfile {
            file: scenario,
            backend: args.backend,
            duration,
            layer_frames: args.frames,
            warmup: args.warmup,
            measure: &args.measure,
            out: &args.out,
            json: args.json,
        });
    }
    if let Some(other) = args
        .inputs
        .iter()
        .find(|p| p.extension().is_none_or(|e| e != "cpk"))
    {
        bail!(
            "`{}` is not a package: `cadence profile` takes .cpk files (compile a model with `cadence compile`) or one scenario .toml",
            other.display()
        );
    }
    let frames = args.frames.max(1);
    let progress = progress_bar((frames * args.inputs.len()) as u64)?;
    let mut profiles = Vec::with_capacity(args.inputs.len());
    for path in &args.inputs {
        progress.set_message(path.display().to_string());
        profiles.push(profile_package(
            path,
            args.backend,
            frames,
            args.warmup,
            args.task.as_deref(),
            &progress,
        )?);
    }
    progress.finish_and_clear();

    let sources: Vec<String> = args
        .inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut report = Report::new("Cadence profile", sources.join(" "), ClockKind::Real);
    report.layers = profiles.iter().filter_map(|p| p.layers.clone()).collect();
    if profiles.len() > 1 {
        report.pareto = profiles.iter().map(|p| p.pareto.clone()).collect();
    }
    let written = report::write(&args.out, &report)?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table.set_header([
        "package",
        "frames",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "jitter p99.9-p50 ms",
        "MACs",
    ]);
    for p in &profiles {
        let s: Summary = p.latency.summary();
        let ms = |ns| format!("{:.3}", report::ms(ns));
        table.add_row([
            p.pareto.package.clone(),
            s.count.to_string(),
            ms(s.p50),
            ms(s.p99),
            ms(s.p99_9),
            ms(s.max),
            ms(s.jitter_p999_minus_p50),
            p.pareto.macs.to_string(),
        ]);
    }
    println!(
        "profile on the {} backend ({frames} frames each, 1 thread)\n{table}",
        args.backend
    );
    if let Some(p) = profiles.iter().find(|p| p.layers.is_none()) {
        println!(
            "no per-layer profile for {}: the {} backend runs the plan as one unit",
            p.pareto.package, args.backend
        );
    }
    println!(
        "wrote {} and {}",
        written.json.display(),
        written.html.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `path` on backend `kind` for `frames` timed frames on its first test vector, after
/// `warmup` untimed ones, timing each frame and, where the backend can, each step.
pub(super) fn profile_package(
    path: &Path,
    kind: BackendKind,
    frames: usize,
    warmup: usize,
    task: Option<&str>,
    progress: &ProgressBar,
) -> Result<PackageProfile> {
    let bytes = read_package(path)?;
    let pkg = parse_package(path, &bytes)?;
    let case = pkg
        .test_vectors()
        .next()
        .with_context(|| format!("`{}` has no test vectors to profile with", path.display()))?;
    let mut arena = backends::arena_for(&pkg);
    let backend = backends::create(kind, &pkg)?.with_context(|| {
        format!(
            "backend `{kind}` needs the source ONNX, which `{}` does not embed",
            path.display()
        )
    })?;
    let backend_name = backend.name();
    let mut engine = Engine::load(&pkg, backend, arena.as_mut_slice())
        .map_err(|e| anyhow!("`{}`: {e}", path.display()))?;
    let clock = StdClock::default();
    let mut step_ns = vec![0u64; engine.step_count()];
    let mut step_times = vec![Histogram::new(); step_ns.len()];
    let mut latency = Histogram::new();
    let mut timing = StepTiming::PerStep;
    for frame in 0..warmup + frames {
        for (io, data) in pkg.inputs().zip(case.inputs()) {
            engine.set_input_f32(io.name(), io.shape().dims(), data)?;
        }
        let start = clock.now_ns();
        timing = engine.run_timed(&clock, &mut step_ns)?;
        let end = clock.now_ns();
        if frame >= warmup {
            latency.record(end - start);
            for (times, &ns) in step_times.iter_mut().zip(&step_ns) {
                times.record(ns);
            }
            progress.inc(1);
        }
    }

    let plan = pkg.plan();
    let names: Vec<(&str, &str)> = plan
        .steps
        .iter()
        .map(|s| (Op::decode(s).map_or("?", |op| op.name()), plan.step_name(s)))
        .collect();
    let package = path.display().to_string();
    let layers = (timing == StepTiming::PerStep).then(|| {
        LayerProfile::new(
            package.clone(),
            backend_name,
            frames as u64,
            names
                .iter()
                .zip(&step_times)
                .map(|(&(op, name), times)| (op, name, times)),
        )
    });
    let summary = latency.summary();
    let provenance = pkg.provenance();
    let pareto = ParetoPoint {
        task: task.unwrap_or(pkg.metadata().family().name()).to_owned(),
        package,
        macs: provenance.macs(),
        params: provenance.parameters(),
        arena_bytes: pkg.arena_bytes() as u64,
        p50_ms: report::ms(summary.p50),
        p99_ms: report::ms(summary.p99),
        p99_9_ms: report::ms(summary.p99_9),
    };
    Ok(PackageProfile {
        latency,
        layers,
        pareto,
    })
}
