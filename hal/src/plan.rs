//! The static execution plan: what the compiler emits and every backend executes.
//!
//! A plan is two flat tables, stored in a `.cpk` exactly as these `#[repr(C)]` records
//! so they are used in place:
//!
//! - [`TensorRecord`]s: every tensor's dtype, shape and byte offset, either in the
//!   arena (activations, inputs, outputs) or in the weights section (constants);
//! - [`StepRecord`]s: kernel calls in execution order, each naming its input and output
//!   tensors, an optional scratch region in the arena, and op parameters.
//!
//! [`Plan::validate`] checks every offset, shape and parameter once, at load. Kernels
//! may then index without further checks: a plan that validates cannot make a kernel
//! read or write outside its buffers, which is how a corrupted but checksum-valid
//! package still cannot crash the runtime.

use core::fmt;
use core::ops::Range;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::op::{Op, OpError};
use crate::shape::{MAX_RANK, Shape};

/// Marks an unused tensor slot in [`StepRecord::inputs`].
pub const NO_TENSOR: u32 = u32::MAX;
/// Most inputs one step reads (conv: data, weights, bias).
pub const MAX_STEP_INPUTS: usize = 3;
/// Parameter words per step; ops decode theirs from here (see [`Op`]).
pub const PARAM_WORDS: usize = 16;
/// Byte alignment of every arena and weights offset the compiler emits: a cache line,
/// so SIMD loads never split one.
pub const TENSOR_ALIGN: usize = 64;

/// Where a tensor's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Storage {
    /// In the frame arena, written by a step or by the caller (inputs).
    Arena = 0,
    /// In the package's weights section, read-only.
    Weights = 1,
}

/// Element type of a tensor. The frame path computes in `f32`; the other types exist
/// so a problem spec can say what a caller hands over and be refused precisely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum DType {
    /// 32-bit IEEE float.
    F32 = 1,
    /// Unsigned byte (raw camera pixels).
    U8 = 2,
    /// Signed byte (quantised tensors).
    I8 = 3,
    /// 32-bit signed integer.
    I32 = 4,
    /// 64-bit signed integer (ONNX index tensors).
    I64 = 5,
}

impl DType {
    /// Decodes a stored dtype code.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::F32,
            2 => Self::U8,
            3 => Self::I8,
            4 => Self::I32,
            5 => Self::I64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::F32 | Self::I32 => 4,
            Self::I64 => 8,
        }
    }

    /// The lower-case name users see (`f32`, `u8`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::I32 => "i32",
            Self::I64 => "i64",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of the plan, as stored.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TensorRecord {
    /// [`Storage`] code.
    pub storage: u32,
    /// [`DType`] code.
    pub dtype: u32,
    /// Byte offset into the arena or the weights section.
    pub offset: u32,
    /// Number of used entries in `dims`.
    pub rank: u32,
    /// Dims, outermost first; entries past `rank` are ignored.
    pub dims: [u32; MAX_RANK],
}

impl TensorRecord {
    /// A record for `shape` at `offset` in `storage`.
    pub fn new(storage: Storage, dtype: DType, offset: u32, shape: &Shape) -> Self {
        let mut dims = [0u32; MAX_RANK];
        for (slot, &d) in dims.iter_mut().zip(shape.dims()) {
            *slot = d as u32;
        }
        Self {
            storage: storage as u32,
            dtype: dtype as u32,
            offset,
            rank: shape.rank() as u32,
            dims,
        }
    }

    /// The tensor's shape, or `None` when the rank is out of range.
    pub fn shape(&self) -> Option<Shape> {
        let rank = usize::try_from(self.rank).ok()?;
        let dims = self.dims.get(..rank)?;
        let mut wide = [0usize; MAX_RANK];
        for (w, &d) in wide.iter_mut().zip(dims) {
            *w = d as usize;
        }
        Shape::new(&wide[..rank])
    }

    /// Where the tensor lives, or `None` for an unknown code.
    pub fn storage(&self) -> Option<Storage> {
        match self.storage {
            0 => Some(Storage::Arena),
            1 => Some(Storage::Weights),
            _ => None,
        }
    }
}

