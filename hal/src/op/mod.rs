//! Cadence's op set: the kernels a plan may call, their parameters, and the shape rules
//! each must satisfy.
//!
//! The set is what real exported camera and lidar models lower to once shape
//! arithmetic is folded away at compile time: convolutions (BatchNorm already folded
//! in, activation fused), matrix products, element-wise maths with broadcasting,
//! pooling, layout moves (concat is a series of [`Op::CopyInto`]), resize, softmax and
//! single-axis reductions. Reshapes need no op: the compiler aliases the buffer.
//!
//! The set is one table (the `op_table!` invocation below): each row gives an op's
//! fields, its stored code, its report name and its CUDA kernel. From it come [`Op`],
//! [`OpCode`], the parameter encoding ([`Op::encode_params`], [`Op::decode`]: fields
//! stored in declaration order, see [`params`]) and the constants the CUDA kernels
//! read their parameters by. Adding an op is one row here, its shape rule in
//! [`Op::check`], one CPU kernel, one CUDA kernel and one lowering in the compiler
//! (`docs/architecture.md` walks through it).
//!
//! An op is stored as a [`StepRecord`] (code + [`PARAM_WORDS`](crate::plan::PARAM_WORDS) words) and decoded per
//! frame by [`Op::decode`], which is cheap and allocation-free.

use core::fmt;

use crate::plan::{MAX_STEP_INPUTS, NO_TENSOR, StepRecord};
use crate::shape::{MAX_RANK, Shape, broadcast};

mod fields;
pub mod params;

pub use fields::{
    Activation, ActivationKind, BinaryKind, CoordinateTransform, NearestRounding, ReduceKind,
    ResizeMode, Window,
};
use params::op_table;

/// Columns of the im2col tile a convolution unrolls at once. Bounds conv scratch to
/// `C/groups * kh * kw * IM2COL_TILE` floats whatever the image size.
pub const IM2COL_TILE: usize = 256;

/// Columns (whole rows of W) of the tile [`Op::PointwiseConvMax`] computes before
/// reducing it. Bounds its scratch to `M * POOLED_TILE` floats (more only when one row
/// of W is longer), small enough to stay in L2 between the product and the max.
pub const POOLED_TILE: usize = 512;

