//! Reading and writing NumPy `.npy` files, the tensor format every ML tool reads.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use anyhow::{Context, Result, bail};
use cadence_hal::DType;
use npyz::WriterBuilder;

/// A tensor read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyTensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Little-endian element bytes, row-major.
    pub bytes: Vec<u8>,
}

impl NpyTensor {
    /// The elements as `f32`, if the dtype is `f32`.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32).then(|| {
            self.bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }
}

/// Reads `path`. Fortran-ordered arrays and dtypes Cadence has no use for are refused.
pub fn read(path: &Path) -> Result<NpyTensor> {
    let file = File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    parse(BufReader::new(file))
        .with_context(|| format!("`{}` is not a usable .npy file", path.display()))
}

/// Parses `.npy` bytes from `reader`.
pub fn parse(reader: impl std::io::Read) -> Result<NpyTensor> {
    let npy = npyz::NpyFile::new(reader)?;
    if npy.order() != npyz::Order::C {
        bail!("the array is Fortran-ordered; save it with numpy.ascontiguousarray");
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let npyz::DType::Plain(ty) = npy.dtype() else {
        bail!("structured arrays are not supported");
    };
    let (dtype, bytes): (DType, Vec<u8>) = match (ty.type_char(), ty.size_field()) {
        (npyz::TypeChar::Float, 4) => (
            DType::F32,
            flat(npy.into_vec::<f32>()?.iter().map(|v| v.to_le_bytes())),
        ),
        (npyz::TypeChar::Uint, 1) => (DType::U8, npy.into_vec::<u8>()?),
        (npyz::TypeChar::Int, 1) => (
            DType::I8,
            flat(npy.into_vec::<i8>()?.iter().map(|v| v.to_le_bytes())),
        ),
        (npyz::TypeChar::Int, 4) => (
            DType::I32,
            flat(npy.into_vec::<i32>()?.iter().map(|v| v.to_le_bytes())),
        ),
        (npyz::TypeChar::Int, 8) => (
            DType::I64,
            flat(npy.into_vec::<i64>()?.iter().map(|v| v.to_le_bytes())),
        ),
        (c, s) => bail!(
            "dtype {c:?} of {s} bytes is not supported (use float32, uint8, int8, int32 or int64)"
        ),
    };
    let volume: usize = shape.iter().product();
    if volume * dtype.size() != bytes.len() {
        bail!(
            "the data holds {} bytes, the shape {shape:?} needs {}",
            bytes.len(),
            volume * dtype.size()
        );
    }
    Ok(NpyTensor {
        shape,
        dtype,
        bytes,
    })
}

fn flat<const N: usize>(items: impl Iterator<Item = [u8; N]>) -> Vec<u8> {
    items.flatten().collect()
}

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
