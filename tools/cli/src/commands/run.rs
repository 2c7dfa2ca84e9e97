//! `cadence run`: one frame from files, outputs to `.npy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cadence_hal::{BackendKind, DType};
use cadence_models::camera::{self, Normalisation, RgbFrame};
use cadence_models::lidar::{self, CellIndex, POINTPILLARS_GRID, PillarGrid};
use cadence_runtime::engine::{Engine, TensorView};
use cadence_runtime::package::Preprocess;

use super::{name_value, parse_package, read_package};
use crate::{backends, npy};

/// Arguments of `cadence run`.
#[derive(clap::Args)]
pub struct Args {
    /// The package.
    package: PathBuf,
    /// An input: NAME=FILE.npy; or NAME=IMAGE (.npy uint8 of shape H,W,3, or .png, .jpg) for a
    /// package that declares camera pre-processing; or NAME=POINTS.npy (float32 of shape N,4)
    /// for one that declares lidar pillarisation.
    #[arg(long = "input", value_parser = name_value, required = true)]
    inputs: Vec<(String, String)>,
    /// Where to write `<output>.npy` files (`/` in names becomes `_`).
    #[arg(long)]
    output_dir: PathBuf,
    /// Backend to run on.
    #[arg(long, default_value_t)]
    backend: BackendKind,
}

/// An input file that is an 8-bit RGB frame: decoded pixels and size.
struct Rgb {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

fn read_image(path: &Path) -> Result<Rgb> {
    let img =
        image::open(path).with_context(|| format!("cannot decode image `{}`", path.display()))?;
    let rgb = img.to_rgb8();
    Ok(Rgb {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        pixels: rgb.into_raw(),
    })
}

/// A float32 `[N, 4]` point cloud (x, y, z, intensity), the lidar frame format.
fn is_point_cloud(t: &npy::NpyTensor) -> bool {
    t.dtype == DType::F32 && t.shape.len() == 2 && t.shape[1] == 4
}

/// Groups a point cloud into the PointPillars input tensor, reporting what was kept.
fn pillarise(
    points: &npy::NpyTensor,
    max_pillars: u32,
    max_points: u32,
    out: &mut [f32],
) -> Result<()> {
    let grid = PillarGrid {
        max_pillars: max_pillars as usize,
        max_points: max_points as usize,
        ..POINTPILLARS_GRID
    };
    let values = points.to_f32().context("points must be float32")?;
    let xyzi: Vec<[f32; 4]> = values
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let mut slots = vec![0u32; grid.cells()];
    let mut coords = vec![0i32; grid.coords_len()];
    let stats = lidar::pillarise(
        &xyzi,
        &grid,
        &mut CellIndex::new(&mut slots),
        out,
        &mut coords,
    )
    .map_err(|e| anyhow!("{e}"))?;
    println!(
        "pillarised {} points: {} pillars, {} points kept, {} out of range, {} dropped (pillar full), {} dropped (too many pillars)",
        xyzi.len(),
        stats.pillars,
        stats.points_kept,
        stats.points_out_of_range,
        stats.dropped_pillar_full,
        stats.dropped_too_many_pillars
    );
    Ok(())
}

/// Output file name for an output called `name`.
pub fn output_file_name(name: &str) -> String {
    format!("{}.npy", name.replace('/', "_"))
}

/// Runs `cadence run`.
pub fn run(args: Args) -> Result<ExitCode> {
    let bytes = read_package(&args.package)?;
    let pkg = parse_package(&args.package, &bytes)?;
    let backend = backends::create(args.backend, &pkg)?.ok_or_else(|| {
        anyhow!(
            "backend `{}` needs the source ONNX, which this package does not embed",
            args.backend
        )
    })?;
    let mut arena = backends::arena_for(&pkg);
    let mut engine = Engine::load(&pkg, backend, arena.as_mut_slice())?;
    let preprocess = pkg.metadata().preprocess();
    let missing: Vec<&str> = pkg
        .inputs()
        .map(|io| io.name())
        .filter(|n| !args.inputs.iter().any(|(given, _)| given == n))
        .collect();
    if !missing.is_empty() {
        bail!(
            "no data given for input(s) {}; pass --input NAME=FILE for each",
            missing.join(", ")
        );
    }

    for (name, file) in &args.inputs {
        let path = Path::new(file);
        let index = engine
            .input_index(name)
            .ok_or_else(|| anyhow!("the package has no input `{name}`"))?;
        let is_image = matches!(
            path.extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("png" | "jpg" | "jpeg")
        );
        let rgb = if is_image {
            Some(read_image(path)?)
        } else {
            let tensor = npy::read(path)?;
            if let Preprocess::LidarPillars {
                max_pillars,
                max_points,
            } = preprocess
                && is_point_cloud(&tensor)
            {
                pillarise(&tensor, max_pillars, max_points, engine.input_mut(index)?)
                    .with_context(|| format!("input `{name}` from `{file}`"))?;
                continue;
            }
            let frame_like =
                tensor.dtype == DType::U8 && tensor.shape.len() == 3 && tensor.shape[2] == 3;
            if frame_like
                && !matches!(
                    preprocess,
                    Preprocess::None | Preprocess::LidarPillars { .. }
                )
            {
                Some(Rgb {
                    height: tensor.shape[0],
                    width: tensor.shape[1],
                    pixels: tensor.bytes,
                })
            } else {
                let view = TensorView {
                    dtype: tensor.dtype,
                    shape: &tensor.shape,
                    bytes: &tensor.bytes,
                };
                engine
                    .set_input(name, view)
                    .with_context(|| format!("input `{name}` from `{file}`"))?;
                None
            }
        };
        if let Some(rgb) = rgb {
            let (norm, h, w) = match preprocess {
                Preprocess::CameraImagenet { height, width } => {
                    (Normalisation::Imagenet, height, width)
                }
                Preprocess::CameraUnit { height, width } => (Normalisation::Unit, height, width),
                _ => {
                    bail!("`{file}` is an image, but the package declares no camera pre-processing")
                }
            };
            let frame = RgbFrame {
                width: rgb.width,
                height: rgb.height,
                pixels: &rgb.pixels,
            };
            camera::preprocess(
                &frame,
                norm,
                h as usize,
                w as usize,
                engine.input_mut(index)?,
            )
            .map_err(|e| anyhow!("input `{name}` from `{file}`: {e}"))?;
        }
    }
    engine.run()?;
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create `{}`", args.output_dir.display()))?;
    for (name, shape, data) in engine.outputs()? {
        let path = args.output_dir.join(output_file_name(name));
        npy::write_f32(&path, shape.dims(), data)?;
        println!("wrote {} {}", path.display(), shape);
    }
    Ok(ExitCode::SUCCESS)
}
