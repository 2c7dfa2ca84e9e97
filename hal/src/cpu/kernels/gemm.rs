//! The one matrix product every heavy op funnels into: `C = A × B`, with the bias,
//! activation or scatter applied as each output tile is stored.
//!
//! Design, after GotoBLAS but without heap or scratch:
//!
//! - **Register tile `MR × NR` = 6 × 16.** On AVX2 that is 12 accumulators, two
//!   vectors of `B` and one broadcast of `A`: 15 of the 16 `ymm` registers, and two
//!   FMAs per broadcast keep both FMA ports busy. NEON uses the same tile (24 of its
//!   32 `q` registers).
//! - **Loop order `k-block → column chunk → row block → panel`.** A chunk of `B`
//!   panels filling the 16 KiB pack buffer (one `KC × NR` panel when `K` is deep,
//!   many when it is shallow) is loaded into L1 once and reused by every row block of
//!   `A`, while the `M × KC` block of `A` stays in L2. Splitting `K` costs one reload
//!   of `C` per block and keeps the chunk in L1 whatever `K` is; running a row block
//!   across a whole chunk writes each output row in long contiguous runs.
//! - **Panels of `B` are contiguous.** A row-major `B` whose row stride is a multiple
//!   of 4 KiB (a 32×32 or 160×160 feature map) would map every row of a panel to the
//!   same L1 set, so panels are copied into a fixed stack buffer first — unless only
//!   one row block will read them, where the copy would cost more than it saves.
//!   Convolutions avoid even that copy: im2col writes its tile in panel order
//!   ([`Rhs::Panels`]).
//! - **`A` is read in place** through a row and a column stride, so transposed
//!   convolution can use its weights `[C, M, kh, kw]` as `Aᵀ` without copying them.
//! - **The store is a [`Sink`]**, monomorphised per use, so the epilogue (bias,
//!   activation, accumulation over `K` blocks, conv-transpose scatter) runs while the
//!   tile is hot instead of as another pass over `C`.

use crate::op::Activation;

/// Rows of the register tile.
pub const MR: usize = 6;
/// Columns of the register tile.
pub const NR: usize = 16;
/// Depth of a `K` block: bounds the stack panel to `KC × NR` floats (16 KiB on 64-bit
/// application cores, 4 KiB on 32-bit microcontrollers with small stacks).
const KC: usize = if cfg!(target_pointer_width = "64") {
    256
} else {
    64
};

/// The instruction set a GEMM runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Plain Rust, vectorised by the compiler where it can.
    #[cfg_attr(
        all(target_arch = "aarch64", target_feature = "neon", not(test)),
        expect(
            dead_code,
            reason = "NEON is always there; tests still force this path"
        )
    )]
    Portable,
    /// AVX2 + FMA. Only [`Path::detect`] produces it, after checking the CPU has both.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// NEON, present on every aarch64 target built with it.
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    Neon,
}

impl Path {
    /// The best path this CPU supports.
    #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
    pub fn detect() -> Self {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            Self::Avx2
        } else {
            Self::Portable
        }
    }

    /// The best path this CPU supports: without `std` there is no run-time detection,
    /// so AVX2 only when the build targets it.
    #[cfg(all(target_arch = "x86_64", not(any(test, feature = "std"))))]
    pub fn detect() -> Self {
        if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
            Self::Avx2
        } else {
            Self::Portable
        }
    }

    /// The best path this CPU supports.
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    pub fn detect() -> Self {
        Self::Neon
    }

    /// The best path this CPU supports.
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    )))]
    pub fn detect() -> Self {
        Self::Portable
    }

    /// The name [`super::simd_level`] reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => "avx2+fma",
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Self::Neon => "neon",
        }
    }
}

/// The left operand `A [M, K]`, read in place: element `(i, k)` is `a[i*rs + k*cs]`.
#[derive(Clone, Copy)]
pub struct Lhs<'a> {
    /// The elements.
    pub a: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

/// The right operand `B [K, N]`.
#[derive(Clone, Copy)]
pub enum Rhs<'a> {
    /// Row-major with row stride `ld`.
    RowMajor {
        /// The elements.
        b: &'a [f32],
        /// Row stride.
        ld: usize,
    },
    /// Column panels of [`NR`] (the last one narrower), each `K × width` row-major and
    /// stored one after another: what im2col writes.
    Panels(&'a [f32]),
}

