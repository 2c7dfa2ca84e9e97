//! The few float functions post-processing needs that `core` lacks on stable
//! (`exp` and `floor` come from `cadence_hal::scalar`, shared with the kernels).

/// `√x` without `std`: a bit-level first guess refined by Newton steps, within one ulp
/// over the normal range. `0` for `0`, NaN for negative input, `∞` for `∞`.
pub(crate) fn sqrt(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    // Halving the exponent bits gives a guess within a few percent; each Newton step
    // doubles the correct bits (5 → 10 → 20 → 24+).
    let mut y = f32::from_bits((x.to_bits() >> 1) + 0x1fbd_1df5);
    for _ in 0..4 {
        y = 0.5 * (y + x / y);
    }
    y
}

/// `(sin x, cos x)` without `std`: reduction to the nearest quadrant and Taylor
/// polynomials on `|r| ≤ π/4` (absolute error below 3e-8 for |x| up to a few thousand
/// radians, which covers every yaw a detector head produces).
pub(crate) fn sin_cos(x: f32) -> (f32, f32) {
    const PIO2_HI: f32 = 1.570_796_4;
    const PIO2_LO: f32 = -4.371_139e-8;
    let q = cadence_hal::scalar::floor(x * core::f32::consts::FRAC_2_PI + 0.5);
    let r = x - q * PIO2_HI - q * PIO2_LO;
    let r2 = r * r;
    let s = r + r * r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 / 362_880.0)));
    let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 / 40_320.0)));
    match (q as i32) & 3 {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// Whether `a` is within a relative 1e-4 of `b` (absolute near zero): the tolerance
/// the lidar geometry tests compare decoded boxes and overlaps with.
#[cfg(test)]
pub(crate) fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * b.abs().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqrt_matches_std() {
        for &x in &[1e-30f32, 1e-6, 0.3, 1.0, 2.0, 17.21, 1e6, 3.4e38] {
            let (got, want) = (sqrt(x), x.sqrt());
            assert!(
                (got - want).abs() <= want * 1.2e-7,
                "sqrt({x}) = {got}, want {want}"
            );
        }
        assert_eq!(sqrt(0.0), 0.0);
        assert!(sqrt(-1.0).is_nan());
    }

    #[test]
    fn sin_cos_match_std() {
        let mut x = -20.0f32;
        while x < 20.0 {
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-6, "sin({x})");
            assert!((c - x.cos()).abs() < 1e-6, "cos({x})");
            x += 0.0137;
        }
    }
}
