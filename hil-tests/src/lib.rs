//! The hardware-in-the-loop rig: streams recorded camera and lidar frames to a device
//! under test (DUT) at their sensor rates over the wire protocol of
//! [`cadence_runtime::wire`], injects faults, checks the DUT's detections against a
//! reference computed here and every frame's deadline and fate, and writes JUnit XML
//! and an HTML report.
//!
//! A run ([`run_rig`]): read the rig file ([`rig`]); prepare each stream's frames and
//! their expected detections by running the same frame path on the host CPU backend
//! ([`streams`]); start the DUT and talk to it ([`link`]); stream with the faults
//! injected ([`session`]); judge the log ([`checks`]); write the results ([`junit`],
//! [`report`]).
//!
//! [`script`] runs one fixed conversation against a DUT instead, and writes down its
//! answers so that two DUTs can be compared.
#![forbid(unsafe_code)]

pub mod checks;
pub mod junit;
pub mod link;
pub mod report;
pub mod rig;
pub mod script;
pub mod session;
pub mod streams;

use std::path::{Path, PathBuf};

use thiserror::Error;

use checks::Check;
use link::Launcher;
use rig::{Rig, RigFileError};
use streams::{StreamError, StreamPlan};

/// Why a rig cannot run (a DUT that misbehaves is a failed check, not an error).
#[derive(Debug, Error)]
pub enum RigError {
    /// The rig file is unusable.
    #[error(transparent)]
    RigFile(#[from] RigFileError),
    /// A stream's frames or reference cannot be prepared.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// An output file cannot be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where a run's inputs come from and its results go.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// What `{models}` stands for in the rig file.
    pub models: PathBuf,
    /// What `{bin}` stands for: the folder of the DUT binaries.
    pub bin: PathBuf,
    /// The JUnit file to write.
    pub junit: PathBuf,
    /// The folder to write `report.html` (and the DUT's output, `dut-<n>.log`) into.
    pub report: Option<PathBuf>,
}

/// A finished run's checks.
pub struct Outcome {
    /// Every check, in JUnit order.
    pub checks: Vec<Check>,
}

impl Outcome {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// Runs the rig file at `path` and writes its results.
pub fn run_rig(path: &Path, options: &RunOptions) -> Result<Outcome, RigError> {
    let rig = Rig::load(path)?;
    let plans = rig
        .streams
        .iter()
        .map(|spec| {
            streams::prepare(spec, &rig.reference, rig.run.time_scale, |p| {
                streams::resolve_models(p, &options.models)
            })
        })
        .collect::<Result<Vec<StreamPlan>, _>>()?;
    let launcher = Launcher::new(
        &rig.dut,
        &options.bin,
        &options.models,
        options.report.as_deref(),
    );
    let log = session::run(&rig, &plans, launcher);
    let checks = checks::judge(&rig, &plans, &log);
    let elapsed = log.finished.saturating_duration_since(log.started);
    write(&options.junit, &junit::render(&rig.name, &checks, elapsed))?;
    if let Some(folder) = &options.report {
        std::fs::create_dir_all(folder).map_err(|source| RigError::Write {
            path: folder.clone(),
            source,
        })?;
        write(
            &folder.join("report.html"),
            &report::render(&rig, &plans, &log, &checks),
        )?;
    }
    Ok(Outcome { checks })
}

fn write(path: &Path, text: &str) -> Result<(), RigError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| RigError::Write {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| RigError::Write {
        path: path.to_owned(),
        source,
    })
}
