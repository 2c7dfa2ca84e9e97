//! Element-wise maths: activations and broadcasting binary operators.
//!
//! Broadcasting is reduced to its simplest form before any element is touched: dims of
//! extent 1 are dropped and neighbours that are contiguous in both operands are
//! merged, so a per-channel `[C,1,1]` operand becomes an outer loop over channels
//! around a scalar-times-row inner loop, and same-shape or scalar operands become one
//! flat loop. The operator is dispatched once, outside the loops, so each inner loop is
//! monomorphised and vectorised.

use crate::op::{Activation, BinaryKind};
use crate::shape::{MAX_RANK, Shape};

/// `Unary`: the activation over the whole tensor.
pub fn unary(act: Activation, x: &[f32], y: &mut [f32]) {
    y.copy_from_slice(x);
    act.apply_slice(y);
}

/// `Binary` with NumPy broadcasting.
pub fn binary(
    kind: BinaryKind,
    a: &[f32],
    a_shape: &Shape,
    b: &[f32],
    b_shape: &Shape,
    y: &mut [f32],
    y_shape: &Shape,
) {
    let args = Operands {
        a,
        a_shape,
        b,
        b_shape,
        y_shape,
    };
    match kind {
        BinaryKind::Add => args.apply(y, |p, q| p + q),
        BinaryKind::Sub => args.apply(y, |p, q| p - q),
        BinaryKind::Mul => args.apply(y, |p, q| p * q),
        BinaryKind::Div => args.apply(y, |p, q| p / q),
        BinaryKind::Max => args.apply(y, f32::max),
        BinaryKind::Min => args.apply(y, f32::min),
    }
}

struct Operands<'a> {
    a: &'a [f32],
    a_shape: &'a Shape,
    b: &'a [f32],
    b_shape: &'a Shape,
    y_shape: &'a Shape,
}

/// One loop level: extent and the two operands' strides (0 where broadcast).
#[derive(Clone, Copy)]
struct Level {
    len: usize,
    sa: usize,
    sb: usize,
}

/// Stride of `shape`'s axis aligned with output axis `axis` of a rank-`rank` output, or
/// 0 where `shape` broadcasts along it.
fn aligned_stride(shape: &Shape, strides: &[usize; MAX_RANK], rank: usize, axis: usize) -> usize {
    let lead = rank - shape.rank();
    if axis < lead || shape.dim(axis - lead) == 1 {
        0
    } else {
        strides[axis - lead]
    }
}

