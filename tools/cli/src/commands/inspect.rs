//! `cadence inspect`: everything a package holds, as tables or JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cadence_hal::{Op, Plan, Shape};
use cadence_runtime::package::{Dim, IoSpec, Package};
use comfy_table::Table;
use serde_json::{Value, json};

use super::{parse_package, read_package};

/// Arguments of `cadence inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// The package.
    package: PathBuf,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Also list every step of the plan.
    #[arg(long)]
    steps: bool,
}

/// One step as reported.
struct StepInfo<'a> {
    name: &'a str,
    op: &'static str,
    output: Shape,
    macs: u64,
    scratch: u32,
}

fn steps<'a>(plan: &Plan<'a>) -> Vec<StepInfo<'a>> {
    plan.steps
        .iter()
        .map(|s| {
            let shapes: Vec<Shape> = s.used_inputs().map(|t| plan.shape(t)).collect();
            let output = plan.shape(s.output);
            let op = Op::decode(s).ok();
            StepInfo {
                name: plan.step_name(s),
                op: op.map_or("?", |o| o.name()),
                macs: op.map_or(0, |o| o.macs(&shapes, &output)),
                output,
                scratch: s.scratch_bytes,
            }
        })
        .collect()
}

fn dims_text(io: &IoSpec<'_>) -> String {
    let parts: Vec<String> = io
        .dims()
        .map(|d| match d {
            Dim::Fixed(v) => v.to_string(),
            Dim::Symbolic { name, value } => format!("{name}={value}"),
        })
        .collect();
    format!("[{}]", parts.join(","))
}

fn io_json(io: &IoSpec<'_>) -> Value {
    let symbols: Vec<Value> = io
        .dims()
        .map(|d| match d {
            Dim::Fixed(_) => Value::Null,
            Dim::Symbolic { name, .. } => json!(name),
        })
        .collect();
    json!({
        "name": io.name(),
        "dtype": io.dtype().name(),
        "shape": io.shape().dims(),
        "symbols": symbols,
        "nan_policy": format!("{:?}", io.nan_policy()).to_lowercase(),
    })
}

