//! Camera post-processing: the SSD head's `boxes` and `scores` into [`Detection`]s.
//!
//! The anchor layout and box encoding are those of `camera/camera_det.onnx` (see
//! `models/README.md` and `camera/anchors.json`, which a test checks these constants
//! against). Anchors are computed from [`CAMERA_SCALES`] on demand rather than stored:
//! the table would cost 24 KB of flash for two multiplications per candidate.
//!
//! Every (anchor, class) pair whose softmax score reaches the class's threshold is a
//! candidate (the background class 0 never is); candidates go through the shared
//! top-k and class-wise NMS of [`crate::nms`] with axis-aligned IoU.

use heapless::Vec;

use crate::ObjectClass;
use crate::nms::{self, Candidate, PostConfig, PostError, PostStats, TopK};

/// Side of the square network input, in pixels.
pub const CAMERA_INPUT_SIZE: usize = 320;
/// Score channels per anchor: background, car, pedestrian, cyclist.
pub const CAMERA_SCORE_CLASSES: usize = 4;
/// Anchors per feature-map location.
pub const CAMERA_ANCHORS_PER_LOCATION: usize = 3;
/// SSD variances: centre offsets are scaled by the first, log-sizes by the second.
pub const CAMERA_VARIANCES: [f32; 2] = [0.1, 0.2];

/// One detection scale of the SSD head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnchorScale {
    /// Feature map size `[rows, columns]`.
    pub feature_size: [usize; 2],
    /// Input pixels per feature-map cell.
    pub stride: usize,
    /// Anchor `(width, height)` in input pixels, in channel order.
    pub anchors_wh: [[f32; 2]; CAMERA_ANCHORS_PER_LOCATION],
}

/// The head's scales, in output order.
pub const CAMERA_SCALES: [AnchorScale; 2] = [
    AnchorScale {
        feature_size: [20, 20],
        stride: 16,
        anchors_wh: [[48.0, 48.0], [34.0, 68.0], [68.0, 34.0]],
    },
    AnchorScale {
        feature_size: [10, 10],
        stride: 32,
        anchors_wh: [[112.0, 112.0], [80.0, 160.0], [160.0, 80.0]],
    },
];

/// Anchors over all scales: the length of the head's anchor axis.
pub const CAMERA_NUM_ANCHORS: usize = {
    let mut n = 0;
    let mut s = 0;
    while s < CAMERA_SCALES.len() {
        let [rows, cols] = CAMERA_SCALES[s].feature_size;
        n += rows * cols * CAMERA_ANCHORS_PER_LOCATION;
        s += 1;
    }
    n
};

/// An anchor box: centre and size in input pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anchor {
    /// Centre x.
    pub cx: f32,
    /// Centre y.
    pub cy: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// The anchor at flattened `index` (scale, then row, then column, then anchor), or
/// `None` past [`CAMERA_NUM_ANCHORS`].
pub const fn camera_anchor(index: usize) -> Option<Anchor> {
    let mut offset = 0;
    let mut s = 0;
    while s < CAMERA_SCALES.len() {
        let scale = &CAMERA_SCALES[s];
        let [rows, cols] = scale.feature_size;
        let len = rows * cols * CAMERA_ANCHORS_PER_LOCATION;
        if index < offset + len {
            let local = index - offset;
            let a = local % CAMERA_ANCHORS_PER_LOCATION;
            let cell = local / CAMERA_ANCHORS_PER_LOCATION;
            let stride = scale.stride as f32;
            let [w, h] = scale.anchors_wh[a];
            return Some(Anchor {
                cx: ((cell % cols) as f32 + 0.5) * stride,
                cy: ((cell / cols) as f32 + 0.5) * stride,
                w,
                h,
            });
        }
        offset += len;
        s += 1;
    }
    None
}

/// An axis-aligned box, corners in input pixels of the 320×320 network input (not
/// clipped to the image: map it to the original frame with the resize scale).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    /// Left.
    pub x0: f32,
    /// Top.
    pub y0: f32,
    /// Right.
    pub x1: f32,
    /// Bottom.
    pub y1: f32,
}

