//! `cadence selftest`: the package's test vectors on every backend built in.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use cadence_hal::BackendKind;
use cadence_runtime::engine::Engine;
use comfy_table::Table;

use super::{parse_package, read_package};
use crate::backends;

/// Arguments of `cadence selftest`.
#[derive(clap::Args)]
pub struct Args {
    /// The package.
    package: PathBuf,
    /// Only this backend (default: every backend built in that needs no device).
    #[arg(long)]
    backend: Option<BackendKind>,
}

/// Runs `cadence selftest`; exits non-zero when any backend mismatches.
pub fn run(args: Args) -> Result<ExitCode> {
    let bytes = read_package(&args.package)?;
    let pkg = parse_package(&args.package, &bytes)?;
    let kinds: Vec<BackendKind> = match args.backend {
        Some(kind) => vec![kind],
        None => BackendKind::defaults().collect(),
    };
    let mut table = Table::new();
    table.set_header([
        "backend",
        "output",
        "cases",
        "max abs error",
        "mismatches",
        "result",
    ]);
    let mut all_passed = true;
    for kind in kinds {
        let name = kind.name();
        let Some(backend) = backends::create(kind, &pkg)? else {
            table.add_row([
                name,
                "-",
                "-",
                "-",
                "-",
                "skipped: no source ONNX in the package",
            ]);
            continue;
        };
        let mut arena = backends::arena_for(&pkg);
        let mut engine = Engine::load(&pkg, backend, arena.as_mut_slice())
            .map_err(|e| anyhow!("{name}: {e}"))?;
        let report = engine.selftest().map_err(|e| anyhow!("{name}: {e}"))?;
        all_passed &= report.passed();
        for out in &report.outputs {
            let verdict = match out.first_mismatch {
                None => "pass".to_owned(),
                Some(m) => format!(
                    "FAIL (case {} element {}: got {} expected {})",
                    m.case, m.index, m.got, m.expected
                ),
            };
            table.add_row([
                name.to_owned(),
                out.name.to_owned(),
                report.cases.to_string(),
                format!("{:.3e}", out.max_abs_error),
                out.mismatches.to_string(),
                verdict,
            ]);
        }
    }
    println!(
        "selftest {} (tolerance {}: |got - expected| <= abs + rel * |expected|)",
        args.package.display(),
        pkg.tolerance()
    );
    println!("{table}");
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
