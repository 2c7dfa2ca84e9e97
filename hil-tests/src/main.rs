//! `cadence-hil run RIG.toml --junit FILE [--report DIR] [--models DIR]`: runs a
//! hardware-in-the-loop rig against its device under test; exit status 0 when every
//! check passed, 1 when one failed, 2 when the rig could not run.
//!
//! `cadence-hil script RIG.toml [--models DIR]`: runs the fixed conversation script
//! against the rig's DUT and prints its answers, one line each (see
//! `cadence_hil::script`); exit status 2 when the DUT did not answer it.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use cadence_hil::{RunOptions, run_rig, script};
use clap::{Parser, Subcommand};

/// Hardware-in-the-loop rig for Cadence devices under test.
#[derive(Parser)]
#[command(name = "cadence-hil", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a rig file (hil-tests/rigs/*.toml) and write its JUnit results.
    Run {
        /// The rig file.
        rig: PathBuf,
        /// Where to write the JUnit XML.
        #[arg(long, value_name = "FILE")]
        junit: PathBuf,
        /// Folder for report.html.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// What `{models}` stands for in the rig file (the compiled packages' folder).
        #[arg(long, value_name = "DIR", default_value = "models")]
        models: PathBuf,
        /// What `{bin}` stands for (default: the folder holding this executable, where
        /// cargo also builds cadence-dut).
        #[arg(long, value_name = "DIR")]
        bin: Option<PathBuf>,
    },
    /// Run the fixed conversation script against a rig file's DUT and print its
    /// answers, to compare two DUTs.
    Script {
        /// The rig file (only its DUT is used).
        rig: PathBuf,
        /// What `{models}` stands for in the rig file.
        #[arg(long, value_name = "DIR", default_value = "models")]
        models: PathBuf,
        /// What `{bin}` stands for (default: the folder holding this executable).
        #[arg(long, value_name = "DIR")]
        bin: Option<PathBuf>,
    },
}

/// `bin`, or the folder holding this executable (where cargo also builds cadence-dut).
fn bin_folder(bin: Option<PathBuf>) -> PathBuf {
    bin.or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
    })
    .unwrap_or_default()
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            rig,
            junit,
            report,
            models,
            bin,
        } => run(
            &rig,
            &RunOptions {
                models,
                bin: bin_folder(bin),
                junit,
                report,
            },
        ),
        Command::Script { rig, models, bin } => {
            match script::run_rig_file(&rig, &bin_folder(bin), &models) {
                Ok(transcript) => {
                    for line in transcript {
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cadence-hil: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn run(rig: &std::path::Path, options: &RunOptions) -> ExitCode {
    match run_rig(rig, options) {
        Ok(outcome) => {
            for check in &outcome.checks {
                let verdict = if check.passed { "pass" } else { "FAIL" };
                println!("{verdict:4}  {:<22} {}", check.name, check.summary);
            }
            let failed = outcome.checks.iter().filter(|c| !c.passed).count();
            println!(
                "{}: {} of {} checks passed; JUnit in {}",
                rig.display(),
                outcome.checks.len() - failed,
                outcome.checks.len(),
                options.junit.display()
            );
            if outcome.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("cadence-hil: {e}");
            ExitCode::from(2)
        }
    }
}
