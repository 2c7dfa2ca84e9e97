//! `cadence`: compile ONNX models into packages, inspect them, run them, check them
//! against their test vectors, and benchmark them against tract and onnxruntime.

mod backends;
mod commands;
mod npy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: cadence_alloc_count::CountingAllocator = cadence_alloc_count::CountingAllocator;

/// Cadence: a static, allocation-free inference runtime for on-vehicle perception.
#[derive(Parser)]
#[command(name = "cadence", version, about)]
#[cfg_attr(not(feature = "tract"), command(after_help = commands::without_tract::HELP_NOTE))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile an ONNX model into a .cpk package.
    Compile(commands::compile::Args),
    /// Show a package: spec, ops, memory plan, provenance, checksums.
    Inspect(commands::inspect::Args),
    /// Run a package's test vectors on every backend built in.
    Selftest(commands::selftest::Args),
    /// Run one frame from .npy (or image) inputs and write the outputs as .npy.
    Run(commands::run::Args),
    /// Time the Cadence CPU backend against tract and onnxruntime on the same package.
    Bench(commands::bench::Args),
    /// Remove conv output channels (structured pruning) and report MACs, latency, deviation.
    Prune(commands::prune::Args),
    /// Build a package that implements a problem spec (seeded outputs), before a model exists.
    Placeholder(commands::placeholder::Args),
    /// Tell whether a package implements a problem spec, and list every difference.
    CheckSpec(commands::check_spec::Args),
    /// Check a scenario's schedulability: worst-case response time of every task.
    Schedule(commands::schedule::Args),
    /// Simulate a scenario on a simulated clock from the critical instant; write the trace.
    Sim(commands::sim::Args),
    /// Run a scenario on this host's clock with the real frame paths.
    RunScenario(commands::run_scenario::Args),
    /// Profile packages frame by frame and layer by layer; write report.json and report.html.
    Profile(commands::profile::Args),
}

fn main() -> ExitCode {
    exit_quietly_when_the_reader_leaves();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(args) => commands::compile::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Selftest(args) => commands::selftest::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Prune(args) => commands::prune::run(args),
        Command::Placeholder(args) => commands::placeholder::run(args),
        Command::CheckSpec(args) => commands::check_spec::run(args),
        Command::Schedule(args) => commands::schedule::run(args),
        Command::Sim(args) => commands::sim::run(args),
        Command::RunScenario(args) => commands::run_scenario::run(args),
        Command::Profile(args) => commands::profile::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a write to a closed pipe end the process silently, as Unix tools do
/// (`cadence inspect PKG | head`). Rust ignores SIGPIPE, so such a write fails and
/// `println!` panics with a backtrace; with the default action restored, the reader's
/// leaving ends the process the way it ends `cat`.
#[cfg(unix)]
fn exit_quietly_when_the_reader_leaves() {
    // SAFETY: `signal` with `SIG_DFL` installs no handler code, so nothing runs in
    // signal context; it is called first in `main`, before any thread exists that
    // could be changing the disposition at the same time.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Elsewhere a closed pipe is an ordinary write error.
#[cfg(not(unix))]
fn exit_quietly_when_the_reader_leaves() {}