op_table! {
    /// 2-D convolution. Inputs: data `[N,C,H,W]`, weights `[M,C/groups,kh,kw]`, optional
    /// bias `[M]`. Output `[N,M,OH,OW]`. `window.kernel` is ignored (weights give it).
    Conv2d {
        /// Stride, dilation and padding.
        window: Window,
        /// Channel groups (`C` for depthwise).
        groups: usize => at_least_one_group,
        /// Fused activation.
        activation: Activation,
    } = 1, "conv2d", "cadence_conv2d";

    /// 2-D transposed convolution. Inputs: data `[N,C,H,W]`, weights
    /// `[C,M/groups,kh,kw]`, optional bias `[M]`. Output `[N,M,OH,OW]` with
    /// `OH = (H-1)*stride - pad_top - pad_bottom + dilation*(kh-1) + 1 + output_padding`.
    ConvTranspose2d {
        /// Stride, dilation and padding.
        window: Window,
        /// Channel groups.
        groups: usize => at_least_one_group,
        /// Fused activation.
        activation: Activation,
        /// Extra rows and columns at the bottom and right.
        output_padding: [usize; 2],
    } = 2, "conv_transpose2d", "cadence_conv_transpose2d";

    /// Matrix product over the last two axes. Inputs: `a [...,M,K]`, `b [K,N]` (shared)
    /// or `[...,K,N]` (same batch dims as `a`), optional bias `[N]`. Output `[...,M,N]`.
    MatMul {
        /// Fused activation.
        activation: Activation,
    } = 3, "matmul", "cadence_matmul";

    /// Element-wise activation; output shape equals input shape.
    Unary(activation: Activation) = 4, "activation", "cadence_activation";

    /// Element-wise binary op with NumPy broadcasting.
    Binary(kind: BinaryKind) = 5, "binary", "cadence_binary";

    /// Max pooling over H and W of `[N,C,H,W]`.
    MaxPool2d(window: Window) = 6, "max_pool2d", "cadence_max_pool2d";

    /// Average pooling over H and W of `[N,C,H,W]`.
    AvgPool2d {
        /// Window geometry.
        window: Window,
        /// Whether padded cells count in the divisor.
        count_include_pad: bool,
    } = 7, "avg_pool2d", "cadence_avg_pool2d";

    /// Mean over H and W: `[N,C,H,W]` to `[N,C,1,1]`.
    GlobalAvgPool = 8, "global_avg_pool", "cadence_global_avg_pool";

    /// Copies the input into the output at `offset` along `axis`; one per concat input.
    CopyInto {
        /// Concat axis.
        axis: usize,
        /// Where along the axis this input starts.
        offset: usize,
    } = 9, "copy_into", "cadence_copy_into";

    /// Permutes axes: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// The permutation; entries past the rank are ignored.
        perm: [usize; MAX_RANK],
    } = 10, "transpose", "cadence_transpose";

    /// Takes every `step`-th index along `axis` starting at `start`; the output shape
    /// gives the count.
    Slice {
        /// Sliced axis.
        axis: usize,
        /// First index.
        start: usize,
        /// Stride, at least 1.
        step: usize => at_least_one_step,
    } = 11, "slice", "cadence_slice";

    /// Spatial resize of `[N,C,H,W]`.
    Resize {
        /// Interpolation.
        mode: ResizeMode,
        /// Coordinate mapping.
        transform: CoordinateTransform,
        /// Scale factors for H and W (output / input, as the model states them).
        scale: [f32; 2] => positive_scales,
    } = 12, "resize", "cadence_resize";

    /// Softmax along `axis`.
    Softmax {
        /// The normalised axis.
        axis: usize,
    } = 13, "softmax", "cadence_softmax";

    /// Reduction along one axis; the output keeps the axis with extent 1.
    Reduce {
        /// The operator.
        kind: ReduceKind,
        /// The reduced axis.
        axis: usize,
    } = 14, "reduce", "cadence_reduce";

    /// Plain copy between tensors of equal element count (a reshape that cannot alias,
    /// e.g. a constant that is also a model output).
    Copy = 15, "copy", "cadence_copy";

    /// A 1×1 convolution (stride 1, no padding, one group) whose activated output is
    /// max-reduced over the whole W axis. Inputs: data `[N,C,H,W]`, weights
    /// `[M,C,1,1]`, optional bias `[M]`; output `[N,M,H,1]`. It is a pillar feature
    /// net's "linear layer, then max over the points" (`W` = points per pillar) in one
    /// pass, so the `[N,M,H,W]` activation, by far the largest tensor of such a model,
    /// never reaches memory.
    PointwiseConvMax {
        /// Activation applied to every element before the max.
        activation: Activation,
    } = 16, "pointwise_conv_max", "cadence_pointwise_conv_max";
}

fn at_least_one_group(groups: &usize) -> Result<(), OpError> {
    nonzero(*groups, "groups must be at least 1")
}

fn at_least_one_step(step: &usize) -> Result<(), OpError> {
    nonzero(*step, "slice step must be at least 1")
}

fn positive_scales(scale: &[f32; 2]) -> Result<(), OpError> {
    if scale.iter().all(|s| *s > 0.0 && s.is_finite()) {
        Ok(())
    } else {
        Err(OpError::BadParam("resize scale must be positive"))
    }
}

/// Why a step is not a valid use of its op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpError {
    /// The op code is not one this runtime knows: the package needs a newer runtime.
    UnknownOp(u32),
    /// A parameter is out of range.
    BadParam(&'static str),
    /// A required input is missing.
    MissingInput(usize),
    /// Input or output shapes do not fit the op.
    Shape(&'static str),
    /// The output tensor is not in the arena.
    OutputNotInArena,
    /// The scratch region lies outside the arena.
    ScratchOutOfBounds,
    /// The scratch region is smaller than the kernel needs.
    ScratchTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOp(code) => write!(
                f,
                "unknown op code {code}; the package was built for a newer runtime"
            ),
            Self::BadParam(why) => write!(f, "bad parameter: {why}"),
            Self::MissingInput(slot) => write!(f, "input {slot} is missing"),
            Self::Shape(why) => write!(f, "shape mismatch: {why}"),
            Self::OutputNotInArena => f.write_str("output tensor is not in the arena"),
            Self::ScratchOutOfBounds => f.write_str("scratch region lies outside the arena"),
            Self::ScratchTooSmall { needed } => {
                write!(f, "scratch region too small: needs {needed} bytes")
            }
        }
    }
}

