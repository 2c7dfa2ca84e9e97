//! Fixed pseudo-random weights for the firmware examples' models: the files, and the
//! packages compiled from them, are the same on every machine.

/// A 64-bit linear congruential generator (Knuth's MMIX constants): plenty for weights
/// that only have to be fixed and spread out.
pub struct Lcg(pub u64);

impl Lcg {
    /// Uniform in `[-1, 1)`.
    pub fn next_signed(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // The top 24 bits: exactly representable in an f32.
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `len` values uniform in `[-scale, scale)`.
    pub fn values(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.next_signed() * scale).collect()
    }
}

/// He-style scale for a layer with `fan_in` inputs per output, so activations neither
/// vanish nor explode.
pub fn scale(fan_in: usize) -> f32 {
    (6.0 / fan_in as f32).sqrt()
}