/// Receives finished register tiles.
pub trait Sink {
    /// `rows[r][..nr]` is the product (over the current `K` block) for output row
    /// `i0 + r`, columns `j0..j0 + nr`. `first` and `last` say whether this is the first
    /// and the last `K` block.
    fn tile(
        &mut self,
        i0: usize,
        j0: usize,
        rows: &[[f32; NR]],
        nr: usize,
        first: bool,
        last: bool,
    );
}

/// Bias added once per output element.
#[derive(Clone, Copy)]
pub enum Bias<'a> {
    /// None.
    None,
    /// One value per row of `C` (conv output channels).
    Rows(&'a [f32]),
    /// One value per column of `C` (matmul features).
    Cols(&'a [f32]),
}

/// Stores into a row-major `C` with row stride `ldc`, adding the bias and applying the
/// activation after the last `K` block.
pub struct Store<'a> {
    /// The output.
    pub c: &'a mut [f32],
    /// Row stride of `c`.
    pub ldc: usize,
    /// Bias.
    pub bias: Bias<'a>,
    /// Activation.
    pub act: Activation,
}

impl Sink for Store<'_> {
    /// Always inlined, so the epilogue is compiled for the caller's vector width.
    #[inline(always)]
    fn tile(
        &mut self,
        i0: usize,
        j0: usize,
        rows: &[[f32; NR]],
        nr: usize,
        first: bool,
        last: bool,
    ) {
        for (r, acc) in rows.iter().enumerate() {
            let i = i0 + r;
            let dst = &mut self.c[i * self.ldc + j0..][..nr];
            let acc = &acc[..nr];
            if first {
                match self.bias {
                    Bias::None => dst.copy_from_slice(acc),
                    Bias::Rows(b) => {
                        let bv = b[i];
                        dst.iter_mut().zip(acc).for_each(|(d, &a)| *d = a + bv);
                    }
                    Bias::Cols(b) => dst
                        .iter_mut()
                        .zip(acc)
                        .zip(&b[j0..j0 + nr])
                        .for_each(|((d, &a), &bv)| *d = a + bv),
                }
            } else {
                dst.iter_mut().zip(acc).for_each(|(d, &a)| *d += a);
            }
            if last {
                self.act.apply_slice(dst);
            }
        }
    }
}

/// `C [m, n] = A [m, k] × B [k, n]`, each tile handed to `sink`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    path: Path,
    m: usize,
    n: usize,
    k: usize,
    lhs: Lhs<'_>,
    rhs: Rhs<'_>,
    sink: &mut impl Sink,
) {
    match path {
        // SAFETY: `Path::Avx2` is only produced by `Path::detect`, which checked that
        // the CPU supports AVX2 and FMA (or that the build requires them).
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { gemm_avx2(m, n, k, lhs, rhs, sink) },
        _ => gemm_blocks(path, m, n, k, lhs, rhs, sink),
    }
}

/// The loop nest compiled for 256-bit vectors, so packing and the sink's epilogue
/// (bias, activation) vectorise as wide as the microkernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gemm_avx2(m: usize, n: usize, k: usize, lhs: Lhs<'_>, rhs: Rhs<'_>, sink: &mut impl Sink) {
    gemm_blocks(Path::Avx2, m, n, k, lhs, rhs, sink);
}

/// Where panel `j0..j0 + nr`, rows `pc..`, of `B` lies in place, and its row stride.
fn panel_in_place<'a>(
    rhs: &Rhs<'a>,
    k: usize,
    pc: usize,
    j0: usize,
    nr: usize,
) -> (&'a [f32], usize) {
    match *rhs {
        Rhs::RowMajor { b, ld } => (&b[pc * ld + j0..], ld),
        Rhs::Panels(p) => (&p[j0 * k + pc * nr..], nr),
    }
}

