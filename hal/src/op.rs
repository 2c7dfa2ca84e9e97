//! Cadence's op set: the kernels a plan may call, their parameters, and the shape rules
//! each must satisfy.
//!
//! The set is what real exported camera and lidar models lower to once shape
//! arithmetic is folded away at compile time: convolutions (BatchNorm already folded
//! in, activation fused), matrix products, element-wise maths with broadcasting,
//! pooling, layout moves (concat is a series of [`Op::CopyInto`]), resize, softmax and
//! single-axis reductions. Reshapes need no op: the compiler aliases the buffer.
//!
//! An op is stored as a [`StepRecord`] (code + [`PARAM_WORDS`] words) and decoded per
//! frame by [`Op::decode`], which is cheap and allocation-free.

use core::fmt;

use crate::plan::{MAX_STEP_INPUTS, NO_TENSOR, PARAM_WORDS, StepRecord};
use crate::shape::{MAX_RANK, Shape, broadcast};

/// Columns of the im2col tile a convolution unrolls at once. Bounds conv scratch to
/// `C/groups * kh * kw * IM2COL_TILE` floats whatever the image size.
pub const IM2COL_TILE: usize = 256;

/// Columns (whole rows of W) of the tile [`Op::PointwiseConvMax`] computes before
/// reducing it. Bounds its scratch to `M * POOLED_TILE` floats (more only when one row
/// of W is longer), small enough to stay in L2 between the product and the max.
pub const POOLED_TILE: usize = 512;

/// An activation applied element-wise, alone or fused after a conv or matmul.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// No activation.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)`; ReLU6 is `Clip { 0, 6 }`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `clip(alpha * x + beta, 0, 1)`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x * clip(x / 6 + 1/2, 0, 1)`, as in MobileNetV3.
    HardSwish,
    /// `x` if positive, else `alpha * x`.
    LeakyRelu {
        /// Slope below zero.
        alpha: f32,
    },
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Identity => x,
            Self::Relu => x.max(0.0),
            Self::Clip { min, max } => x.max(min).min(max),
            Self::Sigmoid => sigmoid(x),
            Self::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Self::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Self::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Self::Tanh => tanh(x),
        }
    }

    /// Applies the activation to a whole buffer in place. Inlined, so kernels compiled
    /// for wider vectors (a GEMM's store of each tile) vectorise it at their width.
    #[inline(always)]
    pub fn apply_slice(self, xs: &mut [f32]) {
        match self {
            Self::Identity => {}
            Self::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
            other => xs.iter_mut().for_each(|x| *x = other.apply(*x)),
        }
    }

    fn encode(self) -> [u32; 3] {
        match self {
            Self::Identity => [0, 0, 0],
            Self::Relu => [1, 0, 0],
            Self::Clip { min, max } => [2, min.to_bits(), max.to_bits()],
            Self::Sigmoid => [3, 0, 0],
            Self::HardSigmoid { alpha, beta } => [4, alpha.to_bits(), beta.to_bits()],
            Self::HardSwish => [5, 0, 0],
            Self::LeakyRelu { alpha } => [6, alpha.to_bits(), 0],
            Self::Tanh => [7, 0, 0],
        }
    }

    fn decode(w: &[u32]) -> Result<Self, OpError> {
        let p0 = f32::from_bits(w[1]);
        let p1 = f32::from_bits(w[2]);
        Ok(match w[0] {
            0 => Self::Identity,
            1 => Self::Relu,
            2 => Self::Clip { min: p0, max: p1 },
            3 => Self::Sigmoid,
            4 => Self::HardSigmoid {
                alpha: p0,
                beta: p1,
            },
            5 => Self::HardSwish,
            6 => Self::LeakyRelu { alpha: p0 },
            7 => Self::Tanh,
            _ => return Err(OpError::BadParam("unknown activation")),
        })
    }
}

/// `1 / (1 + e^-x)` without `std`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x)` without `std`, via the sigmoid identity `tanh x = 2σ(2x) − 1`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 * sigmoid(2.0 * x) - 1.0
}

