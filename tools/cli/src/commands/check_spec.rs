//! `cadence check-spec`: whether a package implements a problem spec, and every place
//! where it does not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cadence_compiler::spec::{ProblemSpec, check};

use super::{parse_package, read_package};

/// Arguments of `cadence check-spec`.
#[derive(clap::Args)]
pub struct Args {
    /// The package.
    package: PathBuf,
    /// The problem spec (TOML).
    spec: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `cadence check-spec`; exits 0 when the package implements the spec, 1 if not.
pub fn run(args: Args) -> Result<ExitCode> {
    let spec = ProblemSpec::read(&args.spec)?;
    let bytes = read_package(&args.package)?;
    let package = parse_package(&args.package, &bytes)?;
    let differences = check(&package, &spec);
    if args.json {
        let report = serde_json::json!({
            "package": args.package,
            "spec": args.spec,
            "spec_name": spec.name,
            "implements": differences.is_empty(),
            "differences": differences,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if differences.is_empty() {
        println!(
            "{} implements `{}` ({})",
            args.package.display(),
            spec.name,
            args.spec.display()
        );
    } else {
        println!(
            "{} does not implement `{}` ({}): {} difference{}",
            args.package.display(),
            spec.name,
            args.spec.display(),
            differences.len(),
            if differences.len() == 1 { "" } else { "s" }
        );
        for difference in &differences {
            println!("  {difference}");
        }
    }
    Ok(if differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
