//! NumPy `.npy` files, the tensor format every ML tool reads: reading lives in
//! `cadence_host::npy` (shared with the host target and fuzzed there), writing here.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};
use npyz::WriterBuilder;

pub use cadence_host::npy::{NpyTensor, read};

/// Writes `data` with `shape` as a float32 `.npy` file.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create `{}`", path.display()))?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&shape)
        .writer(BufWriter::new(file))
        .begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()?;
    Ok(())
}
