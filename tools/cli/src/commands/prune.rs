//! `cadence prune`: structured channel pruning of an ONNX model, with what it bought
//! (MACs, parameters, CPU-backend latency before and after, measured in this process)
//! and what it cost (output deviation on the original package's test input).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use cadence_compiler::prune::{PerLayer, PruneOptions, Pruned, prune};
use cadence_compiler::{CompileOptions, Compiled, compile_bytes};
use cadence_hal::cpu::CpuBackend;
use cadence_runtime::engine::Engine;
use cadence_runtime::package::{AlignedBytes, Package};
use comfy_table::Table;
use serde_json::json;

use super::bench::percentile;
use super::compile::OnnxArgs;

/// Arguments of `cadence prune`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    onnx: OnnxArgs,
    /// Fraction of each prunable channel group to remove, in [0, 1).
    #[arg(long)]
    ratio: f64,
    /// Per-layer rules (TOML): conv name = ratio, "skip", or { ratio, multiple_of }.
    #[arg(long)]
    per_layer: Option<PathBuf>,
    /// Timed frames per model for the latency comparison.
    #[arg(long, default_value_t = 20)]
    frames: usize,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// One model compiled and loaded on the CPU backend.
struct Loaded {
    compiled: Compiled,
    bytes: AlignedBytes,
}

impl Loaded {
    fn compile(onnx: &[u8], name: &str, options: &CompileOptions) -> Result<Self> {
        let compiled = compile_bytes(onnx.to_vec(), name, options)
            .with_context(|| format!("cannot compile {name}"))?;
        let bytes = AlignedBytes::from_slice(
            &compiled
                .package
                .to_bytes()
                .map_err(|e| anyhow!("{name}: {e}"))?,
        );
        Ok(Self { compiled, bytes })
    }

    fn package(&self) -> Result<Package<'_>> {
        Package::parse(self.bytes.as_slice()).map_err(|e| anyhow!("{e}"))
    }
}

/// Max-abs deviation of one output.
struct Deviation {
    output: String,
    max_abs: f32,
    reference_max_abs: f32,
}

