//! Layout moves: concat pieces, transposes, slices and plain copies.
//!
//! Each is a copy of contiguous runs as long as the layouts allow: the tensor is split
//! around the axis that matters into (outer, axis, inner) so the innermost run is a
//! `copy_from_slice`, and a transpose merges output axes that stay adjacent in the
//! input before it walks the rest with an odometer.

use crate::shape::{MAX_RANK, Shape};

use super::split_at_axis;

/// `Copy`.
pub fn copy(x: &[f32], y: &mut [f32]) {
    y.copy_from_slice(x);
}

/// `CopyInto`: `x` becomes the slab `offset..offset + x.dim(axis)` of `y` along `axis`.
pub fn copy_into(
    x: &[f32],
    x_shape: &Shape,
    axis: usize,
    offset: usize,
    y: &mut [f32],
    y_shape: &Shape,
) {
    let (_, len, inner) = split_at_axis(x_shape, axis);
    let (chunk, out_chunk) = (len * inner, y_shape.dim(axis) * inner);
    if chunk == 0 {
        return;
    }
    for (src, dst) in x.chunks_exact(chunk).zip(y.chunks_exact_mut(out_chunk)) {
        dst[offset * inner..][..chunk].copy_from_slice(src);
    }
}

/// `Slice`: every `step`-th index along `axis` from `start`.
pub fn slice(
    x: &[f32],
    x_shape: &Shape,
    axis: usize,
    start: usize,
    step: usize,
    y: &mut [f32],
    y_shape: &Shape,
) {
    let (_, len, inner) = split_at_axis(x_shape, axis);
    let out_len = y_shape.dim(axis);
    if out_len * inner == 0 || len * inner == 0 {
        return;
    }
    for (src, dst) in x
        .chunks_exact(len * inner)
        .zip(y.chunks_exact_mut(out_len * inner))
    {
        for (i, run) in dst.chunks_exact_mut(inner).enumerate() {
            run.copy_from_slice(&src[(start + i * step) * inner..][..inner]);
        }
    }
}

