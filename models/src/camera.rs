//! Camera pre-processing: an RGB frame into the detector's input tensor.
//!
//! The operation order is fixed (and documented in `models/README.md`) so the result
//! matches the generator's NumPy reference bit for bit: bilinear resize with half-pixel
//! centres and edge clamping, all in `f32`, then scale to `[0, 1]`, then normalise per
//! channel, then lay out as planar `[1, 3, H, W]`.

use core::fmt;

/// ImageNet channel means (RGB), on the `[0, 1]` scale.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// An interleaved 8-bit RGB frame, row-major (`[H, W, 3]`).
#[derive(Clone, Copy, Debug)]
pub struct RgbFrame<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub pixels: &'a [u8],
}

/// How pixel values are mapped after resizing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Normalisation {
    /// `(v / 255 - mean) / std` with the ImageNet statistics.
    Imagenet,
    /// `v / 255`.
    Unit,
}

/// Why a frame cannot be pre-processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraError {
    /// The pixel buffer does not hold `height * width * 3` bytes.
    FrameSize {
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The frame has no pixels.
    EmptyFrame,
    /// The output tensor does not hold `3 * height * width` floats.
    OutputSize {
        /// Floats expected.
        expected: usize,
        /// Floats given.
        got: usize,
    },
}

impl fmt::Display for CameraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameSize { expected, got } => write!(
                f,
                "camera frame holds {got} bytes, its width and height need {expected} (RGB, 8 bits)"
            ),
            Self::EmptyFrame => f.write_str("camera frame has no pixels"),
            Self::OutputSize { expected, got } => write!(
                f,
                "input tensor holds {got} floats, the model's 3xHxW needs {expected}"
            ),
        }
    }
}

/// Source index pair and weight for one output coordinate.
#[derive(Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    frac: f32,
}

fn tap(o: usize, out_len: usize, in_len: usize) -> Tap {
    let s = (o as f32 + 0.5) * (in_len as f32 / out_len as f32) - 0.5;
    let s = s.max(0.0);
    let i0 = (s as usize).min(in_len - 1);
    Tap {
        i0,
        i1: (i0 + 1).min(in_len - 1),
        frac: s - i0 as f32,
    }
}

/// Resizes `frame` to `out_h × out_w` and writes the normalised planar tensor into
/// `out` (`3 * out_h * out_w` floats). Allocation-free.
pub fn preprocess(
    frame: &RgbFrame<'_>,
    norm: Normalisation,
    out_h: usize,
    out_w: usize,
    out: &mut [f32],
) -> Result<(), CameraError> {
    let expected = frame.width * frame.height * 3;
    if frame.width == 0 || frame.height == 0 {
        return Err(CameraError::EmptyFrame);
    }
    if frame.pixels.len() != expected {
        return Err(CameraError::FrameSize {
            expected,
            got: frame.pixels.len(),
        });
    }
    if out.len() != 3 * out_h * out_w {
        return Err(CameraError::OutputSize {
            expected: 3 * out_h * out_w,
            got: out.len(),
        });
    }
    let (mean, std) = match norm {
        Normalisation::Imagenet => (IMAGENET_MEAN, IMAGENET_STD),
        Normalisation::Unit => ([0.0; 3], [1.0; 3]),
    };
    let px = |y: usize, x: usize, c: usize| f32::from(frame.pixels[(y * frame.width + x) * 3 + c]);
    let plane = out_h * out_w;
    for oy in 0..out_h {
        let ty = tap(oy, out_h, frame.height);
        for ox in 0..out_w {
            let tx = tap(ox, out_w, frame.width);
            for c in 0..3 {
                let top = (1.0 - tx.frac) * px(ty.i0, tx.i0, c) + tx.frac * px(ty.i0, tx.i1, c);
                let bottom = (1.0 - tx.frac) * px(ty.i1, tx.i0, c) + tx.frac * px(ty.i1, tx.i1, c);
                let v = (1.0 - ty.frac) * top + ty.frac * bottom;
                out[c * plane + oy * out_w + ox] = (v / 255.0 - mean[c]) / std[c];
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_frame_normalises_to_a_constant() {
        let pixels = [255u8; 4 * 6 * 3];
        let frame = RgbFrame {
            width: 6,
            height: 4,
            pixels: &pixels,
        };
        let mut out = [0.0f32; 3 * 2 * 3];
        preprocess(&frame, Normalisation::Unit, 2, 3, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn wrong_sizes_are_refused() {
        let pixels = [0u8; 10];
        let frame = RgbFrame {
            width: 2,
            height: 2,
            pixels: &pixels,
        };
        let mut out = [0.0f32; 12];
        assert_eq!(
            preprocess(&frame, Normalisation::Unit, 2, 2, &mut out),
            Err(CameraError::FrameSize {
                expected: 12,
                got: 10
            })
        );
    }
}
