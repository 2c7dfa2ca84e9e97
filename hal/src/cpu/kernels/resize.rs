//! Spatial resize with ONNX `Resize` semantics.
//!
//! Each output row maps to its source row(s) once; each output column's source is
//! recomputed along the row (a handful of flops, cheaper than the per-column tables a
//! `no_std`, heap-free kernel would have to keep on the stack for any width).

use crate::op::{CoordinateTransform, NearestRounding, ResizeMode};
use crate::scalar::floor;
use crate::shape::Shape;

/// The source coordinate of output index `o` along one axis.
fn source(t: CoordinateTransform, o: usize, scale: f32, out_len: usize, in_len: usize) -> f32 {
    let o = o as f32;
    match t {
        CoordinateTransform::HalfPixel => (o + 0.5) / scale - 0.5,
        CoordinateTransform::Asymmetric => o / scale,
        CoordinateTransform::AlignCorners if out_len > 1 => {
            o * (in_len - 1) as f32 / (out_len - 1) as f32
        }
        CoordinateTransform::PytorchHalfPixel if out_len > 1 => (o + 0.5) / scale - 0.5,
        CoordinateTransform::AlignCorners | CoordinateTransform::PytorchHalfPixel => 0.0,
    }
}

/// The nearest source index under `rounding`, clamped into the image.
fn nearest(rounding: NearestRounding, x: f32, len: usize) -> usize {
    let r = match rounding {
        NearestRounding::RoundPreferFloor => -floor(0.5 - x),
        NearestRounding::RoundPreferCeil => floor(x + 0.5),
        NearestRounding::Floor => floor(x),
        NearestRounding::Ceil => -floor(-x),
    };
    (r.max(0.0) as usize).min(len - 1)
}

/// The two neighbours of `x` (clamped into the image) and the weight of the second.
fn linear(x: f32, len: usize) -> (usize, usize, f32) {
    let x = x.max(0.0).min((len - 1) as f32);
    let i0 = (x as usize).min(len - 1);
    (i0, (i0 + 1).min(len - 1), x - i0 as f32)
}

