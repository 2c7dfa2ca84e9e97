//! `cadence bench`: the Cadence CPU backend, tract and onnxruntime (or the backends named
//! with `--backend`, e.g. `--backend cpu --backend cuda`) on the same package, same
//! inputs, same process, frame by frame in turn so machine noise hits all alike.

#[cfg(feature = "onnxruntime")]
mod onnxruntime;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use cadence_hal::BackendKind;
use cadence_hal::cpu::simd_level;
use cadence_runtime::engine::Engine;
use cadence_runtime::package::{Package, VectorCase};
use comfy_table::Table;
use serde_json::json;

use super::{parse_package, read_package};
use crate::backends;
use cadence_alloc_count::allocations;
use cadence_hal::backends::AnyBackend;

/// onnxruntime's name in `--backend`, the table and the JSON report. It is a peer, not a
/// Cadence backend: it runs its own session on the source ONNX, outside Cadence's engine.
const ONNXRUNTIME: &str = "onnxruntime";

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
    /// Bench only these backends (repeat the flag; default: every backend built in, and
    /// `onnxruntime` when ORT_DYLIB_PATH names its library). `cuda` is benched only when
    /// named.
    #[arg(long = "backend")]
    backends: Vec<BenchPeer>,
}

/// What `--backend` may name in a bench: a Cadence backend, or onnxruntime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BenchPeer {
    /// A backend of the registry, run behind Cadence's engine.
    Backend(BackendKind),
    /// onnxruntime on the source ONNX.
    OnnxRuntime,
}

impl std::str::FromStr for BenchPeer {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        if name == ONNXRUNTIME {
            return Ok(Self::OnnxRuntime);
        }
        name.parse()
            .map(Self::Backend)
            .map_err(|e| format!("{e}, or `{ONNXRUNTIME}` as a peer"))
    }
}

/// Latency figures of one backend.
struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    allocs_per_frame: f64,
}

/// One peer timed frame by frame.
enum Peer<'p, 'a> {
    /// Cadence's engine on a backend (tract included: it runs behind the engine); boxed,
    /// it is several times the size of the other variant.
    Engine(Box<Engine<'p, 'a, AnyBackend>>),
    /// onnxruntime's own session on the source ONNX.
    #[cfg(feature = "onnxruntime")]
    OnnxRuntime(onnxruntime::Peer),
}

impl Peer<'_, '_> {
    /// Writes a frame's inputs, before the timer starts: the engine's planner may reuse
    /// an input's memory once the model has read it, so every frame sets them again
    /// (as `cadence profile` does); onnxruntime keeps its input tensors intact.
    fn set_inputs(&mut self, pkg: &Package<'_>, case: &VectorCase<'_>) -> Result<()> {
        match self {
            Self::Engine(engine) => {
                for (io, data) in pkg.inputs().zip(case.inputs()) {
                    engine.set_input_f32(io.name(), io.shape().dims(), data)?;
                }
                Ok(())
            }
            #[cfg(feature = "onnxruntime")]
            Self::OnnxRuntime(_) => Ok(()),
        }
    }

    fn run(&mut self) -> Result<()> {
        match self {
            Self::Engine(engine) => Ok(engine.run()?),
            #[cfg(feature = "onnxruntime")]
            Self::OnnxRuntime(peer) => peer.run(),
        }
    }
}

/// onnxruntime on `pkg`, if its library loads. When it does not, that is an error if
/// the user named onnxruntime, else one line on stderr with the reason and how to get
/// the library, and the bench goes on without it.
#[cfg(feature = "onnxruntime")]
fn onnxruntime_peer(
    pkg: &Package<'_>,
    case: &VectorCase<'_>,
    named: bool,
) -> Result<Option<Peer<'static, 'static>>> {
    match onnxruntime::load() {
        Ok(environment) => {
            Ok(onnxruntime::Peer::for_package(&environment, pkg, case)?.map(Peer::OnnxRuntime))
        }
        Err(e) if named => Err(anyhow!("backend `{ONNXRUNTIME}`: {e}")),
        Err(e) => {
            eprintln!("{ONNXRUNTIME} not benched: {e}");
            Ok(None)
        }
    }
}