/// `e^x` without `std`: range reduction to `2^k · e^r` with a degree-6 polynomial for
/// `e^r`, |r| ≤ ln2/2. Relative error below 2e-7 over the f32 range; saturates to 0
/// and infinity outside it. Written branch-light so loops over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.3, 88.7);
    let k = floor(x * core::f32::consts::LOG2_E + 0.5);
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let bits = ((k as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// `floor(x)` without `std` (core has no float rounding on stable), exact for
/// |x| < 2^31.
#[inline(always)]
pub fn floor(x: f32) -> f32 {
    let t = x as i32 as f32;
    if t > x { t - 1.0 } else { t }
}

/// Convolution geometry shared by [`Op::Conv2d`], [`Op::ConvTranspose2d`] and pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Kernel height and width (pooling only; convs take it from the weights).
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation.
    pub dilation: [usize; 2],
    /// Padding: top, left, bottom, right.
    pub pads: [usize; 4],
}

impl Window {
    fn encode(&self, w: &mut [u32]) {
        let vals = [
            self.kernel[0],
            self.kernel[1],
            self.stride[0],
            self.stride[1],
            self.dilation[0],
            self.dilation[1],
            self.pads[0],
            self.pads[1],
            self.pads[2],
            self.pads[3],
        ];
        for (slot, v) in w.iter_mut().zip(vals) {
            *slot = v as u32;
        }
    }

    fn decode(w: &[u32]) -> Result<Self, OpError> {
        let u = |i: usize| w[i] as usize;
        let win = Self {
            kernel: [u(0), u(1)],
            stride: [u(2), u(3)],
            dilation: [u(4), u(5)],
            pads: [u(6), u(7), u(8), u(9)],
        };
        if win.stride.contains(&0) || win.dilation.contains(&0) {
            return Err(OpError::BadParam("stride and dilation must be at least 1"));
        }
        Ok(win)
    }

    /// Output extent of a forward window over `input` along `axis` (0 = H, 1 = W) with
    /// kernel extent `k`, or `None` when the window does not fit.
    pub fn out_extent(&self, axis: usize, input: usize, k: usize) -> Option<usize> {
        let padded = input + self.pads[axis] + self.pads[axis + 2];
        let span = self.dilation[axis] * (k.checked_sub(1)?) + 1;
        Some(padded.checked_sub(span)? / self.stride[axis] + 1)
    }
}

/// Element-wise binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `max(a, b)`.
    Max,
    /// `min(a, b)`.
    Min,
}

impl BinaryKind {
    /// Applies the operator.
    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Self::Add => a + b,
            Self::Sub => a - b,
            Self::Mul => a * b,
            Self::Div => a / b,
            Self::Max => a.max(b),
            Self::Min => a.min(b),
        }
    }
}

/// How [`Op::Resize`] maps an output coordinate back to the input (ONNX
/// `coordinate_transformation_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinateTransform {
    /// `(x + 0.5) / scale - 0.5`.
    HalfPixel,
    /// `x / scale`.
    Asymmetric,
    /// `x * (in - 1) / (out - 1)`.
    AlignCorners,
    /// Like half-pixel, but 0 when the output extent is 1.
    PytorchHalfPixel,
}

/// How nearest-neighbour resize rounds a fractional source coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestRounding {
    /// Round half down.
    RoundPreferFloor,
    /// Round half up.
    RoundPreferCeil,
    /// Floor.
    Floor,
    /// Ceiling.
    Ceil,
}

/// Interpolation of [`Op::Resize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// Nearest neighbour with the given rounding.
    Nearest(NearestRounding),
    /// Bilinear over H and W.
    Linear,
}

/// Reduction operator of [`Op::Reduce`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    /// Maximum.
    Max,
    /// Arithmetic mean.
    Mean,
    /// Sum.
    Sum,
}