/// The blocked product; see the module docs. When `K` is small several panels are
/// packed at once, as many as fill the pack buffer, and each row block of `A` runs
/// across all of them: every output row then receives one long contiguous run per
/// row block instead of [`NR`] columns at a time, which is what keeps pointwise convs
/// on large maps (`K` of 16 to 64, `N` in the tens of thousands) from being bound by
/// scattered stores.
#[inline(always)]
fn gemm_blocks(
    path: Path,
    m: usize,
    n: usize,
    k: usize,
    lhs: Lhs<'_>,
    rhs: Rhs<'_>,
    sink: &mut impl Sink,
) {
    let mut acc = [[0.0f32; NR]; MR];
    if k == 0 {
        for j0 in (0..n).step_by(NR) {
            for i0 in (0..m).step_by(MR) {
                sink.tile(i0, j0, &acc[..MR.min(m - i0)], NR.min(n - j0), true, true);
            }
        }
        return;
    }
    // A panel is read in place when it is full width and laid out as the microkernel
    // wants: always for im2col panels, and for a row-major `B` only when one row block
    // reads it (otherwise its rows, often a multiple of 4 KiB apart, thrash L1).
    let in_place = |nr: usize| match rhs {
        Rhs::RowMajor { .. } => nr == NR && m <= MR,
        Rhs::Panels(_) => nr == NR,
    };
    let mut pack = [0.0f32; KC * NR];
    let k_blocks = k.div_ceil(KC);
    for kb in 0..k_blocks {
        let pc = kb * KC;
        let kc = KC.min(k - pc);
        let (first, last) = (kb == 0, kb + 1 == k_blocks);
        let chunk = (KC / kc) * NR;
        for c0 in (0..n).step_by(chunk) {
            let panels = (c0..n.min(c0 + chunk)).step_by(NR).enumerate();
            for (p, j0) in panels.clone() {
                let nr = NR.min(n - j0);
                if !in_place(nr) {
                    let (src, ld) = panel_in_place(&rhs, k, pc, j0, nr);
                    pack_rows(&mut pack[p * kc * NR..][..kc * NR], src, ld, nr);
                }
            }
            for i0 in (0..m).step_by(MR) {
                let mr = MR.min(m - i0);
                let a = &lhs.a[i0 * lhs.rs + pc * lhs.cs..];
                for (p, j0) in panels.clone() {
                    let nr = NR.min(n - j0);
                    let (panel, ld) = if in_place(nr) {
                        panel_in_place(&rhs, k, pc, j0, nr)
                    } else {
                        (&pack[p * kc * NR..], NR)
                    };
                    microkernel(path, mr, kc, a, lhs.rs, lhs.cs, panel, ld, &mut acc);
                    sink.tile(i0, j0, &acc[..mr], nr, first, last);
                }
            }
        }
    }
}

/// Copies rows of `nr` floats (row stride `ld`) into `pack` with stride [`NR`], one per
/// [`NR`] floats of `pack`, zero-filling the columns past `nr`.
fn pack_rows(pack: &mut [f32], src: &[f32], ld: usize, nr: usize) {
    for (kk, dst) in pack.chunks_exact_mut(NR).enumerate() {
        let (head, tail) = dst.split_at_mut(nr);
        head.copy_from_slice(&src[kk * ld..][..nr]);
        tail.fill(0.0);
    }
}

/// One register tile: `acc[i][j] = Σ_k A(i, k) · B(k, j)` for `i < mr`, `j < NR`, where
/// `A(i, k) = a[i*rs + k*cs]` and `B(k, j) = b[k*ldb + j]`.
#[allow(clippy::too_many_arguments)]
fn microkernel(
    path: Path,
    mr: usize,
    kc: usize,
    a: &[f32],
    rs: usize,
    cs: usize,
    b: &[f32],
    ldb: usize,
    acc: &mut [[f32; NR]; MR],
) {
    macro_rules! by_rows {
        ($module:ident) => {
            match mr {
                1 => $module::kernel::<1>(kc, a, rs, cs, b, ldb, acc),
                2 => $module::kernel::<2>(kc, a, rs, cs, b, ldb, acc),
                3 => $module::kernel::<3>(kc, a, rs, cs, b, ldb, acc),
                4 => $module::kernel::<4>(kc, a, rs, cs, b, ldb, acc),
                5 => $module::kernel::<5>(kc, a, rs, cs, b, ldb, acc),
                _ => $module::kernel::<6>(kc, a, rs, cs, b, ldb, acc),
            }
        };
    }
    match path {
        Path::Portable => by_rows!(portable),
        // SAFETY: `Path::Avx2` is only produced by `Path::detect`, which checked that
        // the CPU supports AVX2 and FMA (or that the build requires them).
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { by_rows!(avx2) },
        // SAFETY: this arm only exists when the build enables NEON.
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        Path::Neon => unsafe { by_rows!(neon) },
    }
}

