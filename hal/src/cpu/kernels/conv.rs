//! Convolutions, each lowered to the shape of work it is best at.
//!
//! - **Pointwise** (1×1, stride 1, no padding): the input planes already are the
//!   `[C, H·W]` right operand, so the conv is one GEMM per group with no copy at all —
//!   and it is most of a MobileNet's arithmetic.
//! - **Depthwise**: one input plane per output plane, too little reuse for a GEMM. A
//!   direct kernel accumulates each tap into an output row, so the inner loop is a
//!   contiguous multiply-add along W that vectorises.
//! - **Everything else**: im2col into the step's scratch, at most
//!   [`IM2COL_TILE`](crate::op::IM2COL_TILE) output columns at a time so the scratch
//!   stays small whatever the image size, written directly in the GEMM's panel order
//!   so the product reads it contiguously.
//! - **Pointwise, then max over W** ([`Op::PointwiseConvMax`](crate::op::Op)): the
//!   pointwise GEMM one tile of whole W rows at a time into the step's scratch, each
//!   tile reduced to its row maxima while it is still in cache.
//! - **Transposed**: one GEMM per kernel tap (`Wᵀ_tap [M, C] × X [C, H·W]`) whose
//!   tiles are scatter-added into the output (no scratch is reserved for it), then
//!   the activation in one pass.

use crate::op::{Activation, IM2COL_TILE, Window, pooled_tile_rows};
use crate::shape::Shape;

use super::gemm::{Bias, Lhs, NR, Path, Rhs, Sink, Store, gemm};
use super::normalize::lane_max;

/// The window of a 1×1, stride-1, unpadded convolution.
pub const UNIT_WINDOW: Window = Window {
    kernel: [1, 1],
    stride: [1, 1],
    dilation: [1, 1],
    pads: [0; 4],
};

/// The operands of a convolution step.
pub struct ConvArgs<'a> {
    /// Data `[N, C, H, W]`.
    pub x: &'a [f32],
    /// Shape of `x`.
    pub x_shape: &'a Shape,
    /// Weights.
    pub w: &'a [f32],
    /// Shape of `w`.
    pub w_shape: &'a Shape,
    /// Bias `[M]`, or empty.
    pub bias: &'a [f32],
    /// Channel groups.
    pub groups: usize,
    /// Stride, dilation, padding.
    pub window: Window,
    /// Fused activation.
    pub activation: Activation,
}

fn dims4(s: &Shape) -> [usize; 4] {
    [s.dim(0), s.dim(1), s.dim(2), s.dim(3)]
}

/// The output indices `o < out_len` whose input index `o*stride + offset` lies in
/// `0..in_len`, as a range.
pub fn valid_range(out_len: usize, stride: usize, offset: isize, in_len: usize) -> (usize, usize) {
    let lo = if offset >= 0 {
        0
    } else {
        offset.unsigned_abs().div_ceil(stride)
    };
    let room = in_len as isize - offset;
    let hi = if room <= 0 {
        0
    } else {
        ((room as usize - 1) / stride + 1).min(out_len)
    };
    (lo.min(hi), hi)
}

/// `Conv2d`.
pub fn conv2d(path: Path, p: &ConvArgs<'_>, y: &mut [f32], y_shape: &Shape, scratch: &mut [f32]) {
    let [_, c, _, _] = dims4(p.x_shape);
    let [_, cg, kh, kw] = dims4(p.w_shape);
    let win = &p.window;
    if p.groups == c && cg == 1 && p.groups > 1 {
        depthwise(path, p, y, y_shape);
    } else if kh == 1 && kw == 1 && win.stride == [1, 1] && win.pads == [0; 4] {
        pointwise(path, p, y);
    } else {
        im2col_conv(path, p, y, y_shape, scratch);
    }
}

fn bias_rows<'a>(bias: &'a [f32], from: usize, len: usize) -> Bias<'a> {
    if bias.is_empty() {
        Bias::None
    } else {
        Bias::Rows(&bias[from..from + len])
    }
}

fn pointwise(path: Path, p: &ConvArgs<'_>, y: &mut [f32]) {
    let [n, c, h, w] = dims4(p.x_shape);
    let m = p.w_shape.dim(0);
    let (cg, mg, hw) = (c / p.groups, m / p.groups, h * w);
    for b in 0..n {
        for g in 0..p.groups {
            let lhs = Lhs {
                a: &p.w[g * mg * cg..],
                rs: cg,
                cs: 1,
            };
            let rhs = Rhs::RowMajor {
                b: &p.x[(b * c + g * cg) * hw..],
                ld: hw,
            };
            let mut store = Store {
                c: &mut y[(b * m + g * mg) * hw..],
                ldc: hw,
                bias: bias_rows(p.bias, g * mg, mg),
                act: p.activation,
            };
            gemm(path, mg, hw, cg, lhs, rhs, &mut store);
        }
    }
}