impl Operands<'_> {
    #[inline(always)]
    fn apply(&self, y: &mut [f32], f: impl Fn(f32, f32) -> f32 + Copy) {
        let (a, b) = (self.a, self.b);
        if y.is_empty() {
            return;
        }
        if self.a_shape == self.b_shape {
            y.iter_mut()
                .zip(a.iter().zip(b))
                .for_each(|(o, (&p, &q))| *o = f(p, q));
            return;
        }
        if b.len() == 1 {
            let q = b[0];
            y.iter_mut().zip(a).for_each(|(o, &p)| *o = f(p, q));
            return;
        }
        if a.len() == 1 {
            let p = a[0];
            y.iter_mut().zip(b).for_each(|(o, &q)| *o = f(p, q));
            return;
        }

        let rank = self.y_shape.rank();
        let (sa_full, sb_full) = (self.a_shape.strides(), self.b_shape.strides());
        let mut levels = [Level {
            len: 1,
            sa: 0,
            sb: 0,
        }; MAX_RANK];
        let mut count = 0;
        for axis in 0..rank {
            let len = self.y_shape.dim(axis);
            if len == 1 {
                continue;
            }
            let sa = aligned_stride(self.a_shape, &sa_full, rank, axis);
            let sb = aligned_stride(self.b_shape, &sb_full, rank, axis);
            match levels[..count].last_mut() {
                Some(prev) if prev.sa == sa * len && prev.sb == sb * len => {
                    *prev = Level {
                        len: prev.len * len,
                        sa,
                        sb,
                    };
                }
                _ => {
                    levels[count] = Level { len, sa, sb };
                    count += 1;
                }
            }
        }
        let Some((inner, outer)) = levels[..count].split_last() else {
            if let Some(o) = y.first_mut() {
                *o = f(a[0], b[0]);
            }
            return;
        };
        let mut idx = [0usize; MAX_RANK];
        let (mut oa, mut ob) = (0, 0);
        for row in y.chunks_exact_mut(inner.len) {
            match (inner.sa, inner.sb) {
                (0, _) => {
                    let p = a[oa];
                    row.iter_mut()
                        .zip(&b[ob..])
                        .for_each(|(o, &q)| *o = f(p, q));
                }
                (_, 0) => {
                    let q = b[ob];
                    row.iter_mut()
                        .zip(&a[oa..])
                        .for_each(|(o, &p)| *o = f(p, q));
                }
                _ => row
                    .iter_mut()
                    .zip(a[oa..].iter().zip(&b[ob..]))
                    .for_each(|(o, (&p, &q))| *o = f(p, q)),
            }
            for (i, level) in outer.iter().enumerate().rev() {
                idx[i] += 1;
                oa += level.sa;
                ob += level.sb;
                if idx[i] < level.len {
                    break;
                }
                idx[i] = 0;
                oa -= level.sa * level.len;
                ob -= level.sb * level.len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::cpu::kernels::testutil::{activation, assert_close, data, run_both, shape};
    use crate::op::{BinaryKind, Op};
    use crate::shape::{Shape, broadcast};

    const KINDS: [BinaryKind; 6] = [
        BinaryKind::Add,
        BinaryKind::Sub,
        BinaryKind::Mul,
        BinaryKind::Div,
        BinaryKind::Max,
        BinaryKind::Min,
    ];

    /// NumPy broadcasting by multi-index: each output index is mapped into each operand.
    fn reference(
        kind: BinaryKind,
        a: &[f32],
        sa: &Shape,
        b: &[f32],
        sb: &Shape,
        out: &Shape,
    ) -> Vec<f32> {
        let r = out.rank();
        let index = |s: &Shape, multi: &[usize]| {
            let lead = r - s.rank();
            (0..s.rank()).fold(0, |acc, i| {
                acc * s.dim(i) + if s.dim(i) == 1 { 0 } else { multi[lead + i] }
            })
        };
        (0..out.volume())
            .map(|flat| {
                let mut multi = vec![0; r];
                let mut rest = flat;
                for i in (0..r).rev() {
                    multi[i] = rest % out.dim(i);
                    rest /= out.dim(i);
                }
                kind.apply(a[index(sa, &multi)], b[index(sb, &multi)])
            })
            .collect()
    }

    /// A shape and a broadcast-compatible partner: each of the partner's trailing dims
    /// is kept or set to 1, and leading dims may be dropped.
    fn shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        prop::collection::vec(1usize..5, 0..7)
            .prop_flat_map(|dims| {
                let r = dims.len();
                (
                    Just(dims),
                    prop::collection::vec(any::<bool>(), r),
                    0..=r,
                    any::<bool>(),
                )
            })
            .prop_map(|(dims, ones, drop, swap)| {
                let other: Vec<usize> = dims
                    .iter()
                    .zip(&ones)
                    .skip(drop)
                    .map(|(&d, &one)| if one { 1 } else { d })
                    .collect();
                if swap { (other, dims) } else { (dims, other) }
            })
    }

    fn check(kind: BinaryKind, da: &[usize], db: &[usize], seed: u64) {
        let (sa, sb) = (shape(da), shape(db));
        let out = broadcast(&sa, &sb).expect("compatible");
        let a = data(seed, sa.volume());
        let mut b = data(seed ^ 1, sb.volume());
        if kind == BinaryKind::Div {
            b.iter_mut().for_each(|v| *v = v.abs() + 0.5);
        }
        let got = run_both(&Op::Binary(kind), &[(&a, sa), (&b, sb)], &out);
        assert_close(&got, &reference(kind, &a, &sa, &b, &sb, &out), 1e-6);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn binary_broadcasts_like_numpy((da, db) in shapes(), kind in 0usize..6, seed in any::<u64>()) {
            check(KINDS[kind], &da, &db, seed);
        }

        #[test]
        fn unary_applies_the_activation(dims in prop::collection::vec(1usize..6, 0..5), act in any::<u8>(), seed in any::<u64>()) {
            let act = activation(act);
            let s = shape(&dims);
            let x: Vec<f32> = data(seed, s.volume()).iter().map(|v| v * 8.0).collect();
            let want: Vec<f32> = x.iter().map(|&v| act.apply(v)).collect();
            assert_close(&run_both(&Op::Unary(act), &[(&x, s)], &s), &want, 1e-6);
        }
    }

    #[test]
    fn fast_paths_and_common_patterns() {
        for kind in KINDS {
            check(kind, &[2, 3, 4, 5], &[2, 3, 4, 5], 1);
            check(kind, &[2, 3, 4, 5], &[1], 2);
            check(kind, &[], &[2, 3], 3);
            check(kind, &[1, 8, 5, 6], &[8, 1, 1], 4);
            check(kind, &[1, 8, 1, 1], &[1, 8, 5, 6], 5);
            check(kind, &[3, 1], &[1, 4], 6);
            check(kind, &[2, 1, 3, 1, 2, 1], &[1, 4, 1, 5, 1, 3], 7);
            check(kind, &[2, 0, 3], &[1, 3], 8);
        }
    }
}
