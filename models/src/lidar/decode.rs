//! The lidar head's outputs into [`LidarDetection`]s: box decoding against the
//! anchors, the direction classifier, and the shared top-k and rotated NMS.

use heapless::Vec;

use super::head::{
    LIDAR_ANCHORS, LIDAR_BOX_CODE, LIDAR_CLASSES, LIDAR_DIR_BINS, LIDAR_HEAD, LidarAnchor,
};
use super::rotated_box::LidarBox;
use crate::ObjectClass;
use crate::math::sqrt;
use crate::nms::{self, Candidate, PostConfig, PostError, PostStats, TopK};

/// Decodes one box (SECOND / PointPillars encoding, `models/README.md`) against
/// `anchor` centred at `(xa, ya)`: `delta = (dx, dy, dz, dw, dl, dh, dyaw)`; the yaw
/// is turned by π when the direction classifier (`dir_logits`, argmax, ties to bin 0)
/// disagrees with `yaw > 0`.
pub fn decode_lidar_box(
    anchor: &LidarAnchor,
    xa: f32,
    ya: f32,
    delta: [f32; 7],
    dir_logits: [f32; 2],
) -> LidarBox {
    let [dx, dy, dz, dw, dl, dh, dyaw] = delta;
    let diagonal = sqrt(anchor.w * anchor.w + anchor.l * anchor.l);
    let mut yaw = anchor.yaw + dyaw;
    let positive_bin = dir_logits[1] > dir_logits[0];
    if positive_bin != (yaw > 0.0) {
        yaw += core::f32::consts::PI;
    }
    LidarBox {
        x: xa + dx * diagonal,
        y: ya + dy * diagonal,
        z: anchor.z + dz * anchor.h,
        w: anchor.w * cadence_hal::scalar::exp(dw),
        l: anchor.l * cadence_hal::scalar::exp(dl),
        h: anchor.h * cadence_hal::scalar::exp(dh),
        yaw,
    }
}

/// A lidar detection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LidarDetection {
    /// What was detected.
    pub class: ObjectClass,
    /// Sigmoid score of `class`.
    pub score: f32,
    /// Where, in the sensor frame.
    pub bbox: LidarBox,
}

impl Candidate for LidarDetection {
    fn score(&self) -> f32 {
        self.score
    }
    fn class(&self) -> ObjectClass {
        self.class
    }
    fn is_finite(&self) -> bool {
        let b = &self.bbox;
        [b.x, b.y, b.z, b.w, b.l, b.h, b.yaw]
            .iter()
            .all(|v| v.is_finite())
    }
}