/// `PointwiseConvMax`: `y[b, m, h] = max over w of act(bias[m] + Σ_c W[m, c] · x[b, c, h, w])`.
pub fn pointwise_max(path: Path, p: &ConvArgs<'_>, y: &mut [f32], scratch: &mut [f32]) {
    match path {
        // SAFETY: `Path::Avx2` is only produced by `Path::detect`, which checked that the
        // CPU supports AVX2 and FMA (or that the build requires them).
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { pointwise_max_avx2(p, y, scratch) },
        _ => pointwise_max_tiles(path, p, y, scratch),
    }
}

/// The same kernel compiled for 256-bit vectors, so the max over each row of W
/// vectorises as wide as the product.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn pointwise_max_avx2(p: &ConvArgs<'_>, y: &mut [f32], scratch: &mut [f32]) {
    pointwise_max_tiles(Path::Avx2, p, y, scratch);
}

#[inline(always)]
fn pointwise_max_tiles(path: Path, p: &ConvArgs<'_>, y: &mut [f32], scratch: &mut [f32]) {
    let [n, c, h, w] = dims4(p.x_shape);
    let m = p.w_shape.dim(0);
    let (hw, rows) = (h * w, pooled_tile_rows(h, w));
    if m * hw == 0 {
        return;
    }
    let lhs = Lhs {
        a: p.w,
        rs: c,
        cs: 1,
    };
    for b in 0..n {
        let (x, out) = (&p.x[b * c * hw..], &mut y[b * m * h..][..m * h]);
        for h0 in (0..h).step_by(rows) {
            let cols = rows.min(h - h0) * w;
            let tile = &mut scratch[..m * cols];
            let mut store = Store {
                c: tile,
                ldc: cols,
                bias: bias_rows(p.bias, 0, m),
                act: p.activation,
            };
            let rhs = Rhs::RowMajor {
                b: &x[h0 * w..],
                ld: hw,
            };
            gemm(path, m, cols, c, lhs, rhs, &mut store);
            for (channel, activated) in out.chunks_exact_mut(h).zip(tile.chunks_exact(cols)) {
                for (o, points) in channel[h0..].iter_mut().zip(activated.chunks_exact(w)) {
                    *o = lane_max(points);
                }
            }
        }
    }
}

fn im2col_conv(path: Path, p: &ConvArgs<'_>, y: &mut [f32], y_shape: &Shape, scratch: &mut [f32]) {
    let [n, c, h, w] = dims4(p.x_shape);
    let [m, cg, kh, kw] = dims4(p.w_shape);
    let [_, _, oh, ow] = dims4(y_shape);
    let (mg, ohw, k) = (m / p.groups, oh * ow, cg * kh * kw);
    let tile = ohw.min(IM2COL_TILE);
    let geo = Im2col {
        h,
        w,
        ow,
        kh,
        kw,
        win: p.window,
    };
    for b in 0..n {
        for g in 0..p.groups {
            let x = &p.x[(b * c + g * cg) * h * w..][..cg * h * w];
            let base = (b * m + g * mg) * ohw;
            for t0 in (0..ohw).step_by(tile) {
                let cols = tile.min(ohw - t0);
                let cols_buf = &mut scratch[..k * cols];
                geo.fill(x, cg, t0, cols_buf);
                let lhs = Lhs {
                    a: &p.w[g * mg * k..],
                    rs: k,
                    cs: 1,
                };
                let mut store = Store {
                    c: &mut y[base + t0..],
                    ldc: ohw,
                    bias: bias_rows(p.bias, g * mg, mg),
                    act: p.activation,
                };
                gemm(path, mg, cols, k, lhs, Rhs::Panels(cols_buf), &mut store);
            }
        }
    }
}

/// Geometry of an im2col unroll.
struct Im2col {
    h: usize,
    w: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    win: Window,
}

