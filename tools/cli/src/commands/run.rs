//! `cadence run`: one frame from files, outputs to `.npy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cadence_hal::DType;
use cadence_models::camera::{self, Normalisation, RgbFrame};
use cadence_runtime::engine::{Engine, TensorView};
use cadence_runtime::package::Preprocess;

use super::{name_value, parse_package, read_package};
use crate::{backends, npy};

/// Arguments of `cadence run`.
#[derive(clap::Args)]
pub struct Args {
    /// The package.
    package: PathBuf,
    /// An input: NAME=FILE.npy, or NAME=IMAGE (.npy uint8 [H,W,3], .png, .jpg) for a
    /// package that declares camera pre-processing.
    #[arg(long = "input", value_parser = name_value, required = true)]
    inputs: Vec<(String, String)>,
    /// Where to write `<output>.npy` files (`/` in names becomes `_`).
    #[arg(long)]
    output_dir: PathBuf,
    /// Backend to run on.
    #[arg(long, default_value = "cpu")]
    backend: String,
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

/// Output file name for an output called `name`.
pub fn output_file_name(name: &str) -> String {
    format!("{}.npy", name.replace('/', "_"))
}

/// Runs `cadence run`.
pub fn run(args: Args) -> Result<ExitCode> {
    let bytes = read_package(&args.package)?;
    let pkg = parse_package(&args.package, &bytes)?;
    let backend = backends::create(&args.backend, &pkg)?.ok_or_else(|| {
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
