//! Reading NumPy `.npy` files, the tensor format every ML tool writes.
//!
//! A file is read whole and checked against its own length before anything it claims
//! is allocated: npyz parses the header, but it allocates the header length the file
//! states before reading it (up to 4 GiB for a 12-byte file) and multiplies the dims
//! unchecked (a panic in debug builds, a wrapped, wrong element count in release
//! ones), so both are checked here first, and so is the bracket nesting its literal
//! parser takes exponential time over. All three were found by the `npy` fuzz target.

use std::path::{Path, PathBuf};

use cadence_hal::DType;
use thiserror::Error;

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

/// Why `.npy` bytes do not make a tensor Cadence can use.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The header is not a `.npy` header (or the file ends inside it).
    #[error("bad .npy header: {0}")]
    Header(String),
    /// The header length in the preamble runs past the end of the file.
    #[error(
        "the header claims {claimed} bytes but only {available} follow the preamble: the file is cut short or damaged"
    )]
    HeaderLength {
        /// Header bytes the preamble gives.
        claimed: usize,
        /// Bytes after the preamble.
        available: usize,
    },
    /// Column-major data.
    #[error("the array is Fortran-ordered; save it with numpy.ascontiguousarray")]
    FortranOrder,
    /// A record array.
    #[error("structured arrays are not supported; save one plain array per file")]
    Structured,
    /// An element type no Cadence tensor has.
    #[error(
        "dtype {type_char:?} of {size} bytes is not supported (use float32, uint8, int8, int32 or int64)"
    )]
    UnsupportedDType {
        /// NumPy's kind of the dtype.
        type_char: npyz::TypeChar,
        /// Bytes per element.
        size: u64,
    },
    /// A header longer than any numpy writes for a plain array.
    #[error(
        "the header is {len} bytes, more than the {MAX_HEADER_LEN} numpy itself reads; the file is damaged"
    )]
    HeaderTooLong {
        /// Header bytes the preamble gives.
        len: usize,
    },
    /// Brackets nested deeper than any header Cadence reads.
    #[error(
        "the header nests brackets {depth} deep, more than the {MAX_HEADER_NESTING} of any .npy header; the file is damaged"
    )]
    HeaderNesting {
        /// The deepest nesting found.
        depth: usize,
    },
    /// A shape whose element count does not fit in memory's address range.
    #[error("the shape {shape:?} has more elements than can be addressed")]
    ShapeOverflow {
        /// The shape in the header.
        shape: Vec<u64>,
    },
    /// A shape that is not a tuple of decimal integers.
    #[error("the shape `{text}` is not a tuple of decimal integers")]
    ShapeSyntax {
        /// The shape as the header spells it.
        text: String,
    },
    /// The data after the header is not exactly what the shape and dtype need.
    #[error("the data holds {got} bytes, the shape {shape:?} needs {expected}")]
    DataLength {
        /// The shape in the header.
        shape: Vec<usize>,
        /// Bytes the shape and dtype need.
        expected: usize,
        /// Bytes after the header.
        got: usize,
    },
}

/// Why a `.npy` file could not be read.
#[derive(Debug, Error)]
pub enum ReadNpyError {
    /// The file cannot be read.
    #[error("cannot read `{}`: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: std::io::Error,
    },
    /// The file is read but is not a usable `.npy` file.
    #[error("`{}` is not a usable .npy file: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: NpyError,
    },
}

/// Reads `path`. Fortran-ordered arrays and dtypes Cadence has no use for are refused.
pub fn read(path: &Path) -> Result<NpyTensor, ReadNpyError> {
    let bytes = std::fs::read(path).map_err(|reason| ReadNpyError::Io {
        path: path.to_owned(),
        reason,
    })?;
    parse(&bytes).map_err(|reason| ReadNpyError::Format {
        path: path.to_owned(),
        reason,
    })
}

/// Parses the bytes of a whole `.npy` file.
pub fn parse(file: &[u8]) -> Result<NpyTensor, NpyError> {
    if let Some(header) = header_text(file)? {
        check_nesting(header)?;
        check_shape(header)?;
    }
    let mut data = file;
    let header = npyz::NpyHeader::from_reader(&mut data)
        .map_err(|error| NpyError::Header(error.to_string()))?;
    if header.order() != npyz::Order::C {
        return Err(NpyError::FortranOrder);
    }
    let npyz::DType::Plain(ty) = header.dtype() else {
        return Err(NpyError::Structured);
    };
    let dtype = match (ty.type_char(), ty.size_field()) {
        (npyz::TypeChar::Float, 4) => DType::F32,
        (npyz::TypeChar::Uint, 1) => DType::U8,
        (npyz::TypeChar::Int, 1) => DType::I8,
        (npyz::TypeChar::Int, 4) => DType::I32,
        (npyz::TypeChar::Int, 8) => DType::I64,
        (type_char, size) => return Err(NpyError::UnsupportedDType { type_char, size }),
    };
    let overflow = || NpyError::ShapeOverflow {
        shape: header.shape().to_vec(),
    };
    let shape = header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| overflow()))
        .collect::<Result<Vec<usize>, _>>()?;
    let expected = shape
        .iter()
        .try_fold(dtype.size(), |bytes, &d| bytes.checked_mul(d))
        .ok_or_else(overflow)?;
    if data.len() != expected {
        return Err(NpyError::DataLength {
            shape,
            expected,
            got: data.len(),
        });
    }
    let mut bytes = data.to_vec();
    if ty.endianness() == npyz::Endianness::Big {
        for element in bytes.chunks_exact_mut(dtype.size()) {
            element.reverse();
        }
    }
    Ok(NpyTensor {
        shape,
        dtype,
        bytes,
    })
}