/// `value` as the `f64` its shortest decimal form names: a stored `1e-4` reads back as
/// `0.0001`, not its exact binary value `0.00009999999747378752`.
fn shortest(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the JSON report (also the source of the tables).
pub fn report(pkg: &Package<'_>) -> Value {
    let plan = pkg.plan();
    let steps = steps(&plan);
    let mut ops: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for s in &steps {
        let e = ops.entry(s.op).or_default();
        e.0 += 1;
        e.1 += s.macs;
    }
    let prov = pkg.provenance();
    let meta = pkg.metadata();
    json!({
        "format_version": format!("{}.{}", pkg.format_version().0, pkg.format_version().1),
        "file_bytes": pkg.file_len(),
        "inputs": pkg.inputs().map(|io| io_json(&io)).collect::<Vec<_>>(),
        "outputs": pkg.outputs().map(|io| io_json(&io)).collect::<Vec<_>>(),
        "arena_bytes": pkg.arena_bytes(),
        "arena_lower_bound_bytes": pkg.arena_lower_bound_bytes(),
        "arena_over_bound": pkg.arena_bytes() as f64 / pkg.arena_lower_bound_bytes().max(1) as f64,
        "alignment": pkg.alignment(),
        "weights_bytes": plan.weights.len(),
        "macs": prov.macs(),
        "params": prov.parameters(),
        "steps": steps.len(),
        "tensors": plan.tensors.len(),
        "ops": ops.iter().map(|(op, (n, macs))| json!({"op": op, "count": n, "macs": macs})).collect::<Vec<_>>(),
        "plan": steps.iter().map(|s| json!({
            "name": s.name, "op": s.op, "output_shape": s.output.dims(), "macs": s.macs, "scratch_bytes": s.scratch,
        })).collect::<Vec<_>>(),
        "test_vectors": pkg.test_vectors().len(),
        "tolerance": {"abs": shortest(pkg.tolerance().abs), "rel": shortest(pkg.tolerance().rel)},
        "family": meta.family().name(),
        "preprocess": meta.preprocess().to_string(),
        "provenance": {
            "source": prov.source_name(),
            "source_sha256": hex(prov.source_sha256()),
            "compiler_version": prov.compiler_version(),
            "git_commit": prov.git_commit(),
            "created_unix": prov.created_unix(),
        },
        "has_source_onnx": pkg.source_onnx().is_some(),
        "sections": pkg.sections().map(|s| json!({
            "kind": s.kind.to_string(), "offset": s.offset, "bytes": s.len, "crc32": format!("{:08x}", s.crc),
        })).collect::<Vec<_>>(),
    })
}

/// Runs `cadence inspect`.
pub fn run(args: Args) -> Result<ExitCode> {
    let bytes = read_package(&args.package)?;
    let pkg = parse_package(&args.package, &bytes)?;
    let r = report(&pkg);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("package {}", args.package.display());
    let mut spec = Table::new();
    spec.set_header(["role", "name", "dtype", "shape", "NaN policy"]);
    for (role, list) in [
        ("input", pkg.inputs().collect::<Vec<_>>()),
        ("output", pkg.outputs().collect()),
    ] {
        for io in list {
            let nan = format!("{:?}", io.nan_policy()).to_lowercase();
            spec.add_row([role, io.name(), io.dtype().name(), &dims_text(&io), &nan]);
        }
    }
    println!("\nspec\n{spec}");

    let mut summary = Table::new();
    summary.set_header(["", ""]);
    let row = |t: &mut Table, k: &str, v: String| {
        t.add_row([k.to_owned(), v]);
    };
    row(&mut summary, "arena", format!("{} bytes", r["arena_bytes"]));
    row(
        &mut summary,
        "arena lower bound",
        format!(
            "{} bytes ({:.3}x)",
            r["arena_lower_bound_bytes"],
            r["arena_over_bound"].as_f64().unwrap_or(0.0)
        ),
    );
    row(
        &mut summary,
        "weights",
        format!("{} bytes", r["weights_bytes"]),
    );
    row(&mut summary, "MACs", r["macs"].to_string());
    row(&mut summary, "parameters", r["params"].to_string());
    row(
        &mut summary,
        "steps / tensors",
        format!("{} / {}", r["steps"], r["tensors"]),
    );
    row(
        &mut summary,
        "family",
        r["family"].as_str().unwrap_or("").to_owned(),
    );
    row(
        &mut summary,
        "pre-processing",
        r["preprocess"].as_str().unwrap_or("").to_owned(),
    );
    row(
        &mut summary,
        "test vectors",
        format!("{} (tolerance {})", r["test_vectors"], pkg.tolerance()),
    );
    println!("\nmemory and compute\n{summary}");

    let mut ops = Table::new();
    ops.set_header(["op", "steps", "MACs"]);
    for op in r["ops"].as_array().into_iter().flatten() {
        ops.add_row([
            op["op"].as_str().unwrap_or("").to_owned(),
            op["count"].to_string(),
            op["macs"].to_string(),
        ]);
    }
    println!("\nops\n{ops}");

    if args.steps {
        let mut plan = Table::new();
        plan.set_header(["#", "step", "op", "output", "MACs", "scratch"]);
        for (i, s) in steps(&pkg.plan()).iter().enumerate() {
            plan.add_row([
                i.to_string(),
                s.name.to_owned(),
                s.op.to_owned(),
                s.output.to_string(),
                s.macs.to_string(),
                s.scratch.to_string(),
            ]);
        }
        println!("\nplan\n{plan}");
    }

    let mut prov = Table::new();
    prov.set_header(["provenance", ""]);
    for key in [
        "source",
        "source_sha256",
        "compiler_version",
        "git_commit",
        "created_unix",
    ] {
        prov.add_row([
            key.to_owned(),
            r["provenance"][key]
                .to_string()
                .trim_matches('"')
                .to_owned(),
        ]);
    }
    println!("\n{prov}");

    let mut sections = Table::new();
    sections.set_header(["section", "offset", "bytes", "crc32"]);
    for s in r["sections"].as_array().into_iter().flatten() {
        sections.add_row([
            s["kind"].as_str().unwrap_or("").to_owned(),
            s["offset"].to_string(),
            s["bytes"].to_string(),
            s["crc32"].as_str().unwrap_or("").to_owned(),
        ]);
    }
    println!("\n{sections}");
    Ok(ExitCode::SUCCESS)
}