fn shape_err(why: &'static str) -> OpError {
    OpError::Shape(why)
}

fn ensure(cond: bool, why: &'static str) -> Result<(), OpError> {
    if cond { Ok(()) } else { Err(shape_err(why)) }
}

impl Op {
    /// The stored op code.
    pub fn code(&self) -> u32 {
        self.op_code() as u32
    }

    /// A short name for reports (`conv2d`, `matmul`, …).
    pub fn name(&self) -> &'static str {
        self.op_code().name()
    }
    /// Builds the stored record for this op.
    pub fn to_record(&self, inputs: &[u32], output: u32) -> StepRecord {
        let mut ins = [NO_TENSOR; MAX_STEP_INPUTS];
        for (slot, &t) in ins.iter_mut().zip(inputs) {
            *slot = t;
        }
        StepRecord {
            op: self.code(),
            inputs: ins,
            output,
            scratch_offset: 0,
            scratch_bytes: 0,
            name_offset: 0,
            name_len: 0,
            params: self.encode_params(),
        }
    }

    /// Scratch bytes the CPU kernels need for this step, given its input and output
    /// shapes. The compiler reserves this in the arena; validation checks it.
    pub fn scratch_bytes(&self, inputs: &[Shape], output: &Shape) -> usize {
        match self {
            Self::Conv2d { groups, window, .. } => {
                let (Some(x), Some(w)) = (inputs.first(), inputs.get(1)) else {
                    return 0;
                };
                let pointwise = w.dim(2) == 1
                    && w.dim(3) == 1
                    && window.stride == [1, 1]
                    && window.pads == [0; 4];
                let depthwise = *groups == x.dim(1) && w.dim(1) == 1 && *groups > 1;
                if pointwise || depthwise {
                    0
                } else {
                    let k = w.dim(1) * w.dim(2) * w.dim(3);
                    let cols = (output.dim(2) * output.dim(3)).min(IM2COL_TILE);
                    k * cols * 4
                }
            }
            Self::PointwiseConvMax { .. } => {
                let (Some(x), Some(w)) = (inputs.first(), inputs.get(1)) else {
                    return 0;
                };
                w.dim(0) * pooled_tile_rows(x.dim(2), x.dim(3)) * x.dim(3) * 4
            }
            _ => 0,
        }
    }

    /// Multiply-accumulates one run of this step performs (0 for ops that only move
    /// or map data), given its input and output shapes.
    pub fn macs(&self, inputs: &[Shape], output: &Shape) -> u64 {
        let volume = |s: Option<&Shape>| s.map_or(0, Shape::volume) as u64;
        let taps = |s: Option<&Shape>| s.map_or(0, |w| w.dim(1) * w.dim(2) * w.dim(3)) as u64;
        match self {
            Self::Conv2d { .. } => output.volume() as u64 * taps(inputs.get(1)),
            Self::PointwiseConvMax { .. } => {
                volume(inputs.first()) * inputs.get(1).map_or(0, |w| w.dim(0)) as u64
            }
            Self::ConvTranspose2d { .. } => volume(inputs.first()) * taps(inputs.get(1)),
            Self::MatMul { .. } => {
                let k = inputs
                    .first()
                    .map_or(0, |a| a.dim(a.rank().saturating_sub(1)));
                output.volume() as u64 * k as u64
            }
            _ => 0,
        }
    }

    /// Checks input and output shapes (and scratch size) against the op's rules.
    /// `present[i]` says whether input slot `i` is bound.
    pub fn check(
        &self,
        inputs: &[Shape; MAX_STEP_INPUTS],
        present: &[bool; MAX_STEP_INPUTS],
        out: &Shape,
        scratch_bytes: usize,
    ) -> Result<(), OpError> {
        let need = |slot: usize| {
            if present[slot] {
                Ok(inputs[slot])
            } else {
                Err(OpError::MissingInput(slot))
            }
        };
        match *self {
            Self::Conv2d { groups, window, .. } => {
                let (x, w) = (need(0)?, need(1)?);
                ensure(
                    x.rank() == 4 && w.rank() == 4,
                    "conv2d needs 4-D data and weights",
                )?;
                ensure(
                    w.dim(0) % groups == 0,
                    "conv2d output channels not divisible by groups",
                )?;
                ensure(
                    x.dim(1) == w.dim(1) * groups,
                    "conv2d input channels disagree with weights",
                )?;
                check_bias(present[2], &inputs[2], w.dim(0))?;
                let oh = window.out_extent(0, x.dim(2), w.dim(2));
                let ow = window.out_extent(1, x.dim(3), w.dim(3));
                ensure(
                    out.dims() == [x.dim(0), w.dim(0), oh.unwrap_or(0), ow.unwrap_or(0)]
                        && oh.is_some()
                        && ow.is_some(),
                    "conv2d output shape",
                )?;
            }
            Self::ConvTranspose2d {
                groups,
                window,
                output_padding,
                ..
            } => {
                let (x, w) = (need(0)?, need(1)?);
                ensure(
                    x.rank() == 4 && w.rank() == 4,
                    "conv_transpose2d needs 4-D data and weights",
                )?;
                ensure(
                    x.dim(1) == w.dim(0),
                    "conv_transpose2d input channels disagree with weights",
                )?;
                ensure(
                    x.dim(1) % groups == 0,
                    "conv_transpose2d channels not divisible by groups",
                )?;
                let m = w.dim(1) * groups;
                check_bias(present[2], &inputs[2], m)?;
                let extent = |axis: usize| {
                    let full = (x.dim(2 + axis).max(1) - 1) * window.stride[axis]
                        + window.dilation[axis] * (w.dim(2 + axis).max(1) - 1)
                        + 1
                        + output_padding[axis];
                    full.checked_sub(window.pads[axis] + window.pads[axis + 2])
                };
                let (oh, ow) = (extent(0), extent(1));
                ensure(
                    oh.is_some()
                        && ow.is_some()
                        && out.dims() == [x.dim(0), m, oh.unwrap_or(0), ow.unwrap_or(0)],
                    "conv_transpose2d output shape",
                )?;
            }
            Self::MatMul { .. } => {
                let (a, b) = (need(0)?, need(1)?);
                ensure(a.rank() >= 2 && b.rank() >= 2, "matmul needs rank >= 2")?;
                let (m, k) = (a.dim(a.rank() - 2), a.dim(a.rank() - 1));
                let (kb, n) = (b.dim(b.rank() - 2), b.dim(b.rank() - 1));
                ensure(k == kb, "matmul inner dims differ")?;
                ensure(
                    b.rank() == 2 || b.dims()[..b.rank() - 2] == a.dims()[..a.rank() - 2],
                    "matmul batch dims differ",
                )?;
                check_bias(present[2], &inputs[2], n)?;
                let mut dims = [0; MAX_RANK];
                dims[..a.rank()].copy_from_slice(a.dims());
                dims[a.rank() - 2] = m;
                dims[a.rank() - 1] = n;
                ensure(out.dims() == &dims[..a.rank()], "matmul output shape")?;
            }
            Self::Unary(_) | Self::Softmax { .. } => {
                let x = need(0)?;
                ensure(x == *out, "element-wise output must match input")?;
                if let Self::Softmax { axis } = *self {
                    ensure(axis < x.rank(), "softmax axis out of range")?;
                }
            }
            Self::Binary(_) => {
                let (a, b) = (need(0)?, need(1)?);
                ensure(
                    broadcast(&a, &b) == Some(*out),
                    "binary output must be the broadcast shape",
                )?;
            }
            Self::MaxPool2d(window) | Self::AvgPool2d { window, .. } => {
                let x = need(0)?;
                ensure(x.rank() == 4, "pooling needs 4-D data")?;
                ensure(
                    window.kernel[0] > 0 && window.kernel[1] > 0,
                    "pooling kernel is empty",
                )?;
                let oh = window.out_extent(0, x.dim(2), window.kernel[0]);
                let ow = window.out_extent(1, x.dim(3), window.kernel[1]);
                ensure(
                    oh.is_some()
                        && ow.is_some()
                        && out.dims() == [x.dim(0), x.dim(1), oh.unwrap_or(0), ow.unwrap_or(0)],
                    "pooling output shape",
                )?;
            }
            Self::GlobalAvgPool => {
                let x = need(0)?;
                ensure(x.rank() == 4, "global pooling needs 4-D data")?;
                ensure(
                    out.dims() == [x.dim(0), x.dim(1), 1, 1],
                    "global pooling output shape",
                )?;
            }
            Self::CopyInto { axis, offset } => {
                let x = need(0)?;
                ensure(
                    x.rank() == out.rank() && axis < x.rank(),
                    "copy_into ranks differ",
                )?;
                for i in 0..x.rank() {
                    let fits = if i == axis {
                        offset
                            .checked_add(x.dim(i))
                            .is_some_and(|e| e <= out.dim(i))
                    } else {
                        x.dim(i) == out.dim(i)
                    };
                    ensure(fits, "copy_into does not fit its output")?;
                }
            }
            Self::Transpose { perm } => {
                let x = need(0)?;
                ensure(x.rank() == out.rank(), "transpose changes rank")?;
                let mut seen = [false; MAX_RANK];
                for (i, &p) in perm[..x.rank()].iter().enumerate() {
                    ensure(p < x.rank() && !seen[p], "transpose permutation is not one")?;
                    seen[p] = true;
                    ensure(out.dim(i) == x.dim(p), "transpose output shape")?;
                }
            }
            Self::Slice { axis, start, step } => {
                let x = need(0)?;
                ensure(
                    x.rank() == out.rank() && axis < x.rank(),
                    "slice ranks differ",
                )?;
                for i in 0..x.rank() {
                    let fits = if i == axis {
                        out.dim(i) == 0
                            || (out.dim(i) - 1)
                                .checked_mul(step)
                                .and_then(|s| s.checked_add(start))
                                .is_some_and(|last| last < x.dim(i))
                    } else {
                        x.dim(i) == out.dim(i)
                    };
                    ensure(fits, "slice does not fit its input")?;
                }
            }
            Self::Resize { .. } => {
                let x = need(0)?;
                ensure(x.rank() == 4 && out.rank() == 4, "resize needs 4-D data")?;
                ensure(
                    x.dim(0) == out.dim(0) && x.dim(1) == out.dim(1),
                    "resize changes only H and W",
                )?;
                ensure(x.dim(2) > 0 && x.dim(3) > 0, "resize of an empty image")?;
            }
            Self::Reduce { axis, .. } => {
                let x = need(0)?;
                ensure(
                    x.rank() == out.rank() && axis < x.rank(),
                    "reduce ranks differ",
                )?;
                for i in 0..x.rank() {
                    let want = if i == axis { 1 } else { x.dim(i) };
                    ensure(out.dim(i) == want, "reduce output shape")?;
                }
                ensure(x.dim(axis) > 0, "reduce over an empty axis")?;
            }
            Self::Copy => {
                let x = need(0)?;
                ensure(
                    x.volume() == out.volume(),
                    "copy between different element counts",
                )?;
            }
            Self::PointwiseConvMax { .. } => {
                let (x, w) = (need(0)?, need(1)?);
                ensure(
                    x.rank() == 4 && w.rank() == 4,
                    "pointwise_conv_max needs 4-D data and weights",
                )?;
                ensure(
                    w.dims()[1..] == [x.dim(1), 1, 1],
                    "pointwise_conv_max weights must be [M, C, 1, 1]",
                )?;
                ensure(x.dim(3) > 0, "pointwise_conv_max over an empty W axis")?;
                check_bias(present[2], &inputs[2], w.dim(0))?;
                ensure(
                    out.dims() == [x.dim(0), w.dim(0), x.dim(2), 1],
                    "pointwise_conv_max output shape",
                )?;
            }
        }
        let needed = self.scratch_bytes(&inputs[..], out);
        if scratch_bytes < needed {
            return Err(OpError::ScratchTooSmall { needed });
        }
        Ok(())
    }
}