/// `Resize` of `[N, C, H, W]` to the output's H and W.
pub fn resize(
    x: &[f32],
    x_shape: &Shape,
    mode: ResizeMode,
    t: CoordinateTransform,
    scale: [f32; 2],
    y: &mut [f32],
    y_shape: &Shape,
) {
    let (h, w) = (x_shape.dim(2), x_shape.dim(3));
    let (oh, ow) = (y_shape.dim(2), y_shape.dim(3));
    if oh * ow == 0 {
        return;
    }
    for (plane, out) in y.chunks_exact_mut(oh * ow).enumerate() {
        let input = &x[plane * h * w..][..h * w];
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            let sy = source(t, oy, scale[0], oh, h);
            match mode {
                ResizeMode::Nearest(r) => {
                    let irow = &input[nearest(r, sy, h) * w..][..w];
                    for (ox, o) in orow.iter_mut().enumerate() {
                        *o = irow[nearest(r, source(t, ox, scale[1], ow, w), w)];
                    }
                }
                ResizeMode::Linear => {
                    let (y0, y1, fy) = linear(sy, h);
                    let (r0, r1) = (&input[y0 * w..][..w], &input[y1 * w..][..w]);
                    for (ox, o) in orow.iter_mut().enumerate() {
                        let (x0, x1, fx) = linear(source(t, ox, scale[1], ow, w), w);
                        let top = r0[x0] + (r0[x1] - r0[x0]) * fx;
                        let bottom = r1[x0] + (r1[x1] - r1[x0]) * fx;
                        *o = top + (bottom - top) * fy;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::cpu::kernels::testutil::{assert_close, data, run_both, shape};
    use crate::op::{CoordinateTransform, NearestRounding, Op, ResizeMode};

    const TRANSFORMS: [CoordinateTransform; 4] = [
        CoordinateTransform::HalfPixel,
        CoordinateTransform::Asymmetric,
        CoordinateTransform::AlignCorners,
        CoordinateTransform::PytorchHalfPixel,
    ];
    const MODES: [ResizeMode; 5] = [
        ResizeMode::Linear,
        ResizeMode::Nearest(NearestRounding::RoundPreferFloor),
        ResizeMode::Nearest(NearestRounding::RoundPreferCeil),
        ResizeMode::Nearest(NearestRounding::Floor),
        ResizeMode::Nearest(NearestRounding::Ceil),
    ];

    /// The ONNX reference's 1-D step: coefficients for the two neighbours of `x` in the
    /// edge-padded data, as (clamped index, weight) pairs.
    fn taps(
        mode: ResizeMode,
        t: CoordinateTransform,
        o: usize,
        scale: f32,
        out_len: usize,
        len: usize,
    ) -> [(usize, f32); 2] {
        let of = o as f32;
        let x = match t {
            CoordinateTransform::HalfPixel => (of + 0.5) / scale - 0.5,
            CoordinateTransform::Asymmetric => of / scale,
            CoordinateTransform::AlignCorners => {
                if out_len == 1 {
                    0.0
                } else {
                    of * (len as f32 - 1.0) / (out_len as f32 - 1.0)
                }
            }
            CoordinateTransform::PytorchHalfPixel => {
                if out_len > 1 {
                    (of + 0.5) / scale - 0.5
                } else {
                    0.0
                }
            }
        };
        let x_int = x.floor();
        let ratio = if x == x_int { 1.0 } else { x - x_int };
        let coeffs = match mode {
            ResizeMode::Linear => [1.0 - ratio, ratio],
            ResizeMode::Nearest(_) if ratio == 1.0 => [0.0, 1.0],
            ResizeMode::Nearest(NearestRounding::RoundPreferFloor) => {
                [f32::from(ratio <= 0.5), f32::from(ratio > 0.5)]
            }
            ResizeMode::Nearest(NearestRounding::RoundPreferCeil) => {
                [f32::from(ratio < 0.5), f32::from(ratio >= 0.5)]
            }
            ResizeMode::Nearest(NearestRounding::Floor) => [1.0, 0.0],
            ResizeMode::Nearest(NearestRounding::Ceil) => [0.0, 1.0],
        };
        // The two indices of the data padded by one edge cell that are nearest to x + 1
        // (ties to the lower), mapped back into the unpadded data.
        let xp = x + 1.0;
        let mut idx: Vec<usize> = (0..len + 2).collect();
        idx.sort_by(|&a, &b| {
            (xp - a as f32)
                .abs()
                .total_cmp(&(xp - b as f32).abs())
                .then(a.cmp(&b))
        });
        let mut two = [idx[0], idx[1]];
        two.sort();
        let unpad = |i: usize| i.saturating_sub(1).min(len - 1);
        [(unpad(two[0]), coeffs[0]), (unpad(two[1]), coeffs[1])]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn resize_matches_onnx_reference(
            n in 1usize..3, c in 1usize..3, h in 1usize..7, w in 1usize..7,
            scale in [0usize..6, 0usize..6], mode in 0usize..5, t in 0usize..4, seed in any::<u64>(),
        ) {
            const SCALES: [f32; 6] = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0];
            let scale = [SCALES[scale[0]], SCALES[scale[1]]];
            let (mode, t) = (MODES[mode], TRANSFORMS[t]);
            let oh = ((h as f32 * scale[0]) as usize).max(1);
            let ow = ((w as f32 * scale[1]) as usize).max(1);
            let x = data(seed, n * c * h * w);
            let mut want = Vec::new();
            for plane in x.chunks(h * w) {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut v = 0.0;
                        for (iy, cy) in taps(mode, t, oy, scale[0], oh, h) {
                            for (ix, cx) in taps(mode, t, ox, scale[1], ow, w) {
                                v += cy * cx * plane[iy * w + ix];
                            }
                        }
                        want.push(v);
                    }
                }
            }
            let op = Op::Resize { mode, transform: t, scale };
            let got = run_both(&op, &[(&x, shape(&[n, c, h, w]))], &shape(&[n, c, oh, ow]));
            assert_close(&got, &want, 1e-5);
        }
    }

    #[test]
    fn nearest_doubling_repeats_pixels() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let op = Op::Resize {
            mode: ResizeMode::Nearest(NearestRounding::Floor),
            transform: CoordinateTransform::Asymmetric,
            scale: [2.0, 2.0],
        };
        let got = run_both(&op, &[(&x, shape(&[1, 1, 2, 2]))], &shape(&[1, 1, 4, 4]));
        assert_eq!(
            got,
            [
                1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.
            ]
        );
    }
}
