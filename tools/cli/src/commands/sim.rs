//! `cadence sim`: a scenario on the simulated clock. Every task releases at t = 0 (the
//! critical instant), each accelerator follows its preemption model, jobs run their
//! recorded budgets or a seeded fault mix's times (`--faults soak` for the soak: see
//! `cadence_scheduler::faults` for the faults and how each frame they hit is
//! recorded), and every frame is recorded and accounted for: the same inputs give a
//! byte-identical trace and summary, and a run whose frames do not add up exits with
//! [`EXIT_UNACCOUNTED`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cadence_runtime::stats::TaskStats;
use cadence_scheduler::faults::PPM;
use cadence_scheduler::ledger::STATES;
use cadence_scheduler::task::TaskId;
use cadence_scheduler::{
    Analysis, Burst, Fault, FaultInjector, FaultMix, FaultPlan, FrameRecord, Ledger, Recorder,
    Simulator, TaskSet,
};
use comfy_table::Table;
use serde::Serialize;

use super::schedule::{EXIT_UNSCHEDULABLE, MeasureArgs, load_plan};
use super::trace::{TaskResult, print_results, task_results, write_trace};

/// Exit status of a run whose frames do not add up (a frame lost or recorded twice).
pub const EXIT_UNACCOUNTED: u8 = 3;

/// Arguments of `cadence sim`.
#[derive(clap::Args)]
pub struct Args {
    /// The scenario file (TOML; see scenarios/README.md).
    file: PathBuf,
    /// Jobs to release, over all tasks, in schedule-table order.
    #[arg(long)]
    frames: u64,
    /// Write every frame to this file (JSON).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Fault mix. `soak`: 1 % of jobs overrun, 0.5 % hit a backend error, 0.2 % of
    /// frames arrive corrupted, 0.5 % never arrive, and from the middle of the run, for
    /// a fiftieth of it, every job takes twice as long. The rate and burst options
    /// below override the mix's.
    #[arg(long, value_enum, default_value_t = FaultPreset::None)]
    faults: FaultPreset,
    /// Seed of the fault mix: the same seed faults the same frames.
    #[arg(long = "seed", visible_alias = "fault-seed", default_value_t = 0)]
    seed: u64,
    /// Share of jobs that run over their budget (1.5 to 2.5 times it).
    #[arg(long, value_parser = rate)]
    overrun_rate: Option<f64>,
    /// Share of jobs whose backend fails.
    #[arg(long, value_parser = rate)]
    fail_rate: Option<f64>,
    /// Share of sensor frames that arrive corrupted (refused, recorded failed).
    #[arg(long, value_parser = rate)]
    corrupt_rate: Option<f64>,
    /// Share of sensor frames that never arrive (recorded skipped).
    #[arg(long, value_parser = rate)]
    drop_rate: Option<f64>,
    /// Slow every job released in a window: `FROM_MS:LENGTH_MS:FACTOR` (`1000:500:2`:
    /// jobs released from 1 s to 1.5 s take twice as long).
    #[arg(long, value_parser = burst)]
    burst: Option<Burst>,
    /// Simulate a set the analysis refuses (to see how its overrun policies play out).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    measure: MeasureArgs,
}

/// Named fault mixes.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FaultPreset {
    /// No faults: every job runs its budget.
    None,
    /// The soak mix (see `--faults`).
    Soak,
}

fn rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{r} is not a rate between 0 and 1"))
    }
}

fn burst(s: &str) -> Result<Burst, String> {
    let usage = || format!("`{s}` is not FROM_MS:LENGTH_MS:FACTOR (e.g. 1000:500:2)");
    let parts: Vec<f64> = s
        .split(':')
        .map(|p| p.parse::<f64>().map_err(|_| usage()))
        .collect::<Result<_, _>>()?;
    let [from_ms, length_ms, factor] = parts[..] else {
        return Err(usage());
    };
    if from_ms < 0.0 || length_ms <= 0.0 || factor < 1.0 {
        return Err(format!(
            "`{s}`: the window must start at 0 or later, last a while, and slow jobs by a \
             factor of at least 1"
        ));
    }
    let ns = |ms: f64| (ms * 1e6).round() as u64;
    Ok(Burst {
        from_ns: ns(from_ms),
        until_ns: ns(from_ms + length_ms),
        factor_percent: (factor * 100.0).round() as u32,
    })
}

