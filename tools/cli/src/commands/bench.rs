//! `cadence bench`: the Cadence CPU backend and tract (or the backends named with
//! `--backend`, e.g. `--backend cpu --backend cuda`) on the same package, same inputs,
//! same process, frame by frame in turn so machine noise hits all alike.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use cadence_hal::BackendKind;
use cadence_hal::cpu::simd_level;
use cadence_runtime::engine::Engine;
use comfy_table::Table;
use serde_json::json;

use super::{parse_package, read_package};
use crate::backends;
use cadence_alloc_count::allocations;

/// Arguments of `cadence bench`.
#[derive(clap::Args)]
pub struct Args {
    /// The package.
    package: PathBuf,
    /// Timed frames per backend.
    #[arg(long, default_value_t = 200)]
    frames: usize,
    /// Untimed warm-up frames per backend.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Bench only these backends (repeat the flag; default: every backend built in).
    /// `cuda` is benched only when named.
    #[arg(long = "backend")]
    backends: Vec<BackendKind>,
}

/// Latency figures of one backend.
struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    allocs_per_frame: f64,
}

/// The `p`-th percentile (nearest rank) of `sorted` (ascending, not empty).
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `cadence bench`.
pub fn run(args: Args) -> Result<ExitCode> {
    let bytes = read_package(&args.package)?;
    let pkg = parse_package(&args.package, &bytes)?;
    let case = pkg
        .test_vectors()
        .next()
        .context("the package has no test vectors to use as bench inputs")?;
    let frames = args.frames.max(1);

    let mut arenas = Vec::new();
    let mut names = Vec::new();
    let chosen: Vec<BackendKind> = if args.backends.is_empty() {
        BackendKind::defaults().collect()
    } else {
        args.backends.clone()
    };
    for kind in chosen {
        if let Some(backend) = backends::create(kind, &pkg)? {
            arenas.push(backends::arena_for(&pkg));
            names.push((kind.name(), backend));
        }
    }
    let mut engines = Vec::new();
    for ((name, backend), arena) in names.into_iter().zip(arenas.iter_mut()) {
        let mut engine = Engine::load(&pkg, backend, arena.as_mut_slice())
            .map_err(|e| anyhow!("{name}: {e}"))?;
        for (io, data) in pkg.inputs().zip(case.inputs()) {
            engine.set_input_f32(io.name(), io.shape().dims(), data)?;
        }
        for _ in 0..args.warmup {
            engine.run()?;
        }
        engines.push((name, engine, Vec::with_capacity(frames), 0u64));
    }
    for _ in 0..frames {
        for (_, engine, times, allocs) in &mut engines {
            let before = allocations();
            let start = Instant::now();
            engine.run()?;
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            *allocs += allocations() - before;
            times.push(elapsed);
        }
    }
    let results: Vec<(&str, Figures)> = engines
        .into_iter()
        .map(|(name, _, mut times, allocs)| {
            times.sort_by(f64::total_cmp);
            let figures = Figures {
                p50_ms: percentile(&times, 50.0),
                p99_ms: percentile(&times, 99.0),
                p999_ms: percentile(&times, 99.9),
                max_ms: *times.last().unwrap_or(&0.0),
                allocs_per_frame: allocs as f64 / frames as f64,
            };
            (name, figures)
        })
        .collect();

    let by = |n: &str| results.iter().find(|(name, _)| *name == n).map(|(_, f)| f);
    let speedup = match (by("cpu"), by("tract")) {
        (Some(c), Some(t)) => Some(t.p50_ms / c.p50_ms),
        _ => None,
    };
    if args.json {
        let mut out = serde_json::Map::new();
        for (name, f) in &results {
            let key = if *name == "cpu" { "cadence" } else { name };
            out.insert(
                key.to_owned(),
                json!({"p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "p999_ms": f.p999_ms, "max_ms": f.max_ms, "allocs_per_frame": f.allocs_per_frame}),
            );
        }
        out.insert("tract_over_cadence_p50".into(), json!(speedup));
        out.insert("frames".into(), json!(frames));
        out.insert("simd".into(), json!(simd_level()));
        out.insert("arena_bytes".into(), json!(pkg.arena_bytes()));
        out.insert(
            "arena_lower_bound_bytes".into(),
            json!(pkg.arena_lower_bound_bytes()),
        );
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table.set_header([
        "backend",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "p99.9/p50",
        "max ms",
        "allocs/frame",
    ]);
    for (name, f) in &results {
        let label = if *name == "cpu" {
            format!("cadence cpu ({})", simd_level())
        } else {
            (*name).to_owned()
        };
        table.add_row([
            label,
            format!("{:.3}", f.p50_ms),
            format!("{:.3}", f.p99_ms),
            format!("{:.3}", f.p999_ms),
            format!("{:.3}", f.p999_ms / f.p50_ms),
            format!("{:.3}", f.max_ms),
            format!("{:.1}", f.allocs_per_frame),
        ]);
    }
    println!(
        "bench {} ({frames} frames each, 1 thread)",
        args.package.display()
    );
    println!("{table}");
    if let Some(s) = speedup {
        println!("tract p50 / cadence p50 = {s:.2}x");
    }
    println!(
        "arena {} bytes, lower bound {} bytes ({:.3}x)",
        pkg.arena_bytes(),
        pkg.arena_lower_bound_bytes(),
        pkg.arena_bytes() as f64 / pkg.arena_lower_bound_bytes().max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}