/// Panics unless the operands cover a `R × kc` tile: the SIMD kernels rely on it.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
#[inline(always)]
fn check_tile<const R: usize>(kc: usize, a: &[f32], rs: usize, cs: usize, b: &[f32], ldb: usize) {
    assert!(R <= MR);
    if kc > 0 {
        assert!(a.len() > (R - 1) * rs + (kc - 1) * cs);
        assert!(b.len() >= (kc - 1) * ldb + NR);
    }
}

mod portable {
    use super::{MR, NR};

    /// Fixed-size arrays so LLVM keeps the tile in vector registers where it has them.
    #[inline]
    pub(super) fn kernel<const R: usize>(
        kc: usize,
        a: &[f32],
        rs: usize,
        cs: usize,
        b: &[f32],
        ldb: usize,
        acc: &mut [[f32; NR]; MR],
    ) {
        let mut c = [[0.0f32; NR]; R];
        for k in 0..kc {
            let brow = &b[k * ldb..][..NR];
            for (i, row) in c.iter_mut().enumerate() {
                let av = a[i * rs + k * cs];
                for (cv, &bv) in row.iter_mut().zip(brow) {
                    *cv += av * bv;
                }
            }
        }
        acc[..R].copy_from_slice(&c);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::{
        __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };

    use super::{MR, NR, check_tile};

    /// Two `ymm` accumulators per row; one broadcast of `A` feeds two FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn kernel<const R: usize>(
        kc: usize,
        a: &[f32],
        rs: usize,
        cs: usize,
        b: &[f32],
        ldb: usize,
        acc: &mut [[f32; NR]; MR],
    ) {
        check_tile::<R>(kc, a, rs, cs, b, ldb);
        let mut lo: [__m256; R] = [_mm256_setzero_ps(); R];
        let mut hi: [__m256; R] = [_mm256_setzero_ps(); R];
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        for k in 0..kc {
            // SAFETY: `check_tile` proved `b` holds `NR` floats from `k * ldb` for every
            // `k < kc`.
            let (b0, b1) = unsafe {
                let row = bp.add(k * ldb);
                (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)))
            };
            for (i, (l, h)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                // SAFETY: `check_tile` proved `a` holds index `i*rs + k*cs` for
                // `i < R`, `k < kc`.
                let av = _mm256_set1_ps(unsafe { *ap.add(i * rs + k * cs) });
                *l = _mm256_fmadd_ps(av, b0, *l);
                *h = _mm256_fmadd_ps(av, b1, *h);
            }
        }
        for ((row, l), h) in acc.iter_mut().zip(lo).zip(hi) {
            // SAFETY: each row is `NR` = 16 floats: two unaligned 8-float stores fit.
            unsafe {
                _mm256_storeu_ps(row.as_mut_ptr(), l);
                _mm256_storeu_ps(row.as_mut_ptr().add(8), h);
            }
        }
    }
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon {
    use core::arch::aarch64::{float32x4_t, vdupq_n_f32, vfmaq_n_f32, vld1q_f32, vst1q_f32};

    use super::{MR, NR, check_tile};

    /// Four `q` accumulators per row; one scalar of `A` feeds four FMAs.
    #[target_feature(enable = "neon")]
    pub(super) fn kernel<const R: usize>(
        kc: usize,
        a: &[f32],
        rs: usize,
        cs: usize,
        b: &[f32],
        ldb: usize,
        acc: &mut [[f32; NR]; MR],
    ) {
        check_tile::<R>(kc, a, rs, cs, b, ldb);
        let mut c: [[float32x4_t; 4]; R] = [[vdupq_n_f32(0.0); 4]; R];
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        for k in 0..kc {
            // SAFETY: `check_tile` proved `b` holds `NR` floats from `k * ldb` for every
            // `k < kc`.
            let bv = unsafe {
                let row = bp.add(k * ldb);
                [
                    vld1q_f32(row),
                    vld1q_f32(row.add(4)),
                    vld1q_f32(row.add(8)),
                    vld1q_f32(row.add(12)),
                ]
            };
            for (i, ci) in c.iter_mut().enumerate() {
                // SAFETY: `check_tile` proved `a` holds index `i*rs + k*cs` for
                // `i < R`, `k < kc`.
                let av = unsafe { *ap.add(i * rs + k * cs) };
                for (cq, &bq) in ci.iter_mut().zip(&bv) {
                    *cq = vfmaq_n_f32(*cq, bq, av);
                }
            }
        }
        for (row, ci) in acc.iter_mut().zip(c) {
            for (q, v) in ci.into_iter().enumerate() {
                // SAFETY: each row is `NR` = 16 floats: four 4-float stores fit.
                unsafe { vst1q_f32(row.as_mut_ptr().add(4 * q), v) };
            }
        }
    }
}