/// One kernel call of the plan, as stored.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct StepRecord {
    /// Op code (see [`Op::code`]).
    pub op: u32,
    /// Input tensor indices; unused slots are [`NO_TENSOR`].
    pub inputs: [u32; MAX_STEP_INPUTS],
    /// Output tensor index.
    pub output: u32,
    /// Byte offset of this step's scratch region in the arena.
    pub scratch_offset: u32,
    /// Size of the scratch region; 0 when the op needs none.
    pub scratch_bytes: u32,
    /// Byte range of the step's name (the source node) in the plan's name table.
    pub name_offset: u32,
    /// Length of the name in bytes.
    pub name_len: u32,
    /// Op parameters, decoded by [`Op::decode`].
    pub params: [u32; PARAM_WORDS],
}

impl StepRecord {
    /// The input tensor indices actually used.
    pub fn used_inputs(&self) -> impl Iterator<Item = u32> + '_ {
        self.inputs.iter().copied().filter(|&t| t != NO_TENSOR)
    }
}

/// A plan borrowed from a package, ready for validation and execution.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    /// Every tensor of the model.
    pub tensors: &'a [TensorRecord],
    /// Kernel calls in execution order.
    pub steps: &'a [StepRecord],
    /// UTF-8 step names, addressed by [`StepRecord::name_offset`].
    pub names: &'a [u8],
    /// The weights section; 4-byte aligned.
    pub weights: &'a [u8],
    /// Arena bytes the plan needs.
    pub arena_bytes: usize,
}

/// Why a plan cannot be executed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlanError {
    /// A tensor record is malformed (unknown dtype or storage, rank too high, …).
    BadTensor {
        /// Index of the tensor.
        tensor: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A tensor's bytes fall outside the arena or weights section.
    TensorOutOfBounds {
        /// Index of the tensor.
        tensor: usize,
    },
    /// A step refers to a tensor index that does not exist.
    NoSuchTensor {
        /// Index of the step.
        step: usize,
        /// The bad index.
        tensor: u32,
    },
    /// A step's op is unknown or its parameters or shapes are inconsistent.
    BadStep {
        /// Index of the step.
        step: usize,
        /// What the op check said.
        error: OpError,
    },
    /// A step writes over one of its own inputs or its scratch overlaps them.
    Overlap {
        /// Index of the step.
        step: usize,
    },
    /// The weights section is not 4-byte aligned in memory, so it cannot be read as
    /// `f32` in place. Load the package into an aligned buffer.
    MisalignedWeights,
    /// The arena handed to the engine is smaller than the plan needs.
    ArenaTooSmall {
        /// Bytes the plan needs.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// The arena handed to the engine is not aligned to [`TENSOR_ALIGN`].
    MisalignedArena,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadTensor { tensor, reason } => write!(f, "tensor {tensor}: {reason}"),
            Self::TensorOutOfBounds { tensor } => {
                write!(f, "tensor {tensor} lies outside its arena or weights section")
            }
            Self::NoSuchTensor { step, tensor } => {
                write!(f, "step {step} names tensor {tensor}, which does not exist")
            }
            Self::BadStep { step, error } => write!(f, "step {step}: {error}"),
            Self::Overlap { step } => {
                write!(f, "step {step} writes over its own input or scratch region")
            }
            Self::MisalignedWeights => f.write_str(
                "weights section is not 4-byte aligned in memory; load the package into an aligned buffer",
            ),
            Self::ArenaTooSmall { needed, given } => write!(
                f,
                "arena too small: the plan needs {needed} bytes, {given} were given"
            ),
            Self::MisalignedArena => write!(f, "arena is not {TENSOR_ALIGN}-byte aligned"),
        }
    }
}

