//! `cadence placeholder`: a package that implements a problem spec before a model exists.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cadence_compiler::CompileOptions;
use cadence_compiler::placeholder::{COUPLING, placeholder};
use cadence_compiler::spec::ProblemSpec;

use super::name_value;

/// Arguments of `cadence placeholder`.
#[derive(clap::Args)]
pub struct Args {
    /// The problem spec (TOML).
    spec: PathBuf,
    /// Where to write the package.
    #[arg(short, long)]
    output: PathBuf,
    /// Size a symbolic dim: SYMBOL=N (overrides the spec's `value`).
    #[arg(long = "dim", value_parser = name_value)]
    dims: Vec<(String, String)>,
    /// Number of test vectors to record.
    #[arg(long, default_value_t = 2)]
    test_cases: usize,
}

/// Runs `cadence placeholder`.
pub fn run(args: Args) -> Result<ExitCode> {
    let spec = ProblemSpec::read(&args.spec)?;
    let dims = args
        .dims
        .iter()
        .map(|(name, value)| {
            let size = value
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| {
                    format!("--dim {name}={value}: the size must be a positive integer")
                })?;
            Ok((name.clone(), size))
        })
        .collect::<Result<HashMap<_, _>>>()?;
    let options = CompileOptions {
        test_cases: args.test_cases,
        ..CompileOptions::default()
    };
    let compiled = placeholder(&spec, &dims, &options)?;
    let bytes = compiled.package.to_bytes()?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write `{}`", args.output.display()))?;
    println!(
        "wrote {} ({} bytes): placeholder for `{}`, {} test vectors",
        args.output.display(),
        bytes.len(),
        spec.name,
        args.test_cases
    );
    for symbol in &spec.symbols {
        let size = dims.get(&symbol.name).copied().or(symbol.value);
        if let Some(size) = size {
            println!("  {} = {size}", symbol.name);
        }
    }
    println!("  outputs: seeded constants in [0, 1) + {COUPLING} x the sum of the inputs' means");
    Ok(ExitCode::SUCCESS)
}