impl Args {
    /// The fault mix asked for, for a run whose releases span `span_ns`.
    fn fault_mix(&self, span_ns: u64) -> FaultMix {
        let mut mix = match self.faults {
            FaultPreset::None => FaultMix::default(),
            FaultPreset::Soak => FaultMix::soak(span_ns),
        };
        let ppm = |r: f64| (r * f64::from(PPM)).round() as u32;
        for (rate, field) in [
            (self.overrun_rate, &mut mix.overrun_ppm),
            (self.fail_rate, &mut mix.backend_error_ppm),
            (self.corrupt_rate, &mut mix.corrupted_ppm),
            (self.drop_rate, &mut mix.dropped_ppm),
        ] {
            if let Some(rate) = rate {
                *field = ppm(rate);
            }
        }
        if self.burst.is_some() {
            mix.burst = self.burst;
        }
        mix
    }
}

/// What one (task, cause) pair of a run came to.
#[derive(Serialize)]
struct CauseRow {
    task: String,
    /// The fault, or `none` for frames no fault of their own touched.
    cause: String,
    /// Faults of this kind injected (absent for `none`).
    injected: Option<u64>,
    met: u64,
    late: u64,
    skipped: u64,
    failed: u64,
}

/// Every (task, cause) pair with any frame or injection, in task then [`Fault::ALL`] order.
fn cause_rows(set: &TaskSet, injector: &FaultInjector<'_>, ledger: &Ledger<'_>) -> Vec<CauseRow> {
    let causes = Fault::ALL.iter().map(|&f| Some(f)).chain([None]);
    (0..set.tasks().len() as TaskId)
        .flat_map(|task| causes.clone().map(move |cause| (task, cause)))
        .map(|(task, cause)| {
            let [met, late, skipped, failed] = STATES.map(|s| ledger.count(task, cause, s));
            CauseRow {
                task: set.task(task).name.to_string(),
                cause: cause.map_or_else(|| "none".to_owned(), |f| f.to_string()),
                injected: cause.map(|f| injector.injected(task, f)),
                met,
                late,
                skipped,
                failed,
            }
        })
        .filter(|r| r.injected.unwrap_or(0) + r.met + r.late + r.skipped + r.failed > 0)
        .collect()
}

fn print_causes(rows: &[CauseRow]) {
    let mut table = Table::new();
    table.set_header([
        "task", "cause", "injected", "met", "late", "skipped", "failed",
    ]);
    for r in rows {
        table.add_row([
            r.task.clone(),
            r.cause.clone(),
            r.injected.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            r.met.to_string(),
            r.late.to_string(),
            r.skipped.to_string(),
            r.failed.to_string(),
        ]);
    }
    println!("{table}");
}

/// The burst window and what the analysis says of the set while it lasts.
#[derive(Serialize)]
struct BurstReport {
    from_ns: u64,
    until_ns: u64,
    factor_percent: u32,
    /// Why the analysis refuses the set with every job slowed, if it does.
    unschedulable: Option<String>,
}

impl BurstReport {
    fn of(burst: &Burst, set: &TaskSet) -> Self {
        let unschedulable = match burst.inflated(set) {
            Err(e) => Some(e.to_string()),
            Ok(slowed) => Analysis::of(&slowed)
                .check(&slowed)
                .err()
                .map(|e| e.to_string()),
        };
        Self {
            from_ns: burst.from_ns,
            until_ns: burst.until_ns,
            factor_percent: burst.factor_percent,
            unschedulable,
        }
    }

    fn print(&self) {
        let verdict = match &self.unschedulable {
            Some(reason) => format!("the analysis refuses the set while it lasts: {reason}"),
            None => "the set stays schedulable while it lasts".to_owned(),
        };
        println!(
            "burst: jobs released from {:.3} s to {:.3} s take {:.2} times as long; {verdict}",
            self.from_ns as f64 / 1e9,
            self.until_ns as f64 / 1e9,
            f64::from(self.factor_percent) / 100.0
        );
    }
}

