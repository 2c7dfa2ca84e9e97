//! Pooling over H and W.
//!
//! Like depthwise convolution, each window tap is applied to a whole output row at a
//! time (`row[ox] ⊕= input[iy][ox·s + dx]` over the range of `ox` that stays inside
//! the image), so the inner loops are contiguous and bounds are settled once per tap
//! instead of once per element. Padding is never materialised: it is simply the
//! part of the range left out.
//!
//! Windows wider than the output row turn that around: tapping whole rows would settle
//! bounds `kw` times for every one or two outputs (a max over a pillar's 32 points,
//! kernel `[1, 32]` on `[N, C, pillars, 32]`, has one output per row). There each output
//! reduces its window's contiguous run along W at once, with several independent lanes
//! so the reduction vectorises.

use crate::op::Window;
use crate::shape::Shape;

use super::conv::valid_range;
use super::normalize::{lane_max, lane_sum};

/// How a pooling kind starts, accumulates and finishes an output row.
trait Pooling {
    /// Sets the row to the identity of the accumulation.
    fn init(&self, row: &mut [f32]);
    /// Accumulates `src[k·stride]` into `row[k]`.
    fn tap(&self, row: &mut [f32], src: &[f32], stride: usize);
    /// Finishes output row `oy`.
    fn done(&self, row: &mut [f32], oy: usize);
    /// Accumulates the whole contiguous run `src` into one output.
    fn run(&self, out: &mut f32, src: &[f32]);
}

/// Whether [`windows`] beats [`rows`]: undilated windows wider than the output row.
fn window_major(win: &Window, ow: usize) -> bool {
    win.dilation[1] == 1 && win.kernel[1] > ow
}

/// Runs `pool` over the image one output element at a time: for each window row inside
/// the image, the part of the window inside that row is one contiguous run.
fn windows(
    x: &[f32],
    x_shape: &Shape,
    win: &Window,
    y: &mut [f32],
    y_shape: &Shape,
    pool: &impl Pooling,
) {
    let (h, w) = (x_shape.dim(2), x_shape.dim(3));
    let (oh, ow) = (y_shape.dim(2), y_shape.dim(3));
    let [kh, kw] = win.kernel;
    let [sh, sw] = win.stride;
    let dh = win.dilation[0];
    let (pt, pl) = (win.pads[0], win.pads[1]);
    if oh * ow == 0 {
        return;
    }
    for (plane, out) in y.chunks_exact_mut(oh * ow).enumerate() {
        let input = &x[plane * h * w..][..h * w];
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            pool.init(orow);
            for ky in 0..kh {
                let Some(iy) = (oy * sh + ky * dh).checked_sub(pt).filter(|&iy| iy < h) else {
                    continue;
                };
                let irow = &input[iy * w..][..w];
                for (ox, o) in orow.iter_mut().enumerate() {
                    let start = (ox * sw).saturating_sub(pl).min(w);
                    let end = (ox * sw + kw).saturating_sub(pl).min(w);
                    pool.run(o, &irow[start..end.max(start)]);
                }
            }
            pool.done(orow, oy);
        }
    }
}

/// Runs `pool` with whichever of [`rows`] and [`windows`] suits the window.
fn pool_planes(
    x: &[f32],
    x_shape: &Shape,
    win: &Window,
    y: &mut [f32],
    y_shape: &Shape,
    pool: &impl Pooling,
) {
    if window_major(win, y_shape.dim(3)) {
        windows(x, x_shape, win, y, y_shape, pool);
    } else {
        rows(x, x_shape, win, y, y_shape, pool);
    }
}

/// Runs `pool` over every window tap that touches the image, one output row at a time.
fn rows(
    x: &[f32],
    x_shape: &Shape,
    win: &Window,
    y: &mut [f32],
    y_shape: &Shape,
    pool: &impl Pooling,
) {
    let (h, w) = (x_shape.dim(2), x_shape.dim(3));
    let (oh, ow) = (y_shape.dim(2), y_shape.dim(3));
    let [kh, kw] = win.kernel;
    let [sh, sw] = win.stride;
    let [dh, dw] = win.dilation;
    let (pt, pl) = (win.pads[0] as isize, win.pads[1] as isize);
    if oh * ow == 0 {
        return;
    }
    for (plane, out) in y.chunks_exact_mut(oh * ow).enumerate() {
        let input = &x[plane * h * w..][..h * w];
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            pool.init(orow);
            for ky in 0..kh {
                let iy = (oy * sh + ky * dh) as isize - pt;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let irow = &input[iy as usize * w..][..w];
                for kx in 0..kw {
                    let dx = (kx * dw) as isize - pl;
                    let (lo, hi) = valid_range(ow, sw, dx, w);
                    if lo < hi {
                        let start = ((lo * sw) as isize + dx) as usize;
                        pool.tap(&mut orow[lo..hi], &irow[start..], sw);
                    }
                }
            }
            pool.done(orow, oy);
        }
    }
}