/// This build has no onnxruntime: naming it is an error that says how to get it.
#[cfg(not(feature = "onnxruntime"))]
fn onnxruntime_peer(
    _pkg: &Package<'_>,
    _case: &VectorCase<'_>,
    _named: bool,
) -> Result<Option<Peer<'static, 'static>>> {
    Err(anyhow!(
        "backend `{ONNXRUNTIME}` is not built into this `cadence`; rebuild with `cargo build --release -p cadence-cli --features {ONNXRUNTIME}`"
    ))
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

    let named = !args.backends.is_empty();
    let chosen: Vec<BenchPeer> = if named {
        args.backends.clone()
    } else {
        let onnxruntime = cfg!(feature = "onnxruntime").then_some(BenchPeer::OnnxRuntime);
        BackendKind::defaults()
            .map(BenchPeer::Backend)
            .chain(onnxruntime)
            .collect()
    };
    let mut arenas = Vec::new();
    let mut names = Vec::new();
    for &peer in &chosen {
        let BenchPeer::Backend(kind) = peer else {
            continue;
        };
        if let Some(backend) = backends::create(kind, &pkg)? {
            arenas.push(backends::arena_for(&pkg));
            names.push((kind.name(), backend));
        }
    }
    let mut peers = Vec::new();
    for ((name, backend), arena) in names.into_iter().zip(arenas.iter_mut()) {
        let engine = Engine::load(&pkg, backend, arena.as_mut_slice())
            .map_err(|e| anyhow!("{name}: {e}"))?;
        peers.push((name, Peer::Engine(Box::new(engine))));
    }
    if chosen.contains(&BenchPeer::OnnxRuntime)
        && let Some(peer) = onnxruntime_peer(&pkg, &case, named)?
    {
        peers.push((ONNXRUNTIME, peer));
    }
    let mut timed = Vec::new();
    for (name, mut peer) in peers {
        for _ in 0..args.warmup {
            peer.set_inputs(&pkg, &case)?;
            peer.run()?;
        }
        timed.push((name, peer, Vec::with_capacity(frames), 0u64));
    }
    for _ in 0..frames {
        for (_, peer, times, allocs) in &mut timed {
            peer.set_inputs(&pkg, &case)?;
            let before = allocations();
            let start = Instant::now();
            peer.run()?;
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            *allocs += allocations() - before;
            times.push(elapsed);
        }
    }
    let results: Vec<(&str, Figures)> = timed
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
    let p50_ratio = |over: &str, under: &str| match (by(over), by(under)) {
        (Some(o), Some(u)) => Some(o.p50_ms / u.p50_ms),
        _ => None,
    };
    let tract_over_cadence = p50_ratio("tract", "cpu");
    let cadence_over_onnxruntime = p50_ratio("cpu", ONNXRUNTIME);
    if args.json {
        let mut out = serde_json::Map::new();
        for (name, f) in &results {
            let key = if *name == "cpu" { "cadence" } else { name };
            out.insert(
                key.to_owned(),
                json!({"p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "p999_ms": f.p999_ms, "max_ms": f.max_ms, "allocs_per_frame": f.allocs_per_frame}),
            );
        }
        out.insert("tract_over_cadence_p50".into(), json!(tract_over_cadence));
        out.insert(
            "cadence_over_onnxruntime_p50".into(),
            json!(cadence_over_onnxruntime),
        );
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
        "bench {} ({frames} frames each, 1 thread each)",
        args.package.display()
    );
    println!("{table}");
    if let Some(ratio) = tract_over_cadence {
        println!("tract p50 / cadence p50 = {ratio:.2}x");
    }
    if let Some(ratio) = cadence_over_onnxruntime {
        println!("cadence p50 / onnxruntime p50 = {ratio:.2}x");
    }
    if by(ONNXRUNTIME).is_some() {
        println!(
            "onnxruntime's allocs/frame are those through Rust's allocator (the ort wrapper); its C++ heap is not counted"
        );
    }
    println!(
        "arena {} bytes, lower bound {} bytes ({:.3}x)",
        pkg.arena_bytes(),
        pkg.arena_lower_bound_bytes(),
        pkg.arena_bytes() as f64 / pkg.arena_lower_bound_bytes().max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}
