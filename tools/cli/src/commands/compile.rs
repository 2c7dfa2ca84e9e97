//! `cadence compile`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cadence_compiler::CompileOptions;
use cadence_runtime::package::{ModelFamily, Preprocess};

use super::name_value;
use crate::npy;

/// The ONNX model a command reads, where its result goes, and how its inputs are
/// shaped and filled: the arguments `compile` and `prune` share.
#[derive(clap::Args)]
pub(super) struct OnnxArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Where to write the result (`compile`: the package; `prune`: the pruned model).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Pin an input's shape: NAME=D0,D1,... (needed for symbolic dims such as a batch N).
    #[arg(long = "input-shape", value_parser = name_value)]
    input_shapes: Vec<(String, String)>,
    /// Real data for the first test vector: NAME=FILE.npy (float32); else seeded values.
    #[arg(long = "test-input", value_parser = name_value)]
    test_inputs: Vec<(String, String)>,
}

impl OnnxArgs {
    /// The `--input-shape NAME=D0,D1,...` pins.
    pub fn input_shapes(&self) -> Result<HashMap<String, Vec<usize>>> {
        self.input_shapes
            .iter()
            .map(|(name, dims)| Ok((name.clone(), parse_dims(dims)?)))
            .collect()
    }

    /// The `--test-input NAME=FILE.npy` data (float32), read.
    pub fn test_inputs(&self) -> Result<HashMap<String, Vec<f32>>> {
        let mut inputs = HashMap::new();
        for (name, file) in &self.test_inputs {
            let tensor = npy::read(file.as_ref())?;
            let data = tensor.to_f32().with_context(|| {
                format!("`{file}` must hold float32 data, it holds {}", tensor.dtype)
            })?;
            inputs.insert(name.clone(), data);
        }
        Ok(inputs)
    }
}

/// Arguments of `cadence compile`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    onnx: OnnxArgs,
    /// Number of test vectors to record.
    #[arg(long, default_value_t = 2)]
    test_cases: usize,
    /// Model family: none, camera, lidar-pfn, lidar-backbone.
    #[arg(long, default_value = "none")]
    family: String,
    /// Pre-processing the model expects: none, camera-imagenet:HxW, camera-unit:HxW,
    /// lidar-pillars:PILLARSxPOINTS.
    #[arg(long, default_value = "none")]
    preprocess: String,
    /// Leave the source ONNX out of the package (smaller; no tract comparison).
    #[arg(long)]
    no_source: bool,
    /// Self-test tolerance: absolute part.
    #[arg(long, default_value_t = 1e-4)]
    atol: f32,
    /// Self-test tolerance: relative part.
    #[arg(long, default_value_t = 1e-3)]
    rtol: f32,
}

fn parse_dims(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .with_context(|| format!("`{d}` is not a dimension"))
        })
        .collect()
}

fn parse_pair(text: &str) -> Result<(u32, u32)> {
    let (a, b) = text.split_once('x').context("expected AxB")?;
    Ok((a.parse()?, b.parse()?))
}

fn parse_family(text: &str) -> Result<ModelFamily> {
    Ok(match text {
        "none" => ModelFamily::None,
        "camera" => ModelFamily::Camera,
        "lidar-pfn" => ModelFamily::LidarPfn,
        "lidar-backbone" => ModelFamily::LidarBackbone,
        other => bail!("unknown family `{other}` (none, camera, lidar-pfn, lidar-backbone)"),
    })
}

fn parse_preprocess(text: &str) -> Result<Preprocess> {
    let (kind, arg) = text.split_once(':').unwrap_or((text, ""));
    Ok(match kind {
        "none" => Preprocess::None,
        "camera-imagenet" => {
            let (height, width) = parse_pair(arg).context("camera-imagenet:HxW")?;
            Preprocess::CameraImagenet { height, width }
        }
        "camera-unit" => {
            let (height, width) = parse_pair(arg).context("camera-unit:HxW")?;
            Preprocess::CameraUnit { height, width }
        }
        "lidar-pillars" => {
            let (max_pillars, max_points) =
                parse_pair(arg).context("lidar-pillars:PILLARSxPOINTS")?;
            Preprocess::LidarPillars {
                max_pillars,
                max_points,
            }
        }
        other => bail!("unknown pre-processing `{other}`"),
    })
}

/// Runs `cadence compile`.
pub fn run(args: Args) -> Result<ExitCode> {
    let mut options = CompileOptions {
        input_shapes: args.onnx.input_shapes()?,
        test_inputs: args.onnx.test_inputs()?,
        ..CompileOptions::default()
    };
    options.test_cases = args.test_cases.max(1);
    options.embed_source = !args.no_source;
    options.tolerance.abs = args.atol;
    options.tolerance.rel = args.rtol;
    options.metadata.family = parse_family(&args.family)?;
    options.metadata.preprocess = parse_preprocess(&args.preprocess)?;

    let OnnxArgs { model, output, .. } = &args.onnx;
    let compiled = cadence_compiler::compile(model, &options)?;
    let bytes = compiled
        .package
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(output, &bytes)
        .with_context(|| format!("cannot write `{}`", output.display()))?;
    let p = &compiled.package;
    println!("wrote {} ({} bytes)", output.display(), bytes.len());
    println!("  steps           {}", compiled.steps);
    println!(
        "  arena           {} bytes (lower bound {} bytes, {:.3}x)",
        p.arena_bytes,
        p.arena_lower_bound_bytes,
        f64::from(p.arena_bytes) / f64::from(p.arena_lower_bound_bytes.max(1))
    );
    println!("  weights         {} bytes", p.weights.len());
    println!("  MACs            {}", p.provenance.macs);
    println!("  parameters      {}", p.provenance.parameters);
    println!("  test vectors    {}", p.test_cases.len());
    Ok(ExitCode::SUCCESS)
}
