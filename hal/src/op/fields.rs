//! The types an op's fields have: activations, windows and the operator choices of
//! binary, reduce and resize steps, each with its stored form.

use super::OpError;
use super::params::{Param, word_enum};
use crate::scalar::{sigmoid, tanh};

word_enum! {
    /// Which [`Activation`] a step applies: the first of its three words.
    pub enum ActivationKind ("ACTIVATION", "unknown activation") {
        /// [`Activation::Identity`].
        Identity = 0,
        /// [`Activation::Relu`].
        Relu = 1,
        /// [`Activation::Clip`].
        Clip = 2,
        /// [`Activation::Sigmoid`].
        Sigmoid = 3,
        /// [`Activation::HardSigmoid`].
        HardSigmoid = 4,
        /// [`Activation::HardSwish`].
        HardSwish = 5,
        /// [`Activation::LeakyRelu`].
        LeakyRelu = 6,
        /// [`Activation::Tanh`].
        Tanh = 7,
    }
}

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

    /// Which activation this is, and its two parameters (0 where it has fewer).
    pub fn kind_and_params(self) -> (ActivationKind, [f32; 2]) {
        match self {
            Self::Identity => (ActivationKind::Identity, [0.0; 2]),
            Self::Relu => (ActivationKind::Relu, [0.0; 2]),
            Self::Clip { min, max } => (ActivationKind::Clip, [min, max]),
            Self::Sigmoid => (ActivationKind::Sigmoid, [0.0; 2]),
            Self::HardSigmoid { alpha, beta } => (ActivationKind::HardSigmoid, [alpha, beta]),
            Self::HardSwish => (ActivationKind::HardSwish, [0.0; 2]),
            Self::LeakyRelu { alpha } => (ActivationKind::LeakyRelu, [alpha, 0.0]),
            Self::Tanh => (ActivationKind::Tanh, [0.0; 2]),
        }
    }

    /// The activation of `kind` with parameters `p` (those it does not take ignored).
    pub fn from_kind(kind: ActivationKind, [p0, p1]: [f32; 2]) -> Self {
        match kind {
            ActivationKind::Identity => Self::Identity,
            ActivationKind::Relu => Self::Relu,
            ActivationKind::Clip => Self::Clip { min: p0, max: p1 },
            ActivationKind::Sigmoid => Self::Sigmoid,
            ActivationKind::HardSigmoid => Self::HardSigmoid {
                alpha: p0,
                beta: p1,
            },
            ActivationKind::HardSwish => Self::HardSwish,
            ActivationKind::LeakyRelu => Self::LeakyRelu { alpha: p0 },
            ActivationKind::Tanh => Self::Tanh,
        }
    }
}

impl Param for Activation {
    const WORDS: usize = 3;
    const PARTS: &'static [(&'static str, usize)] = &[("kind", 1), ("params", 2)];
    fn write(&self, words: &mut [u32]) {
        let (kind, params) = self.kind_and_params();
        kind.write(&mut words[..1]);
        params.write(&mut words[1..]);
    }
    fn read(words: &[u32]) -> Result<Self, OpError> {
        Ok(Self::from_kind(
            ActivationKind::read(&words[..1])?,
            <[f32; 2]>::read(&words[1..])?,
        ))
    }
}

/// Convolution geometry shared by [`Op::Conv2d`](super::Op::Conv2d),
/// [`Op::ConvTranspose2d`](super::Op::ConvTranspose2d) and pooling.
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
    /// Output extent of a forward window over `input` along `axis` (0 = H, 1 = W) with
    /// kernel extent `k`, or `None` when the window does not fit.
    pub fn out_extent(&self, axis: usize, input: usize, k: usize) -> Option<usize> {
        let padded = input + self.pads[axis] + self.pads[axis + 2];
        let span = self.dilation[axis] * (k.checked_sub(1)?) + 1;
        Some(padded.checked_sub(span)? / self.stride[axis] + 1)
    }
}

