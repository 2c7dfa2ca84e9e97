//! Scalar maths without `std`: `core` has no `exp` or `floor` on stable, and the
//! kernels, the CUDA prelude (`cadence_exp`, `cadence_floor` in `cuda/kernels.cu`) and
//! the models' post-processing must all round the same way, so there is one
//! definition of each here.

/// `1 / (1 + e^-x)` without `std`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x)` without `std`, via the sigmoid identity `tanh x = 2σ(2x) − 1`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 * sigmoid(2.0 * x) - 1.0
}

/// `e^x` without `std`: range reduction to `2^k · e^r` with a degree-6 polynomial for
/// `e^r`, |r| ≤ ln2/2. Relative error below 2e-7 over the f32 range; saturates to 0
/// and infinity outside it. Written branch-light so loops over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.3, 88.7);
    let k = floor(x * core::f32::consts::LOG2_E + 0.5);
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let bits = ((k as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// `floor(x)` without `std` (core has no float rounding on stable), exact for
/// |x| < 2^31.
#[inline(always)]
pub fn floor(x: f32) -> f32 {
    let t = x as i32 as f32;
    if t > x { t - 1.0 } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        for i in -800..=800 {
            let x = i as f32 * 0.1;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "exp({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn floor_rounds_down_on_both_sides_of_zero() {
        for (x, want) in [
            (1.5, 1.0),
            (-1.5, -2.0),
            (-2.0, -2.0),
            (0.0, 0.0),
            (-0.25, -1.0),
        ] {
            assert_eq!(floor(x), want, "floor({x})");
        }
    }
}