/// `MatMul`: `a [..., M, K] × b [K, N]` or `[..., K, N]`, optional bias `[N]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    path: Path,
    a: &[f32],
    a_shape: &crate::shape::Shape,
    b: &[f32],
    b_shape: &crate::shape::Shape,
    bias: &[f32],
    act: Activation,
    y: &mut [f32],
) {
    let rank = a_shape.rank();
    let (m, k) = (a_shape.dim(rank - 2), a_shape.dim(rank - 1));
    let n = b_shape.dim(b_shape.rank() - 1);
    let batch: usize = a_shape.dims()[..rank - 2].iter().product();
    let shared = b_shape.rank() == 2;
    let bias = if bias.is_empty() {
        Bias::None
    } else {
        Bias::Cols(bias)
    };
    for bi in 0..batch {
        let lhs = Lhs {
            a: &a[bi * m * k..],
            rs: k,
            cs: 1,
        };
        let b = if shared { b } else { &b[bi * k * n..] };
        let mut store = Store {
            c: &mut y[bi * m * n..],
            ldc: n,
            bias,
            act,
        };
        gemm(path, m, n, k, lhs, Rhs::RowMajor { b, ld: n }, &mut store);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::cpu::kernels::testutil::{activation, assert_close, data, run_both, shape};
    use crate::op::Op;
    use crate::shape::Shape;

    /// `C = A × B` in f64 with plain loops.
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: impl Fn(usize, usize) -> f32,
        b: &[f32],
    ) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for kk in 0..k {
                    s += a(i, kk) as f64 * b[kk * n + j] as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    /// `b [k, n]` rearranged into [`Rhs::Panels`] order.
    fn panels(b: &[f32], k: usize, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(k * n);
        for j0 in (0..n).step_by(NR) {
            let w = NR.min(n - j0);
            for kk in 0..k {
                out.extend_from_slice(&b[kk * n + j0..kk * n + j0 + w]);
            }
        }
        out
    }

    fn product(path: Path, m: usize, n: usize, k: usize, lhs: Lhs<'_>, rhs: Rhs<'_>) -> Vec<f32> {
        let mut c = vec![f32::NAN; m * n];
        let mut store = Store {
            c: &mut c,
            ldc: n,
            bias: Bias::None,
            act: Activation::Identity,
        };
        gemm(path, m, n, k, lhs, rhs, &mut store);
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn gemm_matches_reference(
            m in 1usize..20, n in 1usize..40, k in 0usize..600,
            transposed in any::<bool>(), seed in any::<u64>(),
        ) {
            let a = data(seed, m * k);
            let b = data(seed ^ 1, k * n);
            // A is read either row-major or through its transpose's strides.
            let (rs, cs) = if transposed { (1, m) } else { (k, 1) };
            let want = reference(m, n, k, |i, kk| a[i * rs + kk * cs], &b);
            let lhs = Lhs { a: &a, rs, cs };
            let packed = panels(&b, k, n);
            for path in [Path::Portable, Path::detect()] {
                let rows = product(path, m, n, k, lhs, Rhs::RowMajor { b: &b, ld: n });
                assert_close(&rows, &want, 1e-4);
                let cols = product(path, m, n, k, lhs, Rhs::Panels(&packed));
                assert_close(&cols, &want, 1e-4);
            }
        }

        /// Small `K` packs many panels at once: products wider than one pack chunk,
        /// with ragged last panels and chunks, must still match on both paths.
        #[test]
        fn small_k_spans_several_pack_chunks(
            m in 1usize..20, n in 1usize..1200, k in 1usize..40, seed in any::<u64>(),
        ) {
            let a = data(seed, m * k);
            let b = data(seed ^ 1, k * n);
            let want = reference(m, n, k, |i, kk| a[i * k + kk], &b);
            let lhs = Lhs { a: &a, rs: k, cs: 1 };
            let packed = panels(&b, k, n);
            for path in [Path::Portable, Path::detect()] {
                let rows = product(path, m, n, k, lhs, Rhs::RowMajor { b: &b, ld: n });
                assert_close(&rows, &want, 1e-4);
                let cols = product(path, m, n, k, lhs, Rhs::Panels(&packed));
                assert_close(&cols, &want, 1e-4);
            }
        }

        #[test]
        fn matmul_op_matches_reference(
            batch in prop::collection::vec(1usize..3, 0..3), m in 1usize..9, n in 1usize..20,
            k in 1usize..20, shared in any::<bool>(), with_bias in any::<bool>(),
            act in any::<u8>(), seed in any::<u64>(),
        ) {
            let act = activation(act);
            let lead: usize = batch.iter().product();
            let dims = |x: usize, y: usize, batched: bool| {
                let mut d = if batched { batch.clone() } else { vec![] };
                d.extend([x, y]);
                shape(&d)
            };
            let (a_shape, b_shape, y_shape) = (dims(m, k, true), dims(k, n, !shared), dims(m, n, true));
            let a = data(seed, a_shape.volume());
            let b = data(seed ^ 1, b_shape.volume());
            let bias = data(seed ^ 2, n);
            let mut want = Vec::new();
            for bi in 0..lead {
                let bb = if shared { &b[..] } else { &b[bi * k * n..(bi + 1) * k * n] };
                let mut c = reference(m, n, k, |i, kk| a[bi * m * k + i * k + kk], bb);
                for (idx, v) in c.iter_mut().enumerate() {
                    if with_bias {
                        *v += bias[idx % n];
                    }
                    *v = act.apply(*v);
                }
                want.extend(c);
            }
            let op = Op::MatMul { activation: act };
            let mut inputs: Vec<(&[f32], Shape)> = vec![(&a, a_shape), (&b, b_shape)];
            if with_bias {
                inputs.push((&bias, shape(&[n])));
            }
            assert_close(&run_both(&op, &inputs, &y_shape), &want, 1e-4);
        }
    }

    #[test]
    fn empty_inner_dimension_gives_bias_and_activation() {
        let op = Op::MatMul {
            activation: Activation::Relu,
        };
        let (a, b, bias) = (vec![], vec![], vec![1.0, -1.0]);
        let y = run_both(
            &op,
            &[
                (&a, shape(&[3, 0])),
                (&b, shape(&[0, 2])),
                (&bias, shape(&[2])),
            ],
            &shape(&[3, 2]),
        );
        assert_eq!(y, [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn simd_level_names_the_detected_path() {
        assert_eq!(crate::cpu::simd_level(), Path::detect().name());
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            assert_eq!(crate::cpu::simd_level(), "avx2+fma");
        }
    }

    /// Single-thread GEMM throughput on a 256×1152×1024 problem (a 3×3 conv, 128 → 256
    /// channels, on a 32×32 map). Run with
    /// `cargo test --release -p cadence-hal gemm_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark"]
    fn gemm_throughput() {
        let (m, k, n) = (256, 1152, 1024);
        let a = data(1, m * k);
        let b = data(2, k * n);
        let packed = panels(&b, k, n);
        let mut c = vec![0.0f32; m * n];
        let lhs = Lhs {
            a: &a,
            rs: k,
            cs: 1,
        };
        for path in [Path::Portable, Path::detect()] {
            for (name, rhs) in [
                ("row-major B", Rhs::RowMajor { b: &b, ld: n }),
                ("panel B", Rhs::Panels(&packed)),
            ] {
                let mut best = f64::INFINITY;
                for _ in 0..5 {
                    let mut store = Store {
                        c: &mut c,
                        ldc: n,
                        bias: Bias::None,
                        act: Activation::Identity,
                    };
                    let t = std::time::Instant::now();
                    gemm(path, m, n, k, lhs, rhs, &mut store);
                    best = best.min(t.elapsed().as_secs_f64());
                }
                let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
                println!(
                    "{} {name}: {gflops:.1} GFLOP/s ({:.2} ms)",
                    path.name(),
                    best * 1e3
                );
            }
        }
    }
}
