//! What stands in for the commands that need tract when `cadence` is built without the
//! `tract` feature (the aarch64 cross build): they stay in the command list, accept
//! whatever they are given, and say how to get a build that has them, rather than
//! leaving clap to call a documented command unknown.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Result, bail};

/// Why a tract command or backend is missing, and how to get it.
pub const MISSING_FEATURE: &str = "this build of `cadence` has no `tract` feature; \
     rebuild with `cargo build -p cadence-cli --release --features tract`";

/// Shown under `cadence --help`.
pub const HELP_NOTE: &str = "This build has no `tract` feature: compile, prune, placeholder \
     and check-spec only say so, and selftest, run and bench have the cpu backend alone. \
     Rebuild with `--features tract` for them.";

/// Arguments of a command this build lacks: all of them, unread.
#[derive(clap::Args)]
#[command(after_help = HELP_NOTE)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _arguments: Vec<OsString>,
}

/// Fails with [`MISSING_FEATURE`].
pub fn run(_args: Args) -> Result<ExitCode> {
    bail!("this command needs tract (ONNX import), and {MISSING_FEATURE}")
}
