//! `cadence sim`: a scenario on the simulated clock. Every task releases at t = 0 (the
//! critical instant), each accelerator follows its preemption model, jobs run their
//! recorded budgets (or a seeded fault model's times), and every frame is recorded:
//! the same inputs give a byte-identical trace.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cadence_runtime::stats::TaskStats;
use cadence_scheduler::task::TaskId;
use cadence_scheduler::{
    Budgets, Execution, ExecutionModel, FrameRecord, Mode, Simulator, TaskSet,
};
use serde::Serialize;

use super::schedule::{EXIT_UNSCHEDULABLE, MeasureArgs, load_plan};
use super::trace::{TaskResult, print_results, task_results, write_trace};

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
    /// Seed of the fault model (with --overrun-rate / --fail-rate).
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
    /// Share of jobs that run over their budget (1.5 to 2.5 times it).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    overrun_rate: f64,
    /// Share of jobs whose backend fails.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    fail_rate: f64,
    /// Simulate a set the analysis refuses (to see how its overrun policies play out).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    measure: MeasureArgs,
}

fn rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{r} is not a rate between 0 and 1"))
    }
}

/// Budgets, with seeded faults: whether a job overruns or fails is a hash of the seed,
/// the task, the job's sequence number and its mode, so it does not depend on the order
/// the simulator asks in.
struct FaultModel {
    seed: u64,
    overrun_rate: f64,
    fail_rate: f64,
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl ExecutionModel for FaultModel {
    fn execution(&mut self, set: &TaskSet, task: TaskId, seq: u32, mode: Mode) -> Execution {
        let base = Budgets.execution(set, task, seq, mode);
        let key =
            (u64::from(task) << 40) | (u64::from(seq) << 1) | u64::from(mode == Mode::Fallback);
        let h1 = splitmix64(self.seed ^ splitmix64(key));
        let h2 = splitmix64(h1);
        let h3 = splitmix64(h2);
        let ns = if unit(h2) < self.overrun_rate {
            (base.ns as f64 * (1.5 + unit(h3))) as u64
        } else {
            base.ns
        };
        Execution {
            ns,
            fails: unit(h1) < self.fail_rate,
        }
    }
}

#[derive(Serialize)]
struct SimJson {
    tasks: Vec<TaskResult>,
    released: u64,
    end_ns: u64,
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
    let mut stats: Vec<TaskStats> = set.tasks().iter().map(|_| TaskStats::new()).collect();
    let mut frames = Vec::new();
    let mut model = FaultModel {
        seed: args.fault_seed,
        overrun_rate: args.overrun_rate,
        fail_rate: args.fail_rate,
    };
    let mut sim = Simulator::new(set, &plan.table);
    let outcome = sim.run(args.frames, &mut model, &mut |frame: &FrameRecord| {
        stats[usize::from(frame.task)].record(frame.state, frame.times().as_ref());
        frames.push(*frame);
    });
    let released: Vec<u64> = (0..set.tasks().len())
        .map(|id| u64::from(sim.executive().counts(id as TaskId).released))
        .collect();
    if let Some(path) = &args.trace {
        write_trace(path, set, &frames, 0)?;
    }
    let tasks = task_results(set, &released, &stats);
    if args.json {
        let json = SimJson {
            tasks,
            released: outcome.released,
            end_ns: outcome.end_ns,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_results(&tasks);
        println!(
            "{} jobs released; the last ended at {:.3} ms simulated",
            outcome.released,
            outcome.end_ns as f64 / 1e6
        );
    }
    Ok(ExitCode::SUCCESS)
}