/// Turns the lidar head outputs into at most `K` detections, best first.
///
/// Inputs are the backbone's NCHW outputs, flat: `cls_scores` `[1, 18, 128, 128]`
/// (sigmoid applied), `box_preds` `[1, 42, 128, 128]`, `dir_scores`
/// `[1, 12, 128, 128]`. Each anchor takes its best class (argmax of its three scores,
/// ties to the lower index, as SECOND does) and is a candidate if that score reaches
/// the class's threshold. Candidates are ranked by the shared [`TopK`] (`N`), then
/// suppressed per class by rotated bird's-eye-view IoU ([`LidarBox::bev_iou`]).
pub fn decode_lidar<const N: usize, const K: usize>(
    cls_scores: &[f32],
    box_preds: &[f32],
    dir_scores: &[f32],
    config: &PostConfig,
    candidates: &mut TopK<LidarDetection, N>,
    out: &mut Vec<LidarDetection, K>,
) -> Result<PostStats, PostError> {
    config.validate()?;
    let head = &LIDAR_HEAD;
    let plane = head.rows * head.cols;
    let anchors = LIDAR_ANCHORS.len();
    for (output, channels, got) in [
        ("cls_scores", LIDAR_CLASSES, cls_scores.len()),
        ("box_preds", LIDAR_BOX_CODE, box_preds.len()),
        ("dir_scores", LIDAR_DIR_BINS, dir_scores.len()),
    ] {
        let expected = anchors * channels * plane;
        if got != expected {
            return Err(PostError::OutputSize {
                output,
                expected,
                got,
            });
        }
    }
    candidates.clear();
    let channel = |tensor: &[f32], ch: usize, cell: usize| tensor[ch * plane + cell];
    for row in 0..head.rows {
        let ya = (row as f32 + 0.5) * head.cell + head.y_min;
        for col in 0..head.cols {
            let xa = (col as f32 + 0.5) * head.cell + head.x_min;
            let cell = row * head.cols + col;
            for (a, anchor) in LIDAR_ANCHORS.iter().enumerate() {
                let mut best = (
                    ObjectClass::Car,
                    channel(cls_scores, a * LIDAR_CLASSES, cell),
                );
                for class in &ObjectClass::ALL[1..] {
                    let score = channel(cls_scores, a * LIDAR_CLASSES + class.index(), cell);
                    if score > best.1 || best.1.is_nan() {
                        best = (*class, score);
                    }
                }
                let (class, score) = best;
                if !config.passes(class, score) {
                    if score.is_nan() {
                        candidates.count_non_finite_score();
                    }
                    continue;
                }
                let delta: [f32; LIDAR_BOX_CODE] =
                    core::array::from_fn(|k| channel(box_preds, a * LIDAR_BOX_CODE + k, cell));
                let dir = [
                    channel(dir_scores, a * LIDAR_DIR_BINS, cell),
                    channel(dir_scores, a * LIDAR_DIR_BINS + 1, cell),
                ];
                candidates.offer(LidarDetection {
                    class,
                    score,
                    bbox: decode_lidar_box(anchor, xa, ya, delta, dir),
                });
            }
        }
    }
    Ok(nms::nms(
        candidates,
        config.iou_threshold,
        |a, b| a.bbox.bev_iou(&b.bbox),
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::close;

    /// The inverse of [`decode_lidar_box`] (yaw without the direction flip).
    fn encode(anchor: &LidarAnchor, xa: f32, ya: f32, b: &LidarBox) -> [f32; 7] {
        let d = (anchor.w * anchor.w + anchor.l * anchor.l).sqrt();
        [
            (b.x - xa) / d,
            (b.y - ya) / d,
            (b.z - anchor.z) / anchor.h,
            (b.w / anchor.w).ln(),
            (b.l / anchor.l).ln(),
            (b.h / anchor.h).ln(),
            b.yaw - anchor.yaw,
        ]
    }

    #[test]
    fn decoding_inverts_encoding_and_direction_flips_yaw() {
        let anchor = LIDAR_ANCHORS[1];
        let want = LidarBox {
            x: 10.3,
            y: -4.2,
            z: -0.7,
            w: 1.8,
            l: 4.4,
            h: 1.5,
            yaw: 1.2,
        };
        let delta = encode(&anchor, 10.0, -4.4, &want);
        let got = decode_lidar_box(&anchor, 10.0, -4.4, delta, [0.0, 1.0]);
        for (g, w) in [
            (got.x, want.x),
            (got.y, want.y),
            (got.z, want.z),
            (got.w, want.w),
            (got.l, want.l),
            (got.h, want.h),
            (got.yaw, want.yaw),
        ] {
            assert!(close(g, w), "{got:?} vs {want:?}");
        }
        // The direction bin says "yaw <= 0": the box is turned around.
        let flipped = decode_lidar_box(&anchor, 10.0, -4.4, delta, [1.0, 0.0]);
        assert!(close(flipped.yaw, 1.2 + core::f32::consts::PI));
    }

    #[test]
    fn head_outputs_to_detections() {
        let plane = 128 * 128;
        let mut cls = vec![0.01f32; 18 * plane];
        let mut boxes = vec![0.0f32; 42 * plane];
        let dir = vec![0.0f32; 12 * plane];
        let cell = 64 * 128 + 70; // row 64, col 70: anchor centre (5.2, 0.4)
        let mut put = |a: usize, class: usize, score: f32, dx: f32| {
            cls[(a * 3 + class) * plane + cell] = score;
            boxes[(a * 7) * plane + cell] = dx;
        };
        put(0, 0, 0.9, 0.0); // car at the anchor
        put(1, 0, 0.8, 0.0); // same car, rotated anchor: IoU 1.6²/(2·6.24 − 2.56) suppressed at 0.2
        put(2, 1, 0.7, 0.0); // pedestrian at the same place: other class, kept
        put(4, 2, 0.3, 0.0); // cyclist under its threshold
        let config = PostConfig {
            score_threshold: [0.5, 0.5, 0.5],
            iou_threshold: 0.2,
        };
        let mut top = TopK::<LidarDetection, 32>::new();
        let mut out = Vec::<LidarDetection, 4>::new();
        let stats = decode_lidar(&cls, &boxes, &dir, &config, &mut top, &mut out).unwrap();
        let got: std::vec::Vec<(ObjectClass, f32)> =
            out.iter().map(|d| (d.class, d.score)).collect();
        assert_eq!(
            got,
            [(ObjectClass::Car, 0.9), (ObjectClass::Pedestrian, 0.7)]
        );
        assert!(
            close(out[0].bbox.x, 5.2) && close(out[0].bbox.y, 0.4),
            "{:?}",
            out[0].bbox
        );
        assert_eq!(
            stats,
            PostStats {
                candidates: 3,
                suppressed: 1,
                ..PostStats::default()
            }
        );
        assert!(matches!(
            decode_lidar(&cls[1..], &boxes, &dir, &config, &mut top, &mut out),
            Err(PostError::OutputSize {
                output: "cls_scores",
                ..
            })
        ));
    }
}