/// Runs `cadence prune`.
pub fn run(args: Args) -> Result<ExitCode> {
    let source = std::fs::read(&args.onnx.model)
        .with_context(|| format!("cannot read `{}`", args.onnx.model.display()))?;
    let per_layer = match &args.per_layer {
        Some(path) => PerLayer::from_toml(
            &std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?,
        )?,
        None => PerLayer::default(),
    };
    let shapes = args.onnx.input_shapes()?;
    let pruned = prune(
        &source,
        &PruneOptions {
            ratio: args.ratio,
            per_layer,
            input_shapes: shapes.clone(),
        },
    )?;
    std::fs::write(&args.onnx.output, &pruned.onnx)
        .with_context(|| format!("cannot write `{}`", args.onnx.output.display()))?;

    let options = CompileOptions {
        input_shapes: shapes,
        test_inputs: args.onnx.test_inputs()?,
        test_cases: 1,
        embed_source: false,
        ..CompileOptions::default()
    };
    let name = |p: &PathBuf| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into())
    };
    let original = Loaded::compile(&source, &name(&args.onnx.model), &options)?;
    let smaller = Loaded::compile(
        &pruned.onnx,
        &name(&args.onnx.output),
        &CompileOptions {
            test_cases: 0,
            ..options.clone()
        },
    )?;
    let (original_pkg, pruned_pkg) = (original.package()?, smaller.package()?);
    let mut arenas = [
        AlignedBytes::zeroed(original_pkg.arena_bytes()),
        AlignedBytes::zeroed(pruned_pkg.arena_bytes()),
    ];
    let [original_arena, pruned_arena] = &mut arenas;
    let mut engines = [
        Engine::load(&original_pkg, CpuBackend, original_arena.as_mut_slice())?,
        Engine::load(&pruned_pkg, CpuBackend, pruned_arena.as_mut_slice())?,
    ];
    let case = &original.compiled.package.test_cases[0];
    for engine in &mut engines {
        for (io, data) in original.compiled.package.inputs.iter().zip(&case.inputs) {
            let dims: Vec<usize> = io.dims.iter().map(|d| d.value() as usize).collect();
            engine.set_input_f32(&io.name, &dims, data)?;
        }
    }

    let [_, pruned_engine] = &mut engines;
    pruned_engine.run()?;
    let deviations = original
        .compiled
        .package
        .outputs
        .iter()
        .zip(&case.outputs)
        .map(|(io, want)| {
            let got = pruned_engine.output(&io.name)?;
            Ok(Deviation {
                output: io.name.clone(),
                max_abs: got
                    .iter()
                    .zip(want)
                    .map(|(g, w)| (g - w).abs())
                    .fold(0.0, f32::max),
                reference_max_abs: want.iter().map(|w| w.abs()).fold(0.0, f32::max),
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let p50_ms = p50_latencies(&mut engines, args.frames.max(1))?;
    let figures = [
        (
            "MACs",
            original.compiled.package.provenance.macs as f64,
            smaller.compiled.package.provenance.macs as f64,
        ),
        (
            "parameters",
            original.compiled.package.provenance.parameters as f64,
            smaller.compiled.package.provenance.parameters as f64,
        ),
        ("CPU p50 ms", p50_ms[0], p50_ms[1]),
    ];
    if args.json {
        print_json(&args, &pruned, &figures, &deviations)?;
    } else {
        print_tables(&args, &pruned, &figures, &deviations);
    }
    Ok(ExitCode::SUCCESS)
}

/// p50 latency of each engine over `frames` frames, run in turn frame by frame so
/// machine noise hits both alike (after two untimed warm-up frames each).
fn p50_latencies<B: cadence_hal::Accelerator>(
    engines: &mut [Engine<'_, '_, B>],
    frames: usize,
) -> Result<Vec<f64>> {
    for engine in engines.iter_mut() {
        for _ in 0..2 {
            engine.run()?;
        }
    }
    let mut times = vec![Vec::with_capacity(frames); engines.len()];
    for _ in 0..frames {
        for (engine, times) in engines.iter_mut().zip(&mut times) {
            let start = Instant::now();
            engine.run()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            percentile(&t, 50.0)
        })
        .collect())
}

fn print_json(
    args: &Args,
    pruned: &Pruned,
    figures: &[(&str, f64, f64)],
    deviations: &[Deviation],
) -> Result<()> {
    let figure = |i: usize| json!({"before": figures[i].1, "after": figures[i].2});
    let out = json!({
        "output": args.onnx.output.display().to_string(),
        "ratio": args.ratio,
        "macs": {"before": figures[0].1 as u64, "after": figures[0].2 as u64},
        "parameters": {"before": figures[1].1 as u64, "after": figures[1].2 as u64},
        "cpu_p50_ms": figure(2),
        "frames": args.frames.max(1),
        "deviation": deviations.iter().map(|d| json!({
            "output": d.output, "max_abs": d.max_abs, "reference_max_abs": d.reference_max_abs,
        })).collect::<Vec<_>>(),
        "pruned": pruned.pruned.iter().map(|g| json!({
            "leader": g.leader, "convs": g.convs, "channels": g.channels, "kept": g.kept,
        })).collect::<Vec<_>>(),
        "not_pruned": pruned.not_pruned.iter().map(|n| json!({
            "layer": n.layer, "convs": n.convs, "reason": n.reason,
        })).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn print_tables(
    args: &Args,
    pruned: &Pruned,
    figures: &[(&str, f64, f64)],
    deviations: &[Deviation],
) {
    println!(
        "pruned {} -> {} (ratio {})",
        args.onnx.model.display(),
        args.onnx.output.display(),
        args.ratio
    );
    let mut table = Table::new();
    table.set_header(["", "before", "after", "after / before"]);
    for (what, before, after) in figures {
        let cell = |v: f64| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.3}")
            }
        };
        table.add_row([
            (*what).to_owned(),
            cell(*before),
            cell(*after),
            format!("{:.3}x", after / before),
        ]);
    }
    println!("{table}");
    println!(
        "CPU backend, 1 thread, {} frames each, interleaved in this process",
        args.frames.max(1)
    );

    let mut table = Table::new();
    table.set_header(["output", "max |pruned - original|", "max |original|"]);
    for d in deviations {
        table.add_row([
            d.output.clone(),
            format!("{:.4e}", d.max_abs),
            format!("{:.4e}", d.reference_max_abs),
        ]);
    }
    println!(
        "\noutput deviation on the original's test input (weights were removed, so it is not zero):"
    );
    println!("{table}");

    let mut table = Table::new();
    table.set_header(["channel group (first conv)", "convs", "channels", "kept"]);
    for g in &pruned.pruned {
        table.add_row([
            g.leader.clone(),
            g.convs.len().to_string(),
            g.channels.to_string(),
            g.kept.to_string(),
        ]);
    }
    println!("\npruned {} channel groups:", pruned.pruned.len());
    println!("{table}");

    if !pruned.not_pruned.is_empty() {
        let mut table = Table::new();
        table.set_header(["not pruned (first conv)", "reason"]);
        for n in &pruned.not_pruned {
            table.add_row([n.layer.clone(), n.reason.clone()]);
        }
        println!("\n{} channel groups left whole:", pruned.not_pruned.len());
        println!("{table}");
    }
}