/// Rows of H one [`Op::PointwiseConvMax`] tile covers: as many whole rows of `w` as
/// fit [`POOLED_TILE`] columns, at least one, at most `h`.
pub fn pooled_tile_rows(h: usize, w: usize) -> usize {
    (POOLED_TILE / w.max(1)).clamp(1, h.max(1))
}

fn nonzero(v: usize, why: &'static str) -> Result<(), OpError> {
    if v == 0 {
        Err(OpError::BadParam(why))
    } else {
        Ok(())
    }
}

fn check_bias(present: bool, bias: &Shape, channels: usize) -> Result<(), OpError> {
    ensure(
        !present || bias.volume() == channels,
        "bias length must equal output channels",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PARAM_WORDS;

    fn roundtrip(op: Op) {
        let rec = op.to_record(&[0, 1], 2);
        assert_eq!(Op::decode(&rec).unwrap(), op);
    }

    #[test]
    fn every_op_survives_encoding() {
        let window = Window {
            kernel: [3, 3],
            stride: [2, 1],
            dilation: [1, 2],
            pads: [1, 1, 0, 1],
        };
        roundtrip(Op::Conv2d {
            groups: 4,
            window,
            activation: Activation::Clip { min: 0.0, max: 6.0 },
        });
        roundtrip(Op::ConvTranspose2d {
            groups: 1,
            window,
            output_padding: [1, 0],
            activation: Activation::LeakyRelu { alpha: 0.1 },
        });
        roundtrip(Op::MatMul {
            activation: Activation::HardSwish,
        });
        roundtrip(Op::Unary(Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        }));
        roundtrip(Op::Binary(BinaryKind::Div));
        roundtrip(Op::MaxPool2d(window));
        roundtrip(Op::AvgPool2d {
            window,
            count_include_pad: true,
        });
        roundtrip(Op::GlobalAvgPool);
        roundtrip(Op::CopyInto { axis: 1, offset: 7 });
        roundtrip(Op::Transpose {
            perm: [0, 2, 1, 3, 4, 5],
        });
        roundtrip(Op::Slice {
            axis: 2,
            start: 1,
            step: 2,
        });
        roundtrip(Op::Resize {
            mode: ResizeMode::Nearest(NearestRounding::Floor),
            transform: CoordinateTransform::Asymmetric,
            scale: [2.0, 2.0],
        });
        roundtrip(Op::Softmax { axis: 1 });
        roundtrip(Op::Reduce {
            kind: ReduceKind::Max,
            axis: 3,
        });
        roundtrip(Op::Copy);
        roundtrip(Op::PointwiseConvMax {
            activation: Activation::Relu,
        });
    }

    #[test]
    fn every_op_fits_its_parameter_words() {
        for code in OpCode::ALL {
            let words: usize = code.fields().iter().map(|f| f.words).sum();
            assert!(words <= PARAM_WORDS, "{} needs {words} words", code.name());
            for field in code.fields() {
                let parts: usize = field.parts.iter().map(|(_, w)| w).sum();
                assert!(
                    field.parts.is_empty() || parts == field.words,
                    "{}",
                    field.name
                );
            }
        }
    }

    #[test]
    fn codes_names_and_entries_are_unique() {
        for (i, a) in OpCode::ALL.iter().enumerate() {
            assert_eq!(OpCode::from_code(*a as u32), Some(*a));
            for b in &OpCode::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(a.kernel_entry(), b.kernel_entry());
            }
        }
    }

    #[test]
    fn stored_words_keep_their_places() {
        // Packages already written store conv groups in word 10 and the activation
        // from word 11: the table's field order must keep them there.
        let op = Op::Conv2d {
            window: Window {
                kernel: [0, 0],
                stride: [2, 1],
                dilation: [1, 1],
                pads: [1, 2, 3, 4],
            },
            groups: 8,
            activation: Activation::LeakyRelu { alpha: 0.5 },
        };
        let w = op.encode_params();
        assert_eq!(w[..10], [0, 0, 2, 1, 1, 1, 1, 2, 3, 4]);
        assert_eq!(w[10..14], [8, 6, 0.5f32.to_bits(), 0]);
        let resize = Op::Resize {
            mode: ResizeMode::Nearest(NearestRounding::Floor),
            transform: CoordinateTransform::AlignCorners,
            scale: [2.0, 0.5],
        };
        assert_eq!(
            resize.encode_params()[..4],
            [3, 2, 2.0f32.to_bits(), 0.5f32.to_bits()]
        );
    }

    #[test]
    fn out_of_range_parameters_are_refused() {
        let mut rec = Op::Slice {
            axis: 0,
            start: 0,
            step: 1,
        }
        .to_record(&[0], 1);
        rec.params[2] = 0;
        assert_eq!(
            Op::decode(&rec),
            Err(OpError::BadParam("slice step must be at least 1"))
        );
        let mut rec = Op::Binary(BinaryKind::Add).to_record(&[0, 1], 2);
        rec.params[0] = 77;
        assert_eq!(
            Op::decode(&rec),
            Err(OpError::BadParam("unknown binary operator"))
        );
    }

    #[test]
    fn unknown_codes_are_refused() {
        let mut rec = Op::Copy.to_record(&[0], 1);
        rec.op = 999;
        assert_eq!(Op::decode(&rec), Err(OpError::UnknownOp(999)));
    }
}
