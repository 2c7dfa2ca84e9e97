//! Recorded sensor frames, read and decoded once at load so that a job only indexes
//! memory.

use std::path::{Path, PathBuf};

use cadence_hal::DType;
use cadence_models::camera::RgbFrame;

use super::PipelineError;
use crate::npy::{self, NpyTensor};

/// A decoded camera frame: 8-bit RGB, `[H, W, 3]`.
pub struct CameraFrame {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl CameraFrame {
    /// The frame as the pre-processing reads it.
    pub fn rgb(&self) -> RgbFrame<'_> {
        RgbFrame {
            width: self.width,
            height: self.height,
            pixels: &self.pixels,
        }
    }
}

/// A lidar sweep: `[x, y, z, intensity]` per point, in sensor order.
pub type Sweep = Vec<[f32; 4]>;

/// The recorded camera frames: `source` is one `.npy` file or a folder of
/// `frame_<digits>.npy` files (uint8 `[H, W, 3]`), taken in name order.
pub fn camera_frames(source: &Path) -> Result<Vec<CameraFrame>, PipelineError> {
    sample_files(source, "frame_")?
        .into_iter()
        .map(|path| {
            let NpyTensor {
                shape,
                bytes: pixels,
                ..
            } = read_npy(&path, DType::U8)?;
            match shape[..] {
                [height, width, 3] if height > 0 && width > 0 => Ok(CameraFrame {
                    width,
                    height,
                    pixels,
                }),
                _ => Err(PipelineError::BadSample {
                    path,
                    reason: format!("shape {shape:?}; a camera frame is uint8 [H, W, 3]"),
                }),
            }
        })
        .collect()
}

/// The recorded lidar sweeps: `source` is one `.npy` file or a folder of
/// `sweep_<digits>.npy` files (float32 `[N, 4]`), taken in name order.
pub fn lidar_sweeps(source: &Path) -> Result<Vec<Sweep>, PipelineError> {
    sample_files(source, "sweep_")?
        .into_iter()
        .map(|path| {
            let tensor = read_npy(&path, DType::F32)?;
            match tensor.shape[..] {
                [_, 4] => Ok(tensor
                    .to_f32()
                    .unwrap_or_default()
                    .chunks_exact(4)
                    .map(|p| [p[0], p[1], p[2], p[3]])
                    .collect()),
                _ => Err(PipelineError::BadSample {
                    path,
                    reason: format!("shape {:?}; a lidar sweep is float32 [N, 4]", tensor.shape),
                }),
            }
        })
        .collect()
}

/// `source` itself if it is a file, else its `<prefix><digits>.npy` entries sorted by
/// name (so `frame_000_input.npy` and other derived files next to them are left out).
fn sample_files(source: &Path, prefix: &str) -> Result<Vec<PathBuf>, PipelineError> {
    if source.is_file() {
        return Ok(vec![source.to_owned()]);
    }
    let entries = std::fs::read_dir(source).map_err(|e| PipelineError::BadSample {
        path: source.to_owned(),
        reason: format!("cannot list the folder: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(".npy"))
                .is_some_and(|digits| {
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                })
        })
        .collect();
    if files.is_empty() {
        return Err(PipelineError::NoSamples {
            folder: source.to_owned(),
            pattern: format!("{prefix}<digits>.npy"),
        });
    }
    files.sort();
    Ok(files)
}

/// Reads a recording through [`crate::npy`], which checks what a file claims before
/// allocating it, and requires `dtype`.
fn read_npy(path: &Path, dtype: DType) -> Result<NpyTensor, PipelineError> {
    let bad = |reason: String| PipelineError::BadSample {
        path: path.to_owned(),
        reason,
    };
    let tensor = npy::read(path).map_err(|e| bad(e.to_string()))?;
    if tensor.dtype != dtype {
        return Err(bad(format!(
            "element type {:?}; this sensor's recordings are {dtype:?}",
            tensor.dtype
        )));
    }
    Ok(tensor)
}
