//! Reproducible test data. The kernel tests, the CUDA tests, the compiler's and the
//! isolated engine's tests all draw weights and inputs from [`values`], so a seed
//! names the same data everywhere and a failure reproduces from its seed alone.

/// `count` values in `[-1, 1)` from `seed`: a xorshift64 stream (reproducible on every
/// platform, no dependency), each value the top 24 bits of a state, so exact in `f32`.
pub fn values(seed: u64, count: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::values;

    #[test]
    fn a_seed_names_the_same_values_in_range() {
        let first = values(7, 1000);
        assert_eq!(first, values(7, 1000));
        assert_ne!(first, values(8, 1000));
        assert!(first.iter().all(|v| (-1.0..1.0).contains(v)));
    }
}
