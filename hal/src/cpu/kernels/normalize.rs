//! Softmax and single-axis reductions.
//!
//! Both view the tensor as (outer, axis, inner). When the axis is innermost each row
//! is reduced with several independent partial sums so the loop vectorises despite
//! float addition not being associative; otherwise whole `inner`-long rows are
//! combined element-wise, which is contiguous and vectorises as it is. Softmax over a
//! strided axis keeps its per-column maxima and sums in fixed stack chunks, since
//! there is no heap to hold them.

use crate::op::ReduceKind;
use crate::scalar::exp;
use crate::shape::Shape;

use super::split_at_axis;

/// Lanes of the partial sums and of the stack chunks.
const LANES: usize = 8;
/// Columns a strided softmax handles at once.
const CHUNK: usize = 64;

/// Sum of `xs` with [`LANES`] independent accumulators.
pub fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a += v);
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Maximum of `xs` with [`LANES`] independent accumulators (`-inf` when empty).
#[inline]
pub fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a = a.max(v));
    }
    chunks
        .remainder()
        .iter()
        .chain(&acc)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// `Softmax` along `axis`: `e^(x - max) / Σ e^(x - max)`.
pub fn softmax(x: &[f32], x_shape: &Shape, axis: usize, y: &mut [f32]) {
    let (_, len, inner) = split_at_axis(x_shape, axis);
    if len * inner == 0 {
        return;
    }
    for (src, dst) in x
        .chunks_exact(len * inner)
        .zip(y.chunks_exact_mut(len * inner))
    {
        if inner == 1 {
            let max = lane_max(src);
            dst.iter_mut()
                .zip(src)
                .for_each(|(d, &s)| *d = exp(s - max));
            let inv = 1.0 / lane_sum(dst);
            dst.iter_mut().for_each(|d| *d *= inv);
            continue;
        }
        for c0 in (0..inner).step_by(CHUNK) {
            let width = CHUNK.min(inner - c0);
            let mut max = [f32::NEG_INFINITY; CHUNK];
            let mut sum = [0.0f32; CHUNK];
            for row in src.chunks_exact(inner) {
                max.iter_mut()
                    .zip(&row[c0..c0 + width])
                    .for_each(|(m, &v)| *m = m.max(v));
            }
            for (s_row, d_row) in src.chunks_exact(inner).zip(dst.chunks_exact_mut(inner)) {
                for (((d, &s), &m), acc) in d_row[c0..c0 + width]
                    .iter_mut()
                    .zip(&s_row[c0..c0 + width])
                    .zip(&max)
                    .zip(&mut sum)
                {
                    *d = exp(s - m);
                    *acc += *d;
                }
            }
            for d_row in dst.chunks_exact_mut(inner) {
                d_row[c0..c0 + width]
                    .iter_mut()
                    .zip(&sum)
                    .for_each(|(d, &s)| *d /= s);
            }
        }
    }
}

/// `Reduce` along `axis`, keeping it with extent 1.
pub fn reduce(kind: ReduceKind, x: &[f32], x_shape: &Shape, axis: usize, y: &mut [f32]) {
    let (_, len, inner) = split_at_axis(x_shape, axis);
    if len * inner == 0 {
        return;
    }
    for (src, dst) in x.chunks_exact(len * inner).zip(y.chunks_exact_mut(inner)) {
        if inner == 1 {
            dst[0] = match kind {
                ReduceKind::Max => lane_max(src),
                ReduceKind::Sum => lane_sum(src),
                ReduceKind::Mean => lane_sum(src) / len as f32,
            };
            continue;
        }
        let mut rows = src.chunks_exact(inner);
        if let Some(first) = rows.next() {
            dst.copy_from_slice(first);
        }
        for row in rows {
            match kind {
                ReduceKind::Max => dst.iter_mut().zip(row).for_each(|(d, &v)| *d = d.max(v)),
                ReduceKind::Sum | ReduceKind::Mean => {
                    dst.iter_mut().zip(row).for_each(|(d, &v)| *d += v)
                }
            }
        }
        if kind == ReduceKind::Mean {
            let inv = 1.0 / len as f32;
            dst.iter_mut().for_each(|d| *d *= inv);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::cpu::kernels::testutil::{assert_close, data, run_both, shape};
    use crate::op::{Op, ReduceKind};

    /// Element `(o, l, i)` of a tensor viewed as (outer, len, inner) around `axis`.
    fn view(dims: &[usize], axis: usize) -> (usize, usize, usize) {
        (
            dims[..axis].iter().product(),
            dims[axis],
            dims[axis + 1..].iter().product(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn softmax_matches_reference(dims in prop::collection::vec(1usize..9, 1..5), axis in 0usize..4, big in any::<bool>(), seed in any::<u64>()) {
            let axis = axis % dims.len();
            let s = shape(&dims);
            // Large logits check the max subtraction: e^80 alone would overflow.
            let gain = if big { 100.0 } else { 4.0 };
            let x: Vec<f32> = data(seed, s.volume()).iter().map(|v| v * gain).collect();
            let (outer, len, inner) = view(&dims, axis);
            let mut want = vec![0.0; x.len()];
            for o in 0..outer {
                for i in 0..inner {
                    let at = |l: usize| (o * len + l) * inner + i;
                    let max = (0..len).map(|l| x[at(l)] as f64).fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = (0..len).map(|l| (x[at(l)] as f64 - max).exp()).sum();
                    for l in 0..len {
                        want[at(l)] = ((x[at(l)] as f64 - max).exp() / sum) as f32;
                    }
                }
            }
            assert_close(&run_both(&Op::Softmax { axis }, &[(&x, s)], &s), &want, 1e-5);
        }

        #[test]
        fn reduce_matches_reference(dims in prop::collection::vec(1usize..12, 1..5), axis in 0usize..4, kind in 0usize..3, seed in any::<u64>()) {
            let kind = [ReduceKind::Max, ReduceKind::Mean, ReduceKind::Sum][kind];
            let axis = axis % dims.len();
            let s = shape(&dims);
            let x = data(seed, s.volume());
            let (outer, len, inner) = view(&dims, axis);
            let mut want = Vec::new();
            for o in 0..outer {
                for i in 0..inner {
                    let vals = (0..len).map(|l| x[(o * len + l) * inner + i] as f64);
                    want.push(match kind {
                        ReduceKind::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                        ReduceKind::Sum => vals.sum(),
                        ReduceKind::Mean => vals.sum::<f64>() / len as f64,
                    } as f32);
                }
            }
            let mut out_dims = dims.clone();
            out_dims[axis] = 1;
            let got = run_both(&Op::Reduce { kind, axis }, &[(&x, s)], &shape(&out_dims));
            assert_close(&got, &want, 1e-5);
        }
    }

    #[test]
    fn wide_strided_softmax_spans_several_chunks() {
        let s = shape(&[2, 3, 150]);
        let x = data(5, s.volume());
        let y = run_both(&Op::Softmax { axis: 1 }, &[(&x, s)], &s);
        for o in 0..2 {
            for i in 0..150 {
                let total: f32 = (0..3).map(|l| y[(o * 3 + l) * 150 + i]).sum();
                assert!((total - 1.0).abs() < 1e-5);
            }
        }
    }
}