impl Im2col {
    /// Unrolls output columns `t0..t0 + cols` of the `cg` planes in `x` into `dst`
    /// (`K × cols`, `K = cg·kh·kw`) in [`Rhs::Panels`] order.
    fn fill(&self, x: &[f32], cg: usize, t0: usize, dst: &mut [f32]) {
        let k = cg * self.kh * self.kw;
        if k == 0 {
            return;
        }
        if self.h * self.w == 0 {
            dst.fill(0.0);
            return;
        }
        let [sh, sw] = self.win.stride;
        let [dh, dw] = self.win.dilation;
        let (pt, pl) = (self.win.pads[0] as isize, self.win.pads[1] as isize);
        let (h, w) = (self.h as isize, self.w as isize);
        for (p, panel) in dst.chunks_mut(NR * k).enumerate() {
            let q0 = t0 + p * NR;
            let wp = panel.len() / k;
            let (oy0, ox0) = (q0 / self.ow, q0 % self.ow);
            let one_row = ox0 + wp <= self.ow;
            let mut ys = [0isize; NR];
            let mut xs = [0isize; NR];
            for (j, (yv, xv)) in ys.iter_mut().zip(xs.iter_mut()).take(wp).enumerate() {
                let q = q0 + j;
                *yv = ((q / self.ow) * sh) as isize - pt;
                *xv = ((q % self.ow) * sw) as isize - pl;
            }
            let mut rows = panel.chunks_exact_mut(wp);
            for plane in x.chunks_exact(self.h * self.w).take(cg) {
                for ky in 0..self.kh {
                    let dy = (ky * dh) as isize;
                    for kx in 0..self.kw {
                        let dx = (kx * dw) as isize;
                        let Some(row) = rows.next() else { return };
                        let iy = (oy0 * sh) as isize - pt + dy;
                        let ix0 = (ox0 * sw) as isize - pl + dx;
                        let last = ix0 + ((wp - 1) * sw) as isize;
                        if one_row && (iy < 0 || iy >= h) {
                            row.fill(0.0);
                        } else if one_row && ix0 >= 0 && last < w {
                            let src = &plane[iy as usize * self.w + ix0 as usize..];
                            if sw == 1 {
                                row.copy_from_slice(&src[..wp]);
                            } else {
                                row.iter_mut()
                                    .zip(src.iter().step_by(sw))
                                    .for_each(|(d, &s)| *d = s);
                            }
                        } else {
                            for ((d, &yv), &xv) in row.iter_mut().zip(&ys).zip(&xs) {
                                let (iy, ix) = (yv + dy, xv + dx);
                                *d = if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                    plane[iy as usize * self.w + ix as usize]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Output columns an interior depthwise block keeps in registers.
const DW_BLOCK: usize = 16;

fn depthwise(path: Path, p: &ConvArgs<'_>, y: &mut [f32], y_shape: &Shape) {
    match path {
        // SAFETY: `Path::Avx2` is only produced by `Path::detect`, which checked that the
        // CPU supports AVX2 and FMA (or that the build requires them).
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { depthwise_avx2(p, y, y_shape) },
        _ => depthwise_planes(p, y, y_shape),
    }
}

/// The same kernel compiled for 256-bit vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn depthwise_avx2(p: &ConvArgs<'_>, y: &mut [f32], y_shape: &Shape) {
    depthwise_planes(p, y, y_shape);
}

/// Geometry of one depthwise plane.
struct Depthwise {
    h: usize,
    w: usize,
    kw: usize,
    sh: usize,
    dh: usize,
    dw: usize,
    pt: isize,
    pl: isize,
}

impl Depthwise {
    /// The input row tap row `ky` reads for output row `oy`, if inside the image.
    #[inline(always)]
    fn row<'a>(&self, input: &'a [f32], oy: usize, ky: usize) -> Option<&'a [f32]> {
        let iy = (oy * self.sh + ky * self.dh) as isize - self.pt;
        (iy >= 0 && iy < self.h as isize).then(|| &input[iy as usize * self.w..][..self.w])
    }

    /// Output columns `ox..ox + DW_BLOCK`, all taps inside the row, accumulated in
    /// registers across every tap.
    #[inline(always)]
    fn block<const S: usize>(
        &self,
        dst: &mut [f32],
        ox: usize,
        oy: usize,
        input: &[f32],
        ker: &[f32],
        bias: f32,
    ) {
        let mut acc = [bias; DW_BLOCK];
        for (ky, taps) in ker.chunks_exact(self.kw).enumerate() {
            let Some(irow) = self.row(input, oy, ky) else {
                continue;
            };
            for (kx, &tap) in taps.iter().enumerate() {
                let start = ((ox * S + kx * self.dw) as isize - self.pl) as usize;
                let src = &irow[start..start + (DW_BLOCK - 1) * S + 1];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += tap * src[j * S];
                }
            }
        }
        dst[..DW_BLOCK].copy_from_slice(&acc);
    }

    /// Interior columns `first..end` (at least [`DW_BLOCK`] of them) in whole blocks;
    /// the last block is shifted back to end at `end`, recomputing a few columns.
    #[inline(always)]
    fn interior<const S: usize>(
        &self,
        orow: &mut [f32],
        (first, end): (usize, usize),
        oy: usize,
        input: &[f32],
        ker: &[f32],
        bias: f32,
    ) {
        let mut ox = first;
        while ox + DW_BLOCK <= end {
            self.block::<S>(&mut orow[ox..], ox, oy, input, ker, bias);
            ox += DW_BLOCK;
        }
        if ox < end {
            let ox = end - DW_BLOCK;
            self.block::<S>(&mut orow[ox..], ox, oy, input, ker, bias);
        }
    }

    /// One output column near the border, every tap checked.
    #[inline(always)]
    fn point(&self, ox: usize, oy: usize, sw: usize, input: &[f32], ker: &[f32], bias: f32) -> f32 {
        let mut acc = bias;
        for (ky, taps) in ker.chunks_exact(self.kw).enumerate() {
            let Some(irow) = self.row(input, oy, ky) else {
                continue;
            };
            for (kx, &tap) in taps.iter().enumerate() {
                let ix = (ox * sw + kx * self.dw) as isize - self.pl;
                if ix >= 0 && (ix as usize) < self.w {
                    acc += tap * irow[ix as usize];
                }
            }
        }
        acc
    }
}

#[inline(always)]
fn depthwise_planes(p: &ConvArgs<'_>, y: &mut [f32], y_shape: &Shape) {
    let [_, c, h, w] = dims4(p.x_shape);
    let [m, _, kh, kw] = dims4(p.w_shape);
    let [_, _, oh, ow] = dims4(y_shape);
    let mult = m / c;
    let sw = p.window.stride[1];
    let geo = Depthwise {
        h,
        w,
        kw,
        sh: p.window.stride[0],
        dh: p.window.dilation[0],
        dw: p.window.dilation[1],
        pt: p.window.pads[0] as isize,
        pl: p.window.pads[1] as isize,
    };
    if oh * ow == 0 || kw == 0 {
        return;
    }
    // Columns where every tap is inside the row get the register-blocked kernel.
    let (first, _) = valid_range(ow, sw, -geo.pl, w);
    let (_, end) = valid_range(ow, sw, ((kw - 1) * geo.dw) as isize - geo.pl, w);
    let (first, end) = if sw <= 2 && end >= first + DW_BLOCK {
        (first, end)
    } else {
        (0, 0)
    };
    for (plane_idx, out) in y.chunks_exact_mut(oh * ow).enumerate() {
        let (b, mo) = (plane_idx / m, plane_idx % m);
        let input = &p.x[(b * c + mo / mult) * h * w..][..h * w];
        let ker = &p.w[mo * kh * kw..][..kh * kw];
        let bias = p.bias.get(mo).copied().unwrap_or(0.0);
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            if sw == 1 {
                geo.interior::<1>(orow, (first, end), oy, input, ker, bias);
            } else if first < end {
                geo.interior::<2>(orow, (first, end), oy, input, ker, bias);
            }
            for ox in (0..first).chain(end..ow) {
                orow[ox] = geo.point(ox, oy, sw, input, ker, bias);
            }
            p.activation.apply_slice(orow);
        }
    }
}

/// Scatter-adds the tiles of one kernel tap's GEMM (`[Mg, H·W]`) into the output
/// planes: input pixel `(iy, ix)` lands on `(iy·sh + dy, ix·sw + dx)` if inside.
struct ScatterAdd<'a> {
    out: &'a mut [f32],
    in_w: usize,
    oh: usize,
    ow: usize,
    stride: [usize; 2],
    dy: isize,
    dx: isize,
    /// The input columns `ix` whose output column `ix·sw + dx` is inside the output.
    cols_inside: (usize, usize),
}

impl Sink for ScatterAdd<'_> {
    /// Walks the tile one input-row run at a time, so the row and column of each
    /// element come from one division per tile rather than one per element, and each
    /// run is added to its output row as one (strided) slice.
    fn tile(&mut self, i0: usize, j0: usize, rows: &[[f32; NR]], nr: usize, _: bool, _: bool) {
        let plane = self.oh * self.ow;
        let [sh, sw] = self.stride;
        let (mut iy, mut ix) = (j0 / self.in_w, j0 % self.in_w);
        let mut jj = 0;
        while jj < nr {
            let run = (self.in_w - ix).min(nr - jj);
            let oy = (iy * sh) as isize + self.dy;
            let lo = ix.max(self.cols_inside.0);
            let hi = (ix + run).min(self.cols_inside.1);
            if oy >= 0 && (oy as usize) < self.oh && lo < hi {
                let first_ox = ((lo * sw) as isize + self.dx) as usize;
                let src = jj + (lo - ix)..jj + (hi - ix);
                for (r, acc) in rows.iter().enumerate() {
                    let row = &mut self.out[(i0 + r) * plane + oy as usize * self.ow..][..self.ow];
                    let dst = row[first_ox..].iter_mut().step_by(sw);
                    dst.zip(&acc[src.clone()]).for_each(|(o, &v)| *o += v);
                }
            }
            jj += run;
            ix = 0;
            iy += 1;
        }
    }
}

/// `ConvTranspose2d`.
pub fn conv_transpose2d(path: Path, p: &ConvArgs<'_>, y: &mut [f32], y_shape: &Shape) {
    let [n, c, h, w] = dims4(p.x_shape);
    let [_, mg, kh, kw] = dims4(p.w_shape);
    let [_, m, oh, ow] = dims4(y_shape);
    let (cg, hw, ohw, taps) = (c / p.groups, h * w, oh * ow, kh * kw);
    if ohw == 0 {
        return;
    }
    for (i, plane) in y.chunks_exact_mut(ohw).enumerate() {
        plane.fill(p.bias.get(i % m).copied().unwrap_or(0.0));
    }
    let [dh, dw] = p.window.dilation;
    let (pt, pl) = (p.window.pads[0] as isize, p.window.pads[1] as isize);
    for b in 0..n {
        for g in 0..p.groups {
            let x = &p.x[(b * c + g * cg) * hw..];
            let wg = &p.w[g * cg * mg * taps..];
            let out = &mut y[(b * m + g * mg) * ohw..][..mg * ohw];
            for ky in 0..kh {
                for kx in 0..kw {
                    let tap = ky * kw + kx;
                    let lhs = Lhs {
                        a: &wg[tap..],
                        rs: taps,
                        cs: mg * taps,
                    };
                    let mut sink = ScatterAdd {
                        out: &mut *out,
                        in_w: w,
                        oh,
                        ow,
                        stride: p.window.stride,
                        dy: (ky * dh) as isize - pt,
                        dx: (kx * dw) as isize - pl,
                        cols_inside: valid_range(
                            w,
                            p.window.stride[1],
                            (kx * dw) as isize - pl,
                            ow,
                        ),
                    };
                    gemm(
                        path,
                        mg,
                        hw,
                        cg,
                        lhs,
                        Rhs::RowMajor { b: x, ld: hw },
                        &mut sink,
                    );
                }
            }
        }
    }
    p.activation.apply_slice(y);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::cpu::kernels::testutil::{activation, assert_close, data, run_both, shape};
    use crate::op::{Activation, Op, Window};
    use crate::shape::Shape;

    struct Case {
        n: usize,
        c: usize,
        hw: [usize; 2],
        m: usize,
        k: [usize; 2],
        groups: usize,
        win: Window,
        bias: bool,
        act: Activation,
        seed: u64,
    }

    /// Direct ONNX Conv: every output element sums its window, padding reads as 0.
    fn reference_conv(
        cs: &Case,
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        oh: usize,
        ow: usize,
    ) -> Vec<f32> {
        let (cg, mg) = (cs.c / cs.groups, cs.m / cs.groups);
        let [h, wd] = cs.hw;
        let mut y = vec![0.0; cs.n * cs.m * oh * ow];
        for b in 0..cs.n {
            for m in 0..cs.m {
                let g = m / mg;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = if cs.bias { bias[m] as f64 } else { 0.0 };
                        for ci in 0..cg {
                            for ky in 0..cs.k[0] {
                                for kx in 0..cs.k[1] {
                                    let iy = (oy * cs.win.stride[0] + ky * cs.win.dilation[0])
                                        as isize
                                        - cs.win.pads[0] as isize;
                                    let ix = (ox * cs.win.stride[1] + kx * cs.win.dilation[1])
                                        as isize
                                        - cs.win.pads[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xv = x[((b * cs.c + g * cg + ci) * h + iy as usize) * wd
                                        + ix as usize];
                                    let wv = w[((m * cg + ci) * cs.k[0] + ky) * cs.k[1] + kx];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((b * cs.m + m) * oh + oy) * ow + ox] = cs.act.apply(s as f32);
                    }
                }
            }
        }
        y
    }

    /// Direct ONNX ConvTranspose: every input element scatters its kernel.
    fn reference_deconv(
        cs: &Case,
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        oh: usize,
        ow: usize,
    ) -> Vec<f32> {
        let (cg, mg) = (cs.c / cs.groups, cs.m / cs.groups);
        let [h, wd] = cs.hw;
        let mut y = vec![0.0f64; cs.n * cs.m * oh * ow];
        for b in 0..cs.n {
            for m in 0..cs.m {
                for v in &mut y[(b * cs.m + m) * oh * ow..][..oh * ow] {
                    *v = if cs.bias { bias[m] as f64 } else { 0.0 };
                }
            }
            for c in 0..cs.c {
                let g = c / cg;
                for iy in 0..h {
                    for ix in 0..wd {
                        let xv = x[((b * cs.c + c) * h + iy) * wd + ix] as f64;
                        for mm in 0..mg {
                            for ky in 0..cs.k[0] {
                                for kx in 0..cs.k[1] {
                                    let oy = (iy * cs.win.stride[0] + ky * cs.win.dilation[0])
                                        as isize
                                        - cs.win.pads[0] as isize;
                                    let ox = (ix * cs.win.stride[1] + kx * cs.win.dilation[1])
                                        as isize
                                        - cs.win.pads[1] as isize;
                                    if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                        continue;
                                    }
                                    let wv =
                                        w[((c * mg + mm) * cs.k[0] + ky) * cs.k[1] + kx] as f64;
                                    y[((b * cs.m + g * mg + mm) * oh + oy as usize) * ow
                                        + ox as usize] += xv * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
        y.into_iter().map(|v| cs.act.apply(v as f32)).collect()
    }

    fn check_conv(cs: &Case) {
        let (cg, [h, w]) = (cs.c / cs.groups, cs.hw);
        let Some(oh) = cs.win.out_extent(0, h, cs.k[0]) else {
            return;
        };
        let Some(ow) = cs.win.out_extent(1, w, cs.k[1]) else {
            return;
        };
        let x_shape = shape(&[cs.n, cs.c, h, w]);
        let w_shape = shape(&[cs.m, cg, cs.k[0], cs.k[1]]);
        let x = data(cs.seed, x_shape.volume());
        let wt = data(cs.seed ^ 1, w_shape.volume());
        let bias = data(cs.seed ^ 2, cs.m);
        let op = Op::Conv2d {
            groups: cs.groups,
            window: cs.win,
            activation: cs.act,
        };
        let mut inputs: Vec<(&[f32], Shape)> = vec![(&x, x_shape), (&wt, w_shape)];
        if cs.bias {
            inputs.push((&bias, shape(&[cs.m])));
        }
        let got = run_both(&op, &inputs, &shape(&[cs.n, cs.m, oh, ow]));
        assert_close(&got, &reference_conv(cs, &x, &wt, &bias, oh, ow), 1e-4);
    }

    fn check_deconv(cs: &Case, output_padding: [usize; 2]) {
        let (mg, [h, w]) = (cs.m / cs.groups, cs.hw);
        let extent = |a: usize| {
            ((cs.hw[a] - 1) * cs.win.stride[a]
                + cs.win.dilation[a] * (cs.k[a] - 1)
                + 1
                + output_padding[a])
                .checked_sub(cs.win.pads[a] + cs.win.pads[a + 2])
        };
        let (Some(oh), Some(ow)) = (extent(0), extent(1)) else {
            return;
        };
        let x_shape = shape(&[cs.n, cs.c, h, w]);
        let w_shape = shape(&[cs.c, mg, cs.k[0], cs.k[1]]);
        let x = data(cs.seed, x_shape.volume());
        let wt = data(cs.seed ^ 1, w_shape.volume());
        let bias = data(cs.seed ^ 2, cs.m);
        let op = Op::ConvTranspose2d {
            groups: cs.groups,
            window: cs.win,
            output_padding,
            activation: cs.act,
        };
        let mut inputs: Vec<(&[f32], Shape)> = vec![(&x, x_shape), (&wt, w_shape)];
        if cs.bias {
            inputs.push((&bias, shape(&[cs.m])));
        }
        let got = run_both(&op, &inputs, &shape(&[cs.n, cs.m, oh, ow]));
        assert_close(&got, &reference_deconv(cs, &x, &wt, &bias, oh, ow), 1e-4);
    }

    /// Runs [`Op::PointwiseConvMax`] on both paths and checks it against the direct
    /// conv reference reduced over W, and against `Conv2d` then `MaxPool2d`.
    fn check_pointwise_max(
        n: usize,
        c: usize,
        m: usize,
        [h, w]: [usize; 2],
        bias: bool,
        act: Activation,
        seed: u64,
    ) {
        let cs = Case {
            n,
            c,
            hw: [h, w],
            m,
            k: [1, 1],
            groups: 1,
            win: super::UNIT_WINDOW,
            bias,
            act,
            seed,
        };
        let (x_shape, w_shape) = (shape(&[n, c, h, w]), shape(&[m, c, 1, 1]));
        let x = data(seed, x_shape.volume());
        let wt = data(seed ^ 1, w_shape.volume());
        let b = data(seed ^ 2, m);
        let mut inputs: Vec<(&[f32], Shape)> = vec![(&x, x_shape), (&wt, w_shape)];
        if bias {
            inputs.push((&b, shape(&[m])));
        }
        let op = Op::PointwiseConvMax { activation: act };
        let got = run_both(&op, &inputs, &shape(&[n, m, h, 1]));
        let want: Vec<f32> = reference_conv(&cs, &x, &wt, &b, h, w)
            .chunks(w)
            .map(|points| points.iter().copied().fold(f32::NEG_INFINITY, f32::max))
            .collect();
        assert_close(&got, &want, 1e-4);
        let conv = Op::Conv2d {
            groups: 1,
            window: super::UNIT_WINDOW,
            activation: act,
        };
        let full = run_both(&conv, &inputs, &shape(&[n, m, h, w]));
        let pool = Op::MaxPool2d(Window {
            kernel: [1, w],
            ..super::UNIT_WINDOW
        });
        let pooled = run_both(
            &pool,
            &[(&full, shape(&[n, m, h, w]))],
            &shape(&[n, m, h, 1]),
        );
        assert_close(&got, &pooled, 1e-5);
    }

    fn window() -> impl Strategy<Value = Window> {
        (
            [1usize..3, 1usize..3],
            [1usize..3, 1usize..3],
            [0usize..3, 0usize..3, 0usize..3, 0usize..3],
        )
            .prop_map(|(stride, dilation, pads)| Window {
                kernel: [0, 0],
                stride,
                dilation,
                pads,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn general_conv_matches_reference(
            n in 1usize..3, groups in 1usize..4, cg in 1usize..4, mg in 1usize..9,
            h in 1usize..10, w in 1usize..10, k in [1usize..4, 1usize..4], win in window(),
            bias in any::<bool>(), act in any::<u8>(), seed in any::<u64>(),
        ) {
            check_conv(&Case {
                n, c: cg * groups, hw: [h, w], m: mg * groups, k, groups, win, bias,
                act: activation(act), seed,
            });
        }

        #[test]
        fn depthwise_conv_matches_reference(
            c in 2usize..6, mult in 1usize..3, h in 1usize..12, w in 1usize..45,
            k in [1usize..4, 1usize..4], win in window(), bias in any::<bool>(),
            act in any::<u8>(), seed in any::<u64>(),
        ) {
            check_conv(&Case {
                n: 1, c, hw: [h, w], m: c * mult, k, groups: c, win, bias,
                act: activation(act), seed,
            });
        }

        #[test]
        fn pointwise_conv_matches_reference(
            n in 1usize..3, groups in 1usize..3, cg in 1usize..20, mg in 1usize..14,
            h in 1usize..8, w in 1usize..40, bias in any::<bool>(), act in any::<u8>(),
            seed in any::<u64>(),
        ) {
            let win = Window { kernel: [0, 0], stride: [1, 1], dilation: [1, 1], pads: [0; 4] };
            check_conv(&Case {
                n, c: cg * groups, hw: [h, w], m: mg * groups, k: [1, 1], groups, win, bias,
                act: activation(act), seed,
            });
        }

        /// The fused pointwise conv + max over W equals the two ops it replaces, over
        /// several scratch tiles, single-column rows and ragged GEMM tails.
        #[test]
        fn pointwise_max_matches_conv_then_max_pool(
            n in 1usize..3, c in 1usize..20, m in 1usize..14, h in 1usize..40,
            w in 1usize..70, bias in any::<bool>(), act in any::<u8>(), seed in any::<u64>(),
        ) {
            check_pointwise_max(n, c, m, [h, w], bias, activation(act), seed);
        }

        #[test]
        fn conv_transpose_matches_reference(
            n in 1usize..3, groups in 1usize..3, cg in 1usize..4, mg in 1usize..6,
            h in 1usize..7, w in 1usize..7, k in [1usize..5, 1usize..5], win in window(),
            output_padding in [0usize..2, 0usize..2], bias in any::<bool>(),
            act in any::<u8>(), seed in any::<u64>(),
        ) {
            let output_padding = [
                output_padding[0].min(win.stride[0].max(win.dilation[0]) - 1),
                output_padding[1].min(win.stride[1].max(win.dilation[1]) - 1),
            ];
            check_deconv(&Case {
                n, c: cg * groups, hw: [h, w], m: mg * groups, k, groups, win, bias,
                act: activation(act), seed,
            }, output_padding);
        }
    }

    #[test]
    fn big_convs_span_several_tiles_and_k_blocks() {
        let win = |s: usize, p: usize| Window {
            kernel: [0, 0],
            stride: [s, s],
            dilation: [1, 1],
            pads: [p; 4],
        };
        // 3x3 over 30 channels: K = 270 > one K block; 21x23 outputs > one im2col tile.
        check_conv(&Case {
            n: 1,
            c: 30,
            hw: [21, 23],
            m: 13,
            k: [3, 3],
            groups: 1,
            win: win(1, 1),
            bias: true,
            act: Activation::Relu,
            seed: 7,
        });
        // Stem-like: 3 channels, stride 2, asymmetric pads.
        let stem = Window {
            kernel: [0, 0],
            stride: [2, 2],
            dilation: [1, 1],
            pads: [0, 0, 1, 1],
        };
        check_conv(&Case {
            n: 1,
            c: 3,
            hw: [32, 32],
            m: 16,
            k: [3, 3],
            groups: 1,
            win: stem,
            bias: true,
            act: Activation::Clip { min: 0.0, max: 6.0 },
            seed: 8,
        });
        // Pointwise with K = 300.
        check_conv(&Case {
            n: 1,
            c: 300,
            hw: [5, 7],
            m: 7,
            k: [1, 1],
            groups: 1,
            win: win(1, 0),
            bias: false,
            act: Activation::Identity,
            seed: 9,
        });
        // Depthwise 3x3 stride 2 on a wide map.
        check_conv(&Case {
            n: 1,
            c: 8,
            hw: [17, 41],
            m: 8,
            k: [3, 3],
            groups: 8,
            win: win(2, 1),
            bias: true,
            act: Activation::Relu,
            seed: 10,
        });
        // PointPillars-style upsampling deconv: kernel = stride = 2.
        check_deconv(
            &Case {
                n: 1,
                c: 20,
                hw: [6, 9],
                m: 12,
                k: [2, 2],
                groups: 1,
                win: win(2, 0),
                bias: true,
                act: Activation::Relu,
                seed: 11,
            },
            [0, 0],
        );
    }

    #[test]
    fn pointwise_max_handles_rows_longer_than_a_tile_and_pillar_shapes() {
        use crate::op::POOLED_TILE;
        check_pointwise_max(1, 3, 5, [3, POOLED_TILE + 37], true, Activation::Relu, 12);
        // A pillar feature net: 9 features, 64 channels, 32 points per pillar.
        check_pointwise_max(1, 9, 64, [45, 32], true, Activation::Relu, 13);
    }

    /// Throughput of the conv shapes that dominate the target models. Run with
    /// `cargo test --release -p cadence-hal conv_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark"]
    fn conv_throughput() {
        use crate::cpu::kernels::gemm::Path;
        use crate::cpu::kernels::testutil::run_on;
        let win = |s: usize, p: usize| Window {
            kernel: [0, 0],
            stride: [s, s],
            dilation: [1, 1],
            pads: [p; 4],
        };
        let cases = [
            (
                "pointwise 32->96 @160x160",
                [1, 32, 160, 160],
                [96, 32, 1, 1],
                1,
                win(1, 0),
                false,
            ),
            (
                "pointwise 96->24 @80x80",
                [1, 96, 80, 80],
                [24, 96, 1, 1],
                1,
                win(1, 0),
                false,
            ),
            (
                "depthwise 3x3 s1 144 @80x80",
                [1, 144, 80, 80],
                [144, 1, 3, 3],
                144,
                win(1, 1),
                false,
            ),
            (
                "depthwise 3x3 s2 96 @160x160",
                [1, 96, 160, 160],
                [96, 1, 3, 3],
                96,
                win(2, 1),
                false,
            ),
            (
                "3x3 64->64 @124x108",
                [1, 64, 124, 108],
                [64, 64, 3, 3],
                1,
                win(1, 1),
                false,
            ),
            (
                "deconv 2x2 s2 128->128 @62x54",
                [1, 128, 62, 54],
                [128, 128, 2, 2],
                1,
                win(2, 0),
                true,
            ),
        ];
        for (name, xd, wd, groups, window, transposed) in cases {
            let (xs, ws) = (shape(&xd), shape(&wd));
            let (x, w) = (data(1, xs.volume()), data(2, ws.volume()));
            let (op, ys) = if transposed {
                let op = Op::ConvTranspose2d {
                    groups,
                    window,
                    output_padding: [0, 0],
                    activation: Activation::Relu,
                };
                (op, shape(&[1, wd[1], xd[2] * 2, xd[3] * 2]))
            } else {
                let oh = window.out_extent(0, xd[2], wd[2]).unwrap();
                let ow = window.out_extent(1, xd[3], wd[3]).unwrap();
                (
                    Op::Conv2d {
                        groups,
                        window,
                        activation: Activation::Relu,
                    },
                    shape(&[1, wd[0], oh, ow]),
                )
            };
            let macs = op.macs(&[xs, ws], &ys) as f64;
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t = std::time::Instant::now();
                run_on(Path::detect(), &op, &[(&x, xs), (&w, ws)], &ys);
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!(
                "{name}: {:.2} ms, {:.1} GFLOP/s",
                best * 1e3,
                2.0 * macs / best / 1e9
            );
        }
    }
}