impl Param for Window {
    const WORDS: usize = 10;
    const PARTS: &'static [(&'static str, usize)] =
        &[("kernel", 2), ("stride", 2), ("dilation", 2), ("pads", 4)];
    fn write(&self, words: &mut [u32]) {
        self.kernel.write(&mut words[0..2]);
        self.stride.write(&mut words[2..4]);
        self.dilation.write(&mut words[4..6]);
        self.pads.write(&mut words[6..10]);
    }
    fn read(words: &[u32]) -> Result<Self, OpError> {
        let window = Self {
            kernel: Param::read(&words[0..2])?,
            stride: Param::read(&words[2..4])?,
            dilation: Param::read(&words[4..6])?,
            pads: Param::read(&words[6..10])?,
        };
        if window.stride.contains(&0) || window.dilation.contains(&0) {
            return Err(OpError::BadParam("stride and dilation must be at least 1"));
        }
        Ok(window)
    }
}

word_enum! {
    /// Element-wise binary operator.
    pub enum BinaryKind ("BINARY", "unknown binary operator") {
        /// `a + b`.
        Add = 0,
        /// `a - b`.
        Sub = 1,
        /// `a * b`.
        Mul = 2,
        /// `a / b`.
        Div = 3,
        /// `max(a, b)`.
        Max = 4,
        /// `min(a, b)`.
        Min = 5,
    }
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

word_enum! {
    /// How [`Op::Resize`](super::Op::Resize) maps an output coordinate back to the
    /// input (ONNX `coordinate_transformation_mode`).
    pub enum CoordinateTransform ("TRANSFORM", "unknown resize coordinate transform") {
        /// `(x + 0.5) / scale - 0.5`.
        HalfPixel = 0,
        /// `x / scale`.
        Asymmetric = 1,
        /// `x * (in - 1) / (out - 1)`.
        AlignCorners = 2,
        /// Like half-pixel, but 0 when the output extent is 1.
        PytorchHalfPixel = 3,
    }
}

word_enum! {
    /// How nearest-neighbour resize rounds a fractional source coordinate.
    pub enum NearestRounding ("ROUNDING", "unknown nearest rounding") {
        /// Round half down.
        RoundPreferFloor = 0,
        /// Round half up.
        RoundPreferCeil = 1,
        /// Floor.
        Floor = 2,
        /// Ceiling.
        Ceil = 3,
    }
}

/// Interpolation of [`Op::Resize`](super::Op::Resize).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// Nearest neighbour with the given rounding.
    Nearest(NearestRounding),
    /// Bilinear over H and W.
    Linear,
}

impl ResizeMode {
    /// The stored word of [`ResizeMode::Linear`].
    pub const LINEAR_CODE: u32 = 0;
    /// The stored word of `Nearest(r)` is this plus `r`'s code.
    pub const NEAREST_BASE: u32 = 1;
}

impl Param for ResizeMode {
    const WORDS: usize = 1;
    fn write(&self, words: &mut [u32]) {
        words[0] = match self {
            Self::Linear => Self::LINEAR_CODE,
            Self::Nearest(rounding) => Self::NEAREST_BASE + rounding.code(),
        };
    }
    fn read(words: &[u32]) -> Result<Self, OpError> {
        match words[0] {
            Self::LINEAR_CODE => Ok(Self::Linear),
            code => code
                .checked_sub(Self::NEAREST_BASE)
                .and_then(NearestRounding::from_code)
                .map(Self::Nearest)
                .ok_or(OpError::BadParam("unknown resize mode")),
        }
    }
}

word_enum! {
    /// Reduction operator of [`Op::Reduce`](super::Op::Reduce).
    pub enum ReduceKind ("REDUCE", "unknown reduction") {
        /// Maximum.
        Max = 0,
        /// Arithmetic mean.
        Mean = 1,
        /// Sum.
        Sum = 2,
    }
}