/// One kernel call, decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// 2-D convolution. Inputs: data `[N,C,H,W]`, weights `[M,C/groups,kh,kw]`, optional
    /// bias `[M]`. Output `[N,M,OH,OW]`. `window.kernel` is ignored (weights give it).
    Conv2d {
        /// Channel groups (`C` for depthwise).
        groups: usize,
        /// Stride, dilation and padding.
        window: Window,
        /// Fused activation.
        activation: Activation,
    },
    /// 2-D transposed convolution. Inputs: data `[N,C,H,W]`, weights
    /// `[C,M/groups,kh,kw]`, optional bias `[M]`. Output `[N,M,OH,OW]` with
    /// `OH = (H-1)*stride - pad_top - pad_bottom + dilation*(kh-1) + 1 + output_padding`.
    ConvTranspose2d {
        /// Channel groups.
        groups: usize,
        /// Stride, dilation and padding.
        window: Window,
        /// Extra rows and columns at the bottom and right.
        output_padding: [usize; 2],
        /// Fused activation.
        activation: Activation,
    },
    /// Matrix product over the last two axes. Inputs: `a [...,M,K]`, `b [K,N]` (shared)
    /// or `[...,K,N]` (same batch dims as `a`), optional bias `[N]`. Output `[...,M,N]`.
    MatMul {
        /// Fused activation.
        activation: Activation,
    },
    /// Element-wise activation; output shape equals input shape.
    Unary(Activation),
    /// Element-wise binary op with NumPy broadcasting.
    Binary(BinaryKind),
    /// Max pooling over H and W of `[N,C,H,W]`.
    MaxPool2d(Window),
    /// Average pooling over H and W of `[N,C,H,W]`.
    AvgPool2d {
        /// Window geometry.
        window: Window,
        /// Whether padded cells count in the divisor.
        count_include_pad: bool,
    },
    /// Mean over H and W: `[N,C,H,W]` to `[N,C,1,1]`.
    GlobalAvgPool,
    /// Copies the input into the output at `offset` along `axis`; one per concat input.
    CopyInto {
        /// Concat axis.
        axis: usize,
        /// Where along the axis this input starts.
        offset: usize,
    },
    /// Permutes axes: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// The permutation; entries past the rank are ignored.
        perm: [usize; MAX_RANK],
    },
    /// Takes every `step`-th index along `axis` starting at `start`; the output shape
    /// gives the count.
    Slice {
        /// Sliced axis.
        axis: usize,
        /// First index.
        start: usize,
        /// Stride, at least 1.
        step: usize,
    },
    /// Spatial resize of `[N,C,H,W]`.
    Resize {
        /// Interpolation.
        mode: ResizeMode,
        /// Coordinate mapping.
        transform: CoordinateTransform,
        /// Scale factors for H and W (output / input, as the model states them).
        scale: [f32; 2],
    },
    /// Softmax along `axis`.
    Softmax {
        /// The normalised axis.
        axis: usize,
    },
    /// Reduction along one axis; the output keeps the axis with extent 1.
    Reduce {
        /// The operator.
        kind: ReduceKind,
        /// The reduced axis.
        axis: usize,
    },
    /// Plain copy between tensors of equal element count (a reshape that cannot alias,
    /// e.g. a constant that is also a model output).
    Copy,
    /// A 1×1 convolution (stride 1, no padding, one group) whose activated output is
    /// max-reduced over the whole W axis. Inputs: data `[N,C,H,W]`, weights
    /// `[M,C,1,1]`, optional bias `[M]`; output `[N,M,H,1]`. It is a pillar feature
    /// net's "linear layer, then max over the points" (`W` = points per pillar) in one
    /// pass, so the `[N,M,H,W]` activation, by far the largest tensor of such a model,
    /// never reaches memory.
    PointwiseConvMax {
        /// Activation applied to every element before the max.
        activation: Activation,
    },
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
        match self {
            Self::Conv2d { .. } => 1,
            Self::ConvTranspose2d { .. } => 2,
            Self::MatMul { .. } => 3,
            Self::Unary(_) => 4,
            Self::Binary(_) => 5,
            Self::MaxPool2d(_) => 6,
            Self::AvgPool2d { .. } => 7,
            Self::GlobalAvgPool => 8,
            Self::CopyInto { .. } => 9,
            Self::Transpose { .. } => 10,
            Self::Slice { .. } => 11,
            Self::Resize { .. } => 12,
            Self::Softmax { .. } => 13,
            Self::Reduce { .. } => 14,
            Self::Copy => 15,
            Self::PointwiseConvMax { .. } => 16,
        }
    }

    /// A short name for reports (`conv2d`, `matmul`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Conv2d { .. } => "conv2d",
            Self::ConvTranspose2d { .. } => "conv_transpose2d",
            Self::MatMul { .. } => "matmul",
            Self::Unary(_) => "activation",
            Self::Binary(_) => "binary",
            Self::MaxPool2d(_) => "max_pool2d",
            Self::AvgPool2d { .. } => "avg_pool2d",
            Self::GlobalAvgPool => "global_avg_pool",
            Self::CopyInto { .. } => "copy_into",
            Self::Transpose { .. } => "transpose",
            Self::Slice { .. } => "slice",
            Self::Resize { .. } => "resize",
            Self::Softmax { .. } => "softmax",
            Self::Reduce { .. } => "reduce",
            Self::Copy => "copy",
            Self::PointwiseConvMax { .. } => "pointwise_conv_max",
        }
    }

    /// Encodes the op's parameters into the step's parameter words.
    pub fn encode_params(&self) -> [u32; PARAM_WORDS] {
        let mut w = [0u32; PARAM_WORDS];
        match *self {
            Self::Conv2d {
                groups,
                window,
                activation,
            } => {
                window.encode(&mut w[0..10]);
                w[10] = groups as u32;
                w[11..14].copy_from_slice(&activation.encode());
            }
            Self::ConvTranspose2d {
                groups,
                window,
                output_padding,
                activation,
            } => {
                window.encode(&mut w[0..10]);
                w[10] = groups as u32;
                w[11..14].copy_from_slice(&activation.encode());
                w[14] = output_padding[0] as u32;
                w[15] = output_padding[1] as u32;
            }
            Self::MatMul { activation }
            | Self::Unary(activation)
            | Self::PointwiseConvMax { activation } => {
                w[0..3].copy_from_slice(&activation.encode());
            }
            Self::Binary(kind) => w[0] = kind as u32,
            Self::MaxPool2d(window) => window.encode(&mut w[0..10]),
            Self::AvgPool2d {
                window,
                count_include_pad,
            } => {
                window.encode(&mut w[0..10]);
                w[10] = count_include_pad as u32;
            }
            Self::GlobalAvgPool | Self::Copy => {}
            Self::CopyInto { axis, offset } => {
                w[0] = axis as u32;
                w[1] = offset as u32;
            }
            Self::Transpose { perm } => {
                for (slot, p) in w.iter_mut().zip(perm) {
                    *slot = p as u32;
                }
            }
            Self::Slice { axis, start, step } => {
                w[0] = axis as u32;
                w[1] = start as u32;
                w[2] = step as u32;
            }
            Self::Resize {
                mode,
                transform,
                scale,
            } => {
                w[0] = match mode {
                    ResizeMode::Linear => 0,
                    ResizeMode::Nearest(r) => 1 + r as u32,
                };
                w[1] = transform as u32;
                w[2] = scale[0].to_bits();
                w[3] = scale[1].to_bits();
            }
            Self::Softmax { axis } => w[0] = axis as u32,
            Self::Reduce { kind, axis } => {
                w[0] = kind as u32;
                w[1] = axis as u32;
            }
        }
        w
    }

    /// Decodes a stored step. Checks parameter ranges, not shapes (see [`Op::check`]).
    pub fn decode(step: &StepRecord) -> Result<Self, OpError> {
        let w = &step.params;
        let u = |i: usize| w[i] as usize;
        Ok(match step.op {
            1 => Self::Conv2d {
                window: Window::decode(&w[0..10])?,
                groups: nonzero(u(10), "groups must be at least 1")?,
                activation: Activation::decode(&w[11..14])?,
            },
            2 => Self::ConvTranspose2d {
                window: Window::decode(&w[0..10])?,
                groups: nonzero(u(10), "groups must be at least 1")?,
                activation: Activation::decode(&w[11..14])?,
                output_padding: [u(14), u(15)],
            },
            3 => Self::MatMul {
                activation: Activation::decode(&w[0..3])?,
            },
            4 => Self::Unary(Activation::decode(&w[0..3])?),
            5 => Self::Binary(match w[0] {
                0 => BinaryKind::Add,
                1 => BinaryKind::Sub,
                2 => BinaryKind::Mul,
                3 => BinaryKind::Div,
                4 => BinaryKind::Max,
                5 => BinaryKind::Min,
                _ => return Err(OpError::BadParam("unknown binary operator")),
            }),
            6 => Self::MaxPool2d(Window::decode(&w[0..10])?),
            7 => Self::AvgPool2d {
                window: Window::decode(&w[0..10])?,
                count_include_pad: w[10] != 0,
            },
            8 => Self::GlobalAvgPool,
            9 => Self::CopyInto {
                axis: u(0),
                offset: u(1),
            },
            10 => {
                let mut perm = [0; MAX_RANK];
                for (p, &x) in perm.iter_mut().zip(w.iter()) {
                    *p = x as usize;
                }
                Self::Transpose { perm }
            }
            11 => Self::Slice {
                axis: u(0),
                start: u(1),
                step: nonzero(u(2), "slice step must be at least 1")?,
            },
            12 => Self::Resize {
                mode: match w[0] {
                    0 => ResizeMode::Linear,
                    1 => ResizeMode::Nearest(NearestRounding::RoundPreferFloor),
                    2 => ResizeMode::Nearest(NearestRounding::RoundPreferCeil),
                    3 => ResizeMode::Nearest(NearestRounding::Floor),
                    4 => ResizeMode::Nearest(NearestRounding::Ceil),
                    _ => return Err(OpError::BadParam("unknown resize mode")),
                },
                transform: match w[1] {
                    0 => CoordinateTransform::HalfPixel,
                    1 => CoordinateTransform::Asymmetric,
                    2 => CoordinateTransform::AlignCorners,
                    3 => CoordinateTransform::PytorchHalfPixel,
                    _ => return Err(OpError::BadParam("unknown resize coordinate transform")),
                },
                scale: {
                    let s = [f32::from_bits(w[2]), f32::from_bits(w[3])];
                    if !(s[0] > 0.0 && s[1] > 0.0 && s[0].is_finite() && s[1].is_finite()) {
                        return Err(OpError::BadParam("resize scale must be positive"));
                    }
                    s
                },
            },
            13 => Self::Softmax { axis: u(0) },
            14 => Self::Reduce {
                kind: match w[0] {
                    0 => ReduceKind::Max,
                    1 => ReduceKind::Mean,
                    2 => ReduceKind::Sum,
                    _ => return Err(OpError::BadParam("unknown reduction")),
                },
                axis: u(1),
            },
            15 => Self::Copy,
            16 => Self::PointwiseConvMax {
                activation: Activation::decode(&w[0..3])?,
            },
            other => return Err(OpError::UnknownOp(other)),
        })
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

fn nonzero(v: usize, why: &'static str) -> Result<usize, OpError> {
    if v == 0 {
        Err(OpError::BadParam(why))
    } else {
        Ok(v)
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
    fn unknown_codes_are_refused() {
        let mut rec = Op::Copy.to_record(&[0], 1);
        rec.op = 999;
        assert_eq!(Op::decode(&rec), Err(OpError::UnknownOp(999)));
    }

    #[test]
    fn exp_is_accurate() {
        for i in -800..=800 {
            let x = i as f32 * 0.1;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "exp({x}) = {got}, want {want}"
            );
        }
    }
}
