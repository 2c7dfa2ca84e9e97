//! CPU kernels, one module per op family.
//!
//! Only the GEMM microkernel has hand-written SIMD: convolutions (im2col, pointwise,
//! transposed) and matrix products all funnel into it, and it is where nearly all
//! the time of a camera or lidar backbone goes. Everything else is plain Rust shaped so
//! LLVM vectorises it (contiguous inner loops, operator dispatch hoisted out of them).
//!
//! The SIMD path is chosen once per call by [`Path::detect`] and passed down
//! explicitly, so tests can run the same op on the portable and the SIMD path and
//! compare them.

mod conv;
mod elementwise;
mod gemm;
mod layout;
mod normalize;
mod pool;
mod resize;

#[cfg(test)]
mod testutil;

use crate::op::Op;
use crate::plan::MAX_STEP_INPUTS;
use crate::shape::Shape;

use super::views::StepIo;

pub use gemm::Path;

/// Which SIMD path the kernels take on this machine (`"avx2+fma"`, `"neon"`, `"portable"`).
pub fn simd_level() -> &'static str {
    Path::detect().name()
}

/// Runs one decoded op over its views.
pub fn run(op: &Op, io: StepIo<'_>, inputs: &[Shape; MAX_STEP_INPUTS], out: &Shape) {
    run_with(Path::detect(), op, io, inputs, out);
}

/// [`run`] on an explicit SIMD path.
fn run_with(path: Path, op: &Op, io: StepIo<'_>, inputs: &[Shape; MAX_STEP_INPUTS], out: &Shape) {
    let StepIo {
        out: y,
        scratch,
        inputs: [x0, x1, x2],
    } = io;
    let conv_args = |groups, window, activation| conv::ConvArgs {
        x: x0,
        x_shape: &inputs[0],
        w: x1,
        w_shape: &inputs[1],
        bias: x2,
        groups,
        window,
        activation,
    };
    match *op {
        Op::Conv2d {
            groups,
            window,
            activation,
        } => conv::conv2d(
            path,
            &conv_args(groups, window, activation),
            y,
            out,
            scratch,
        ),
        Op::ConvTranspose2d {
            groups,
            window,
            activation,
            ..
        } => conv::conv_transpose2d(path, &conv_args(groups, window, activation), y, out),
        Op::MatMul { activation } => {
            gemm::matmul(path, x0, &inputs[0], x1, &inputs[1], x2, activation, y);
        }
        Op::Unary(activation) => elementwise::unary(activation, x0, y),
        Op::Binary(kind) => elementwise::binary(kind, x0, &inputs[0], x1, &inputs[1], y, out),
        Op::MaxPool2d(window) => pool::max_pool(x0, &inputs[0], window, y, out),
        Op::AvgPool2d {
            window,
            count_include_pad,
        } => pool::avg_pool(x0, &inputs[0], window, count_include_pad, y, out),
        Op::GlobalAvgPool => pool::global_avg_pool(x0, &inputs[0], y),
        Op::CopyInto { axis, offset } => layout::copy_into(x0, &inputs[0], axis, offset, y, out),
        Op::Transpose { perm } => layout::transpose(x0, &inputs[0], &perm, y),
        Op::Slice { axis, start, step } => layout::slice(x0, &inputs[0], axis, start, step, y, out),
        Op::Resize {
            mode,
            transform,
            scale,
        } => resize::resize(x0, &inputs[0], mode, transform, scale, y, out),
        Op::Softmax { axis } => normalize::softmax(x0, &inputs[0], axis, y),
        Op::Reduce { kind, axis } => normalize::reduce(kind, x0, &inputs[0], axis, y),
        Op::Copy => layout::copy(x0, y),
        Op::PointwiseConvMax { activation } => conv::pointwise_max(
            path,
            &conv_args(1, conv::UNIT_WINDOW, activation),
            y,
            scratch,
        ),
    }
}

/// Splits `shape` around `axis` into (product of dims before, dim, product after).
fn split_at_axis(shape: &Shape, axis: usize) -> (usize, usize, usize) {
    let dims = shape.dims();
    let outer = dims[..axis].iter().product();
    let inner = dims[axis + 1..].iter().product();
    (outer, dims[axis], inner)
}