/// Number of taps `k < kernel` whose index `o·stride + k·dil − pad` is inside `0..len`.
fn taps_inside(
    o: usize,
    stride: usize,
    dil: usize,
    pad: usize,
    kernel: usize,
    len: usize,
) -> usize {
    (0..kernel)
        .filter(|&k| {
            let i = (o * stride + k * dil) as isize - pad as isize;
            i >= 0 && (i as usize) < len
        })
        .count()
}

/// `row[k] = f(row[k], src[k·stride])`, contiguous when the stride is 1.
#[inline(always)]
fn combine(row: &mut [f32], src: &[f32], stride: usize, f: impl Fn(f32, f32) -> f32) {
    if stride == 1 {
        row.iter_mut().zip(src).for_each(|(o, &i)| *o = f(*o, i));
    } else {
        row.iter_mut()
            .zip(src.iter().step_by(stride))
            .for_each(|(o, &i)| *o = f(*o, i));
    }
}

struct Max;

impl Pooling for Max {
    fn init(&self, row: &mut [f32]) {
        row.fill(f32::NEG_INFINITY);
    }
    fn tap(&self, row: &mut [f32], src: &[f32], stride: usize) {
        combine(row, src, stride, f32::max);
    }
    fn done(&self, _: &mut [f32], _: usize) {}
    fn run(&self, out: &mut f32, src: &[f32]) {
        *out = out.max(lane_max(src));
    }
}

struct Avg {
    win: Window,
    count_include_pad: bool,
    h: usize,
    w: usize,
}

impl Pooling for Avg {
    fn init(&self, row: &mut [f32]) {
        row.fill(0.0);
    }
    fn tap(&self, row: &mut [f32], src: &[f32], stride: usize) {
        combine(row, src, stride, |o, i| o + i);
    }
    fn run(&self, out: &mut f32, src: &[f32]) {
        *out += lane_sum(src);
    }
    fn done(&self, row: &mut [f32], oy: usize) {
        let win = &self.win;
        if self.count_include_pad {
            let inv = 1.0 / (win.kernel[0] * win.kernel[1]) as f32;
            row.iter_mut().for_each(|o| *o *= inv);
        } else {
            let rows_in = taps_inside(
                oy,
                win.stride[0],
                win.dilation[0],
                win.pads[0],
                win.kernel[0],
                self.h,
            );
            for (ox, o) in row.iter_mut().enumerate() {
                let cols_in = taps_inside(
                    ox,
                    win.stride[1],
                    win.dilation[1],
                    win.pads[1],
                    win.kernel[1],
                    self.w,
                );
                *o /= (rows_in * cols_in) as f32;
            }
        }
    }
}

/// `MaxPool2d`: padding cells never win.
pub fn max_pool(x: &[f32], x_shape: &Shape, win: Window, y: &mut [f32], y_shape: &Shape) {
    pool_planes(x, x_shape, &win, y, y_shape, &Max);
}

/// `AvgPool2d`: the divisor is the whole window, or only its cells inside the image.
pub fn avg_pool(
    x: &[f32],
    x_shape: &Shape,
    win: Window,
    count_include_pad: bool,
    y: &mut [f32],
    y_shape: &Shape,
) {
    let avg = Avg {
        win,
        count_include_pad,
        h: x_shape.dim(2),
        w: x_shape.dim(3),
    };
    pool_planes(x, x_shape, &win, y, y_shape, &avg);
}