/// `Transpose`: output axis `i` is input axis `perm[i]`.
pub fn transpose(x: &[f32], x_shape: &Shape, perm: &[usize; MAX_RANK], y: &mut [f32]) {
    if y.is_empty() {
        return;
    }
    let rank = x_shape.rank();
    let strides = x_shape.strides();
    // (extent, input stride) per output axis, size-1 axes dropped, mergeable ones merged.
    let mut levels = [(1usize, 0usize); MAX_RANK];
    let mut count = 0;
    for &p in &perm[..rank] {
        let (len, stride) = (x_shape.dim(p), strides[p]);
        if len == 1 {
            continue;
        }
        match levels[..count].last_mut() {
            Some(prev) if prev.1 == stride * len => *prev = (prev.0 * len, stride),
            _ => {
                levels[count] = (len, stride);
                count += 1;
            }
        }
    }
    let Some((&(inner_len, inner_stride), outer)) = levels[..count].split_last() else {
        y.copy_from_slice(x);
        return;
    };
    let mut idx = [0usize; MAX_RANK];
    let mut off = 0;
    for row in y.chunks_exact_mut(inner_len) {
        if inner_stride == 1 {
            row.copy_from_slice(&x[off..off + inner_len]);
        } else {
            row.iter_mut()
                .zip(x[off..].iter().step_by(inner_stride))
                .for_each(|(d, &s)| *d = s);
        }
        for (i, &(len, stride)) in outer.iter().enumerate().rev() {
            idx[i] += 1;
            off += stride;
            if idx[i] < len {
                break;
            }
            idx[i] = 0;
            off -= stride * len;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::cpu::kernels::testutil::{data, run_both, shape};
    use crate::op::Op;
    use crate::shape::{MAX_RANK, Shape};

    /// Multi-index of `flat` in `s`.
    fn unravel(mut flat: usize, s: &Shape) -> Vec<usize> {
        let mut idx = vec![0; s.rank()];
        for i in (0..s.rank()).rev() {
            idx[i] = flat % s.dim(i);
            flat /= s.dim(i);
        }
        idx
    }

    fn ravel(idx: &[usize], s: &Shape) -> usize {
        idx.iter()
            .enumerate()
            .fold(0, |acc, (i, &v)| acc * s.dim(i) + v)
    }

    fn dims() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(1usize..5, 1..7)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn transpose_moves_every_element(dims in dims(), shuffle in any::<u64>()) {
            let rank = dims.len();
            let mut perm: Vec<usize> = (0..rank).collect();
            let mut s = shuffle;
            for i in (1..rank).rev() {
                perm.swap(i, (s % (i as u64 + 1)) as usize);
                s /= i as u64 + 1;
            }
            let x_shape = shape(&dims);
            let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
            let y_shape = shape(&out_dims);
            let x = data(shuffle, x_shape.volume());
            let mut want = vec![0.0; x.len()];
            for (flat, w) in want.iter_mut().enumerate() {
                let out_idx = unravel(flat, &y_shape);
                let mut in_idx = vec![0; rank];
                for (i, &p) in perm.iter().enumerate() {
                    in_idx[p] = out_idx[i];
                }
                *w = x[ravel(&in_idx, &x_shape)];
            }
            let mut p = [0; MAX_RANK];
            p[..rank].copy_from_slice(&perm);
            prop_assert_eq!(run_both(&Op::Transpose { perm: p }, &[(&x, x_shape)], &y_shape), want);
        }

        #[test]
        fn slice_takes_every_step(dims in dims(), axis in 0usize..6, start in 0usize..4, step in 1usize..4, seed in any::<u64>()) {
            let axis = axis % dims.len();
            let x_shape = shape(&dims);
            let len = dims[axis];
            let start = start % len;
            let count = (len - start).div_ceil(step);
            let mut out_dims = dims.clone();
            out_dims[axis] = count;
            let y_shape = shape(&out_dims);
            let x = data(seed, x_shape.volume());
            let want: Vec<f32> = (0..y_shape.volume()).map(|flat| {
                let mut idx = unravel(flat, &y_shape);
                idx[axis] = start + idx[axis] * step;
                x[ravel(&idx, &x_shape)]
            }).collect();
            prop_assert_eq!(run_both(&Op::Slice { axis, start, step }, &[(&x, x_shape)], &y_shape), want);
        }

        #[test]
        fn copy_into_pieces_make_a_concat(dims in dims(), axis in 0usize..6, extra in [1usize..4, 1usize..4], seed in any::<u64>()) {
            let axis = axis % dims.len();
            let mut a_dims = dims.clone();
            a_dims[axis] = extra[0];
            let mut b_dims = dims.clone();
            b_dims[axis] = extra[1];
            let mut y_dims = dims.clone();
            y_dims[axis] = extra[0] + extra[1];
            let (sa, sb, sy) = (shape(&a_dims), shape(&b_dims), shape(&y_dims));
            let a = data(seed, sa.volume());
            let b = data(seed ^ 1, sb.volume());
            let first = run_both(&Op::CopyInto { axis, offset: 0 }, &[(&a, sa)], &sy);
            let second = run_both(&Op::CopyInto { axis, offset: extra[0] }, &[(&b, sb)], &sy);
            for flat in 0..sy.volume() {
                let mut idx = unravel(flat, &sy);
                if idx[axis] < extra[0] {
                    prop_assert_eq!(first[flat], a[ravel(&idx, &sa)]);
                    prop_assert!(second[flat].is_nan());
                } else {
                    idx[axis] -= extra[0];
                    prop_assert_eq!(second[flat], b[ravel(&idx, &sb)]);
                    prop_assert!(first[flat].is_nan());
                }
            }
        }
    }

    #[test]
    fn copy_is_a_reshape() {
        let x = data(3, 24);
        assert_eq!(
            run_both(&Op::Copy, &[(&x, shape(&[2, 3, 4]))], &shape(&[6, 4])),
            x
        );
    }
}