impl BBox {
    /// Area (0 for an inverted box).
    pub fn area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }

    /// Intersection over union; 0 when the union is empty.
    pub fn iou(&self, other: &Self) -> f32 {
        let w = (self.x1.min(other.x1) - self.x0.max(other.x0)).max(0.0);
        let h = (self.y1.min(other.y1) - self.y0.max(other.y0)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// Decodes one SSD box: `delta = (dx, dy, dw, dh)` against `anchor`, operation order
/// as in `models/README.md` (`cx = acx + dx·0.1·aw`, `w = aw·exp(dw·0.2)`, …).
pub fn decode_box(anchor: &Anchor, delta: [f32; 4]) -> BBox {
    let [dx, dy, dw, dh] = delta;
    let [vc, vs] = CAMERA_VARIANCES;
    let cx = anchor.cx + dx * vc * anchor.w;
    let cy = anchor.cy + dy * vc * anchor.h;
    let w = anchor.w * cadence_hal::scalar::exp(dw * vs);
    let h = anchor.h * cadence_hal::scalar::exp(dh * vs);
    BBox {
        x0: cx - 0.5 * w,
        y0: cy - 0.5 * h,
        x1: cx + 0.5 * w,
        y1: cy + 0.5 * h,
    }
}

/// A camera detection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// What was detected.
    pub class: ObjectClass,
    /// Softmax probability of `class`.
    pub score: f32,
    /// Where, in network-input pixels.
    pub bbox: BBox,
}

impl Candidate for Detection {
    fn score(&self) -> f32 {
        self.score
    }
    fn class(&self) -> ObjectClass {
        self.class
    }
    fn is_finite(&self) -> bool {
        let b = &self.bbox;
        b.x0.is_finite() && b.y0.is_finite() && b.x1.is_finite() && b.y1.is_finite()
    }
}

/// Turns the camera head outputs into at most `K` detections, best first.
///
/// `boxes` and `scores` are the `[1, 1500, 4]` outputs, flat. `candidates` is the
/// top-k working buffer (its `N` bounds how many candidates reach NMS; cleared here).
/// `out` is cleared, then filled. The returned counters say where every candidate
/// went; a non-zero `overflow` means `K` is too small for the scene.
pub fn decode_camera<const N: usize, const K: usize>(
    boxes: &[f32],
    scores: &[f32],
    config: &PostConfig,
    candidates: &mut TopK<Detection, N>,
    out: &mut Vec<Detection, K>,
) -> Result<PostStats, PostError> {
    config.validate()?;
    let expected = CAMERA_NUM_ANCHORS * 4;
    if boxes.len() != expected {
        return Err(PostError::OutputSize {
            output: "boxes",
            expected,
            got: boxes.len(),
        });
    }
    let expected = CAMERA_NUM_ANCHORS * CAMERA_SCORE_CLASSES;
    if scores.len() != expected {
        return Err(PostError::OutputSize {
            output: "scores",
            expected,
            got: scores.len(),
        });
    }
    candidates.clear();
    for (index, (delta, probs)) in boxes
        .chunks_exact(4)
        .zip(scores.chunks_exact(CAMERA_SCORE_CLASSES))
        .enumerate()
    {
        // Decoded lazily: most anchors have no class above threshold.
        let mut bbox = None;
        for (class, &score) in ObjectClass::ALL.iter().zip(&probs[1..]) {
            if !config.passes(*class, score) {
                if score.is_nan() {
                    candidates.count_non_finite_score();
                }
                continue;
            }
            if bbox.is_none() {
                bbox = camera_anchor(index)
                    .map(|anchor| decode_box(&anchor, [delta[0], delta[1], delta[2], delta[3]]));
            }
            // Always `Some`: the loop runs over exactly CAMERA_NUM_ANCHORS anchors.
            let Some(bbox) = bbox else { break };
            candidates.offer(Detection {
                class: *class,
                score,
                bbox,
            });
        }
    }
    Ok(nms::nms(
        candidates,
        config.iou_threshold,
        |a, b| a.bbox.iou(&b.bbox),
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse of [`decode_box`], written independently with `std` floats.
    fn encode_box(anchor: &Anchor, cx: f32, cy: f32, w: f32, h: f32) -> [f32; 4] {
        [
            (cx - anchor.cx) / (0.1 * anchor.w),
            (cy - anchor.cy) / (0.1 * anchor.h),
            (w / anchor.w).ln() / 0.2,
            (h / anchor.h).ln() / 0.2,
        ]
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-4 * b.abs().max(1.0)
    }

    #[test]
    fn anchors_match_anchors_json() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/camera/anchors.json"))
                .expect("models/camera/anchors.json (written by models/generate.py)");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["num_anchors"], CAMERA_NUM_ANCHORS);
        assert_eq!(json["anchors_per_location"], CAMERA_ANCHORS_PER_LOCATION);
        assert_eq!(
            json["classes"].as_array().unwrap().len(),
            CAMERA_SCORE_CLASSES
        );
        assert_eq!(json["background_class"], 0);
        assert_eq!(json["input"]["shape"][2], CAMERA_INPUT_SIZE);
        assert_eq!(json["input"]["shape"][3], CAMERA_INPUT_SIZE);
        assert_eq!(
            json["box_encoding"]["variances"][0].as_f64().unwrap() as f32,
            CAMERA_VARIANCES[0]
        );
        assert_eq!(
            json["box_encoding"]["variances"][1].as_f64().unwrap() as f32,
            CAMERA_VARIANCES[1]
        );
        for (i, name) in ["car", "pedestrian", "cyclist"].into_iter().enumerate() {
            assert_eq!(json["classes"][i + 1], name);
            assert_eq!(ObjectClass::ALL[i].name(), name);
        }
        let scales = json["scales"].as_array().unwrap();
        assert_eq!(scales.len(), CAMERA_SCALES.len());
        for (js, rs) in scales.iter().zip(&CAMERA_SCALES) {
            assert_eq!(js["feature_size"][0], rs.feature_size[0]);
            assert_eq!(js["feature_size"][1], rs.feature_size[1]);
            assert_eq!(js["stride"], rs.stride);
            for (jwh, rwh) in js["anchors_wh"]
                .as_array()
                .unwrap()
                .iter()
                .zip(&rs.anchors_wh)
            {
                assert_eq!(jwh[0].as_f64().unwrap() as f32, rwh[0]);
                assert_eq!(jwh[1].as_f64().unwrap() as f32, rwh[1]);
            }
        }
        // The flattened order and centres as the README states them.
        assert_eq!(
            camera_anchor(0),
            Some(Anchor {
                cx: 8.0,
                cy: 8.0,
                w: 48.0,
                h: 48.0
            })
        );
        assert_eq!(
            camera_anchor(2 * 3 + 1),
            Some(Anchor {
                cx: 40.0,
                cy: 8.0,
                w: 34.0,
                h: 68.0
            })
        );
        assert_eq!(
            camera_anchor(20 * 3 + 2),
            Some(Anchor {
                cx: 8.0,
                cy: 24.0,
                w: 68.0,
                h: 34.0
            })
        );
        assert_eq!(
            camera_anchor(1200),
            Some(Anchor {
                cx: 16.0,
                cy: 16.0,
                w: 112.0,
                h: 112.0
            })
        );
        assert_eq!(
            camera_anchor(1499),
            Some(Anchor {
                cx: 304.0,
                cy: 304.0,
                w: 160.0,
                h: 80.0
            })
        );
        assert_eq!(camera_anchor(1500), None);
    }

    #[test]
    fn decoding_inverts_encoding() {
        for (index, (cx, cy, w, h)) in [
            (0usize, (10.0f32, 12.0f32, 40.0f32, 50.0f32)),
            (731, (150.0, 170.0, 20.0, 90.0)),
            (1333, (200.0, 100.0, 300.0, 120.0)),
        ] {
            let anchor = camera_anchor(index).unwrap();
            let b = decode_box(&anchor, encode_box(&anchor, cx, cy, w, h));
            assert!(
                close(0.5 * (b.x0 + b.x1), cx) && close(0.5 * (b.y0 + b.y1), cy),
                "{b:?}"
            );
            assert!(close(b.x1 - b.x0, w) && close(b.y1 - b.y0, h), "{b:?}");
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = BBox {
            x0: 0.0,
            y0: 0.0,
            x1: 2.0,
            y1: 2.0,
        };
        let b = BBox {
            x0: 1.0,
            y0: 0.0,
            x1: 3.0,
            y1: 2.0,
        };
        assert_eq!(a.iou(&a), 1.0);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        let far = BBox {
            x0: 10.0,
            y0: 10.0,
            x1: 11.0,
            y1: 11.0,
        };
        assert_eq!(a.iou(&far), 0.0);
        let empty = BBox {
            x0: 1.0,
            y0: 1.0,
            x1: 1.0,
            y1: 1.0,
        };
        assert_eq!(empty.iou(&empty), 0.0);
    }

    /// `(anchor index, class index, score, (cx, cy, w, h))`.
    type HeadEntry = (usize, usize, f32, (f32, f32, f32, f32));

    /// Head outputs with every score on background except the listed entries.
    fn head(entries: &[HeadEntry]) -> (std::vec::Vec<f32>, std::vec::Vec<f32>) {
        let mut boxes = vec![0.0; CAMERA_NUM_ANCHORS * 4];
        let mut scores = vec![0.0; CAMERA_NUM_ANCHORS * 4];
        for i in 0..CAMERA_NUM_ANCHORS {
            scores[i * 4] = 1.0;
        }
        for &(i, class, score, (cx, cy, w, h)) in entries {
            let anchor = camera_anchor(i).unwrap();
            boxes[i * 4..i * 4 + 4].copy_from_slice(&encode_box(&anchor, cx, cy, w, h));
            scores[i * 4] = 0.0;
            scores[i * 4 + class] = score;
        }
        (boxes, scores)
    }

    #[test]
    fn end_to_end_threshold_nms_and_capacity() {
        let (boxes, scores) = head(&[
            (100, 1, 0.9, (100.0, 100.0, 40.0, 40.0)),
            (103, 1, 0.8, (102.0, 101.0, 40.0, 40.0)), // same car: suppressed
            (106, 2, 0.7, (102.0, 101.0, 40.0, 40.0)), // pedestrian at the same place: kept
            (900, 3, 0.6, (250.0, 60.0, 30.0, 60.0)),
            (1400, 1, 0.2, (10.0, 10.0, 10.0, 10.0)), // under the car threshold
        ]);
        let config = PostConfig {
            score_threshold: [0.3, 0.3, 0.3],
            iou_threshold: 0.5,
        };
        let mut top = TopK::<Detection, 64>::new();
        let mut out = Vec::<Detection, 8>::new();
        let stats = decode_camera(&boxes, &scores, &config, &mut top, &mut out).unwrap();
        let got: std::vec::Vec<(ObjectClass, f32)> =
            out.iter().map(|d| (d.class, d.score)).collect();
        assert_eq!(
            got,
            [
                (ObjectClass::Car, 0.9),
                (ObjectClass::Pedestrian, 0.7),
                (ObjectClass::Cyclist, 0.6)
            ]
        );
        assert!(
            close(out[0].bbox.x0, 80.0) && close(out[0].bbox.y1, 120.0),
            "{:?}",
            out[0].bbox
        );
        assert_eq!(
            stats,
            PostStats {
                candidates: 4,
                suppressed: 1,
                ..PostStats::default()
            }
        );

        let mut small = Vec::<Detection, 2>::new();
        let stats = decode_camera(&boxes, &scores, &config, &mut top, &mut small).unwrap();
        assert_eq!(small.len(), 2);
        assert_eq!(stats.overflow, 1);

        let mut tiny_top = TopK::<Detection, 2>::new();
        let stats = decode_camera(&boxes, &scores, &config, &mut tiny_top, &mut out).unwrap();
        assert_eq!(stats.topk_dropped, 2);
        let got: std::vec::Vec<f32> = out.iter().map(|d| d.score).collect();
        assert_eq!(
            got,
            [0.9],
            "the 0.8 car that took the second place is suppressed"
        );
    }

    #[test]
    fn bad_outputs_and_nan_are_reported() {
        let (boxes, mut scores) = head(&[(5, 2, 0.9, (50.0, 50.0, 20.0, 40.0))]);
        let config = PostConfig {
            score_threshold: [0.5; 3],
            iou_threshold: 0.5,
        };
        let mut top = TopK::<Detection, 16>::new();
        let mut out = Vec::<Detection, 4>::new();
        assert_eq!(
            decode_camera(&boxes[1..], &scores, &config, &mut top, &mut out),
            Err(PostError::OutputSize {
                output: "boxes",
                expected: 6000,
                got: 5999
            })
        );
        scores[7 * 4 + 1] = f32::NAN;
        let mut bad_boxes = boxes.clone();
        bad_boxes[5 * 4 + 2] = f32::INFINITY;
        let stats = decode_camera(&bad_boxes, &scores, &config, &mut top, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(stats.non_finite, 2);
        assert_eq!(stats.candidates, 0);
    }
}
