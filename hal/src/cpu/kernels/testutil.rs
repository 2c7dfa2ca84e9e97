//! Test helpers: running one op on both SIMD paths, deterministic data, tolerant
//! comparison.

use crate::op::{Activation, Op};
use crate::plan::MAX_STEP_INPUTS;
use crate::shape::Shape;

use super::super::views::StepIo;
use super::{Path, run_with};

pub fn shape(dims: &[usize]) -> Shape {
    Shape::new(dims).expect("rank fits")
}

/// `n` values in `[-1, 1)` from `seed`, the data every Cadence test draws from.
pub use cadence_test_data::values as data;

/// The activations the fused ops are tested with.
pub fn activation(pick: u8) -> Activation {
    match pick % 8 {
        0 => Activation::Identity,
        1 => Activation::Relu,
        2 => Activation::Clip {
            min: -0.25,
            max: 0.5,
        },
        3 => Activation::Sigmoid,
        4 => Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        5 => Activation::HardSwish,
        6 => Activation::LeakyRelu { alpha: 0.1 },
        _ => Activation::Tanh,
    }
}

/// Runs `op` on `path` after checking the step is one validation would accept, with
/// exactly the scratch [`Op::scratch_bytes`] reserves. Unwritten outputs stay NaN.
pub fn run_on(path: Path, op: &Op, inputs: &[(&[f32], Shape)], out: &Shape) -> Vec<f32> {
    let mut shapes = [shape(&[]); MAX_STEP_INPUTS];
    let mut present = [false; MAX_STEP_INPUTS];
    let mut views: [&[f32]; MAX_STEP_INPUTS] = [&[]; MAX_STEP_INPUTS];
    for (i, (v, s)) in inputs.iter().enumerate() {
        assert_eq!(
            v.len(),
            s.volume(),
            "test input {i} disagrees with its shape"
        );
        shapes[i] = *s;
        present[i] = true;
        views[i] = v;
    }
    let scratch_bytes = op.scratch_bytes(&shapes[..], out);
    op.check(&shapes, &present, out, scratch_bytes)
        .unwrap_or_else(|e| panic!("test built an invalid step {op:?}: {e}"));
    let mut scratch = vec![f32::NAN; scratch_bytes / 4];
    let mut y = vec![f32::NAN; out.volume()];
    let io = StepIo {
        out: &mut y,
        scratch: &mut scratch,
        inputs: views,
    };
    run_with(path, op, io, &shapes, out);
    y
}

/// Runs `op` on the portable and the detected path, checks they agree within 1e-5
/// relative, and returns the detected path's result.
pub fn run_both(op: &Op, inputs: &[(&[f32], Shape)], out: &Shape) -> Vec<f32> {
    let portable = run_on(Path::Portable, op, inputs, out);
    let simd = run_on(Path::detect(), op, inputs, out);
    assert_close(&simd, &portable, 1e-5);
    simd
}

/// Element-wise `|got - want| <= tol * (1 + |want|)`, NaN only where expected.
pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= tol * (1.0 + w.abs())
        };
        assert!(ok, "element {i}: got {g}, want {w}");
    }
}
