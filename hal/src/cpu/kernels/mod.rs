//! CPU kernels, one module per op family. PLACEHOLDER: being written.

use crate::op::Op;
use crate::plan::MAX_STEP_INPUTS;
use crate::shape::Shape;

use super::views::StepIo;

/// Which SIMD path the kernels take on this machine (`"avx2+fma"`, `"neon"`, `"portable"`).
pub fn simd_level() -> &'static str {
    "portable"
}

/// Runs one decoded op over its views.
pub fn run(op: &Op, io: StepIo<'_>, inputs: &[Shape; MAX_STEP_INPUTS], out: &Shape) {
    let _ = (op, io, inputs, out);
}