#[derive(Serialize)]
struct SimJson {
    tasks: Vec<TaskResult>,
    released: u64,
    end_ns: u64,
    seed: u64,
    /// Frames by task and cause, with the faults injected.
    causes: Vec<CauseRow>,
    burst: Option<BurstReport>,
    /// Whether every released frame ended in exactly one state and the totals add up.
    accounted: bool,
    /// The one-line verdict.
    verdict: String,
}

/// Runs `cadence sim`.
pub fn run(args: Args) -> Result<ExitCode> {
    let plan = match load_plan(&args.file, &args.measure) {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    if let Err(e) = plan.check_schedulable() {
        if !args.force {
            eprintln!(
                "error: {e}\ncadence sim refuses a set the analysis rejects (an accepted set never \
                 misses); pass --force to simulate it anyway"
            );
            return Ok(ExitCode::from(EXIT_UNSCHEDULABLE));
        }
        eprintln!("warning: {e}; simulating anyway (--force)");
    }
    let set = &plan.set;
    let table = &plan.table;
    let span_ns = args.frames.div_ceil(table.releases().len() as u64) * table.hyperperiod_ns();
    let faults = FaultPlan::new(args.seed, args.fault_mix(span_ns), table);
    let mut injector = FaultInjector::new(faults);
    let mut ledger = Ledger::new(set, faults);
    let mut stats: Vec<TaskStats> = set.tasks().iter().map(|_| TaskStats::new()).collect();
    let mut frames = Vec::new();
    let keep_frames = args.trace.is_some();
    let mut sim = Simulator::new(set, table);
    let outcome = sim.run(args.frames, &mut injector, &mut |frame: &FrameRecord| {
        stats.record(frame);
        ledger.record(frame);
        if keep_frames {
            frames.push(*frame);
        }
    });
    let released: Vec<u64> = (0..set.tasks().len())
        .map(|id| u64::from(sim.executive().counts(id as TaskId).released))
        .collect();
    if let Some(path) = &args.trace {
        write_trace(path, set, &frames, 0)?;
    }
    let accounted = ledger.check(sim.executive(), args.frames);
    let verdict = match &accounted {
        Ok(()) => {
            let [met, late, skipped, failed] = STATES.map(|state| {
                (0..set.tasks().len() as TaskId)
                    .map(|id| ledger.state(id, state))
                    .sum::<u64>()
            });
            format!(
                "all {} frames accounted: each release ended in exactly one state (met {met}, \
                 late {late}, skipped {skipped}, failed {failed}) and every task released what \
                 the schedule table gives",
                args.frames
            )
        }
        Err(e) => format!("frames not accounted: {e}"),
    };
    if accounted.is_err() {
        eprintln!("error: {verdict}");
    }
    let tasks = task_results(set, &released, &stats);
    let causes = cause_rows(set, &injector, &ledger);
    let burst = faults.mix().burst.map(|b| BurstReport::of(&b, set));
    if args.json {
        let json = SimJson {
            tasks,
            released: outcome.released,
            end_ns: outcome.end_ns,
            seed: args.seed,
            causes,
            burst,
            accounted: accounted.is_ok(),
            verdict,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_results(&tasks);
        if !faults.mix().is_empty() {
            print_causes(&causes);
            println!(
                "cause: the fault on that frame itself (a frame hit by several is listed under \
                 the first of backend error, overrun, burst); `none`: no fault of its own, \
                 delayed or skipped behind one that had. `injected` counts every fault."
            );
        }
        if let Some(burst) = &burst {
            burst.print();
        }
        println!(
            "{} jobs released; the last ended at {:.3} ms simulated",
            outcome.released,
            outcome.end_ns as f64 / 1e6
        );
        if accounted.is_ok() {
            println!("{verdict}");
        }
    }
    Ok(if accounted.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNACCOUNTED)
    })
}