/// `GlobalAvgPool`: the mean of each plane.
pub fn global_avg_pool(x: &[f32], x_shape: &Shape, y: &mut [f32]) {
    let hw = x_shape.dim(2) * x_shape.dim(3);
    if hw == 0 {
        y.fill(f32::NAN);
        return;
    }
    let inv = 1.0 / hw as f32;
    for (o, plane) in y.iter_mut().zip(x.chunks_exact(hw)) {
        *o = lane_sum(plane) * inv;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::cpu::kernels::testutil::{assert_close, data, run_both, shape};
    use crate::op::{Op, Window};

    /// Direct window loops; `max` ignores padding, `avg` divides per ONNX.
    fn reference(
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        win: &Window,
        oh: usize,
        ow: usize,
        pool: Option<bool>,
    ) -> Vec<f32> {
        let mut y = Vec::new();
        for plane in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut max, mut sum, mut inside) = (f32::NEG_INFINITY, 0.0f64, 0);
                    for ky in 0..win.kernel[0] {
                        for kx in 0..win.kernel[1] {
                            let iy = (oy * win.stride[0] + ky * win.dilation[0]) as isize
                                - win.pads[0] as isize;
                            let ix = (ox * win.stride[1] + kx * win.dilation[1]) as isize
                                - win.pads[1] as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                let v = x[(plane * h + iy as usize) * w + ix as usize];
                                max = max.max(v);
                                sum += v as f64;
                                inside += 1;
                            }
                        }
                    }
                    y.push(match pool {
                        None => max,
                        Some(true) => (sum / (win.kernel[0] * win.kernel[1]) as f64) as f32,
                        Some(false) => (sum / inside as f64) as f32,
                    });
                }
            }
        }
        y
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn pooling_matches_reference(
            n in 1usize..3, c in 1usize..4, h in 1usize..12, w in 1usize..12,
            kernel in [1usize..4, 1usize..4], stride in [1usize..3, 1usize..3],
            dilation in [1usize..3, 1usize..3], pads in [0usize..3, 0usize..3, 0usize..3, 0usize..3],
            kind in 0u8..3, seed in any::<u64>(),
        ) {
            // ONNX requires each pad to be smaller than the kernel.
            let pads = [pads[0] % kernel[0], pads[1] % kernel[1], pads[2] % kernel[0], pads[3] % kernel[1]];
            let win = Window { kernel, stride, dilation, pads };
            let (Some(oh), Some(ow)) = (win.out_extent(0, h, kernel[0]), win.out_extent(1, w, kernel[1])) else {
                return Ok(());
            };
            let x = data(seed, n * c * h * w);
            let (op, pool) = match kind {
                0 => (Op::MaxPool2d(win), None),
                k => (Op::AvgPool2d { window: win, count_include_pad: k == 1 }, Some(k == 1)),
            };
            let want = reference(&x, [n, c, h, w], &win, oh, ow, pool);
            // A window lying wholly in the padding has nothing to average (or max).
            if want.iter().any(|v| !v.is_finite()) {
                return Ok(());
            }
            let got = run_both(&op, &[(&x, shape(&[n, c, h, w]))], &shape(&[n, c, oh, ow]));
            assert_close(&got, &want, 1e-5);
        }

        /// Windows wider than the output row (a max over a pillar's points) take the
        /// window-major path: it must agree with the reference and with the row path,
        /// including 1-wide planes, ragged lane tails and windows reaching into padding.
        #[test]
        fn wide_windows_match_reference_and_the_row_path(
            planes in 1usize..4, h in 1usize..5, w in 1usize..45, kh in 1usize..3,
            kw in 1usize..45, stride in [1usize..3, 1usize..40], pads in [0usize..2, 0usize..9],
            kind in 0u8..3, seed in any::<u64>(),
        ) {
            let kw = kw.min(w + pads[1]).max(pads[1] + 1);
            let kh = kh.max(pads[0] + 1);
            let win = Window { kernel: [kh, kw], stride, dilation: [1, 1], pads: [pads[0], pads[1], 0, pads[1]] };
            let (Some(oh), Some(ow)) = (win.out_extent(0, h, kh), win.out_extent(1, w, kw)) else {
                return Ok(());
            };
            prop_assume!(super::window_major(&win, ow));
            let x = data(seed, planes * h * w);
            let (op, pool) = match kind {
                0 => (Op::MaxPool2d(win), None),
                k => (Op::AvgPool2d { window: win, count_include_pad: k == 1 }, Some(k == 1)),
            };
            let want = reference(&x, [1, planes, h, w], &win, oh, ow, pool);
            prop_assume!(want.iter().all(|v| v.is_finite()));
            let (xs, ys) = (shape(&[1, planes, h, w]), shape(&[1, planes, oh, ow]));
            let got = run_both(&op, &[(&x, xs)], &ys);
            assert_close(&got, &want, 1e-5);
            let mut by_rows = vec![f32::NAN; got.len()];
            match pool {
                None => super::rows(&x, &xs, &win, &mut by_rows, &ys, &super::Max),
                Some(count_include_pad) => {
                    let avg = super::Avg { win, count_include_pad, h, w };
                    super::rows(&x, &xs, &win, &mut by_rows, &ys, &avg);
                }
            }
            assert_close(&got, &by_rows, 1e-5);
        }

        #[test]
        fn global_average_is_the_plane_mean(n in 1usize..3, c in 1usize..5, h in 1usize..9, w in 1usize..9, seed in any::<u64>()) {
            let x = data(seed, n * c * h * w);
            let want: Vec<f32> = x.chunks(h * w).map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64) as f32).collect();
            let got = run_both(&Op::GlobalAvgPool, &[(&x, shape(&[n, c, h, w]))], &shape(&[n, c, 1, 1]));
            assert_close(&got, &want, 1e-5);
        }
    }
}