/// First bytes of every `.npy` file.
const MAGIC: &[u8] = b"\x93NUMPY";

/// The header text, once its stated length is known to fit in `file` and in
/// [`MAX_HEADER_LEN`]; `None` when the preamble is not one this reader knows (npyz then
/// names what is wrong) or the text is not UTF-8 (likewise).
fn header_text(file: &[u8]) -> Result<Option<&str>, NpyError> {
    // Versions 1.x give the header length as a u16, 2.x and 3.x as a u32.
    let length_bytes = match file.get(MAGIC.len()) {
        Some(1) => 2,
        Some(2 | 3) => 4,
        _ => return Ok(None),
    };
    let length_at = MAGIC.len() + 2;
    let text_at = length_at + length_bytes;
    if !file.starts_with(MAGIC) || file.len() < text_at {
        return Ok(None);
    }
    let claimed = file[length_at..text_at]
        .iter()
        .rev()
        .fold(0usize, |length, &byte| length << 8 | usize::from(byte));
    let available = file.len() - text_at;
    if claimed > available {
        return Err(NpyError::HeaderLength { claimed, available });
    }
    if claimed > MAX_HEADER_LEN {
        return Err(NpyError::HeaderTooLong { len: claimed });
    }
    Ok(std::str::from_utf8(&file[text_at..text_at + claimed]).ok())
}

/// Deepest bracket nesting a header may have: the dict, a structured dtype's list and
/// its field tuple (refused later, by name). npyz's literal parser backtracks
/// exponentially in the depth: a 118-byte header of nested braces took over 10 s (found
/// by the `npy` fuzz target).
pub const MAX_HEADER_NESTING: usize = 3;

/// Longest header accepted, numpy's own default (`max_header_size` of `numpy.load`):
/// npyz's parser takes time in proportion to it, so this bounds the time spent on one.
pub const MAX_HEADER_LEN: usize = 10_000;

/// Refuses a header nested deeper than [`MAX_HEADER_NESTING`] (brackets inside strings
/// count too: no header Cadence reads has any).
fn check_nesting(header: &str) -> Result<(), NpyError> {
    let mut depth = 0usize;
    let mut deepest = 0;
    for c in header.chars() {
        match c {
            '{' | '[' | '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_HEADER_NESTING {
        return Err(NpyError::HeaderNesting { depth: deepest });
    }
    Ok(())
}

/// Refuses a shape whose non-zero dims multiply past `u64`: npyz multiplies them,
/// unchecked, in both orders (for the element count and the strides). A header without
/// a `shape` key, or with a shape that is not bracketed, is left for npyz to refuse.
fn check_shape(header: &str) -> Result<(), NpyError> {
    let Some(literal) = shape_literal(header) else {
        return Ok(());
    };
    let shape = literal
        .split(',')
        .map(str::trim)
        .filter(|dim| !dim.is_empty())
        .map(|dim| dim.trim_end_matches('L').parse::<u64>())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|_| NpyError::ShapeSyntax {
            text: literal.to_owned(),
        })?;
    let nonzero_volume = shape
        .iter()
        .filter(|&&dim| dim != 0)
        .try_fold(1u64, |volume, &dim| volume.checked_mul(dim));
    match nonzero_volume {
        Some(_) => Ok(()),
        None => Err(NpyError::ShapeOverflow { shape }),
    }
}

/// The text between the brackets of the header's `'shape': (...)` entry.
fn shape_literal(header: &str) -> Option<&str> {
    ["'shape'", "\"shape\""].iter().find_map(|key| {
        header.match_indices(key).find_map(|(at, _)| {
            let value = header[at + key.len()..].trim_start().strip_prefix(':')?;
            let value = value.trim_start();
            let close = match value.chars().next()? {
                '(' => ')',
                '[' => ']',
                _ => return None,
            };
            value[1..].split_once(close).map(|(inside, _)| inside)
        })
    })
}
