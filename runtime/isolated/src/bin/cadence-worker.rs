//! `cadence-worker PACKAGE SHARED_REGION`: the process an
//! [`IsolatedEngine`](cadence_isolated::IsolatedEngine) runs a package in. Not meant to
//! be started by hand.

use std::path::Path;
use std::process::ExitCode;

use cadence_isolated::WorkerError;
use rustix::process::{Signal, set_parent_process_death_signal};

fn main() -> ExitCode {
    // A worker outliving its parent would hold the region and a core for nothing. If
    // the parent is already gone, its /proc entry is too, and opening the region fails.
    if let Err(e) = set_parent_process_death_signal(Some(Signal::KILL)) {
        eprintln!("cadence-worker: cannot tie its lifetime to the parent's: {e}");
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [package, region] => cadence_isolated::worker::serve(Path::new(package), Path::new(region)),
        _ => Err(WorkerError::Usage),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cadence-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