impl<'a> Plan<'a> {
    /// The step's name (its source node), or `"?"` if the name table is damaged.
    pub fn step_name(&self, step: &StepRecord) -> &'a str {
        let start = step.name_offset as usize;
        let end = start.saturating_add(step.name_len as usize);
        self.names
            .get(start..end)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("?")
    }

    /// Shape of tensor `index`; only call after [`Plan::validate`].
    pub fn shape(&self, index: u32) -> Shape {
        self.tensors
            .get(index as usize)
            .and_then(TensorRecord::shape)
            .unwrap_or_else(|| Shape::new(&[]).expect("rank 0 fits"))
    }

    /// Byte range of tensor `index` in its storage; only call after [`Plan::validate`].
    pub fn byte_range(&self, index: u32) -> Range<usize> {
        let t = &self.tensors[index as usize];
        let start = t.offset as usize;
        let len = self.shape(index).volume() * DType::from_code(t.dtype).map_or(4, DType::size);
        start..start + len
    }

    /// Checks everything a kernel relies on. Call once at load; see the module docs.
    pub fn validate(&self) -> Result<(), PlanError> {
        if !(self.weights.as_ptr() as usize).is_multiple_of(4) {
            return Err(PlanError::MisalignedWeights);
        }
        for (i, t) in self.tensors.iter().enumerate() {
            self.validate_tensor(i, t)?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            self.validate_step(i, step)?;
        }
        Ok(())
    }

    /// Checks an arena handed over by a caller against the plan's needs.
    pub fn check_arena(&self, arena: &[u8]) -> Result<(), PlanError> {
        if arena.len() < self.arena_bytes {
            return Err(PlanError::ArenaTooSmall {
                needed: self.arena_bytes,
                given: arena.len(),
            });
        }
        if !(arena.as_ptr() as usize).is_multiple_of(TENSOR_ALIGN) {
            return Err(PlanError::MisalignedArena);
        }
        Ok(())
    }

    fn validate_tensor(&self, i: usize, t: &TensorRecord) -> Result<(), PlanError> {
        let bad = |reason| PlanError::BadTensor { tensor: i, reason };
        let dtype = DType::from_code(t.dtype).ok_or(bad("unknown dtype"))?;
        if dtype != DType::F32 {
            return Err(bad("the frame path computes in f32 only"));
        }
        let storage = t.storage().ok_or(bad("unknown storage"))?;
        let shape = t.shape().ok_or(bad("rank above the maximum"))?;
        let bytes = shape
            .checked_volume()
            .and_then(|v| v.checked_mul(dtype.size()))
            .ok_or(bad("size overflows"))?;
        if !(t.offset as usize).is_multiple_of(4) {
            return Err(bad("offset not 4-byte aligned"));
        }
        let limit = match storage {
            Storage::Arena => self.arena_bytes,
            Storage::Weights => self.weights.len(),
        };
        let end = (t.offset as usize).checked_add(bytes);
        if end.is_none_or(|e| e > limit) {
            return Err(PlanError::TensorOutOfBounds { tensor: i });
        }
        Ok(())
    }

    fn validate_step(&self, i: usize, step: &StepRecord) -> Result<(), PlanError> {
        let tensor = |id: u32| {
            self.tensors
                .get(id as usize)
                .ok_or(PlanError::NoSuchTensor {
                    step: i,
                    tensor: id,
                })
        };
        let out = tensor(step.output)?;
        if out.storage() != Some(Storage::Arena) {
            return Err(PlanError::BadStep {
                step: i,
                error: OpError::OutputNotInArena,
            });
        }
        let mut shapes = [Shape::new(&[]).expect("rank 0 fits"); MAX_STEP_INPUTS];
        let mut present = [false; MAX_STEP_INPUTS];
        for (slot, &id) in step.inputs.iter().enumerate() {
            if id != NO_TENSOR {
                shapes[slot] = tensor(id)?.shape().unwrap_or(shapes[slot]);
                present[slot] = true;
            }
        }
        let op = Op::decode(step).map_err(|error| PlanError::BadStep { step: i, error })?;
        let out_shape = self.shape(step.output);
        op.check(&shapes, &present, &out_shape, step.scratch_bytes as usize)
            .map_err(|error| PlanError::BadStep { step: i, error })?;
        let scratch = step.scratch_offset as usize
            ..(step.scratch_offset as usize).saturating_add(step.scratch_bytes as usize);
        if step.scratch_bytes > 0 && scratch.end > self.arena_bytes {
            return Err(PlanError::BadStep {
                step: i,
                error: OpError::ScratchOutOfBounds,
            });
        }
        let out_range = self.byte_range(step.output);
        if step.scratch_bytes > 0 && overlaps(&out_range, &scratch) {
            return Err(PlanError::Overlap { step: i });
        }
        for id in step.used_inputs() {
            if self.tensors[id as usize].storage() != Some(Storage::Arena) {
                continue;
            }
            let r = self.byte_range(id);
            if overlaps(&r, &out_range) || (step.scratch_bytes > 0 && overlaps(&r, &scratch)) {
                return Err(PlanError::Overlap { step: i });
            }
        }
        Ok(())
    }
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end && !a.is_empty() && !b.is_empty()
}
