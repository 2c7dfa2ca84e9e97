//! 3-D boxes with a heading, and their overlap seen from above (rotated IoU by
//! polygon clipping), which NMS of lidar detections needs.

use heapless::Vec;

use crate::math::{sin_cos, sqrt};

/// A 3-D box: centre, size and heading (metres, radians). `l` runs along the heading
/// `(cos yaw, sin yaw)`, `w` across it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LidarBox {
    /// Centre x.
    pub x: f32,
    /// Centre y.
    pub y: f32,
    /// Centre z.
    pub z: f32,
    /// Width.
    pub w: f32,
    /// Length.
    pub l: f32,
    /// Height.
    pub h: f32,
    /// Heading.
    pub yaw: f32,
}

impl LidarBox {
    /// Bird's-eye-view intersection over union of the two rotated footprints (z is
    /// ignored, as in PointPillars' rotated NMS). The intersection is the polygon
    /// clipped by the other box's edges (Sutherland–Hodgman); boxes whose bounding
    /// circles are apart are rejected without it.
    pub fn bev_iou(&self, other: &Self) -> f32 {
        let (dx, dy) = (self.x - other.x, self.y - other.y);
        let reach = 0.5
            * (sqrt(self.w * self.w + self.l * self.l)
                + sqrt(other.w * other.w + other.l * other.l));
        if dx * dx + dy * dy >= reach * reach {
            return 0.0;
        }
        let inter = clipped_area(&self.corners(), &other.corners());
        let union = self.w * self.l + other.w * other.l - inter;
        if union > 0.0 {
            (inter / union).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Footprint corners, counter-clockwise.
    fn corners(&self) -> [[f32; 2]; 4] {
        let (s, c) = sin_cos(self.yaw);
        let (hl, hw) = (0.5 * self.l, 0.5 * self.w);
        let along = [c * hl, s * hl];
        let across = [-s * hw, c * hw];
        let corner = |a: f32, b: f32| {
            [
                self.x + a * along[0] + b * across[0],
                self.y + a * along[1] + b * across[1],
            ]
        };
        [
            corner(1.0, 1.0),
            corner(-1.0, 1.0),
            corner(-1.0, -1.0),
            corner(1.0, -1.0),
        ]
    }
}

/// Vertices of a convex polygon clipped by up to 4 half-planes: each clip adds at most
/// one vertex to the 4 of a rectangle; the spare room absorbs rounding in degenerate
/// (near-collinear) cases, where a dropped vertex only changes a near-zero area.
const CLIP_VERTICES: usize = 16;

fn clipped_area(subject: &[[f32; 2]; 4], clip: &[[f32; 2]; 4]) -> f32 {
    let cross = |o: [f32; 2], a: [f32; 2], b: [f32; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut poly: Vec<[f32; 2], CLIP_VERTICES> = Vec::new();
    poly.extend(subject.iter().copied());
    for e in 0..4 {
        let (a, b) = (clip[e], clip[(e + 1) % 4]);
        let input = poly.clone();
        poly.clear();
        for (i, &p) in input.iter().enumerate() {
            let q = input[(i + 1) % input.len()];
            let (sp, sq) = (cross(a, b, p), cross(a, b, q));
            if sp >= 0.0 {
                let _ = poly.push(p);
            }
            if (sp >= 0.0) != (sq >= 0.0) {
                let t = sp / (sp - sq);
                let _ = poly.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
            }
        }
        if poly.len() < 3 {
            return 0.0;
        }
    }
    let mut twice = 0.0;
    for (i, &p) in poly.iter().enumerate() {
        let q = poly[(i + 1) % poly.len()];
        twice += p[0] * q[1] - q[0] * p[1];
    }
    (0.5 * twice).abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::close;

    #[test]
    fn rotated_iou() {
        let a = LidarBox {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            w: 2.0,
            l: 4.0,
            h: 1.0,
            yaw: 0.0,
        };
        assert!(close(a.bev_iou(&a), 1.0));
        // Half a length along the heading: overlap 2×2 of 8 + 8 − 4.
        let shifted = LidarBox { x: 2.0, ..a };
        assert!(close(shifted.bev_iou(&a), 4.0 / 12.0));
        // Turned by 90°: a 2×2 cross-section of two 2×4 boxes.
        let turned = LidarBox {
            yaw: core::f32::consts::FRAC_PI_2,
            ..a
        };
        assert!(
            close(turned.bev_iou(&a), 4.0 / 12.0),
            "{}",
            turned.bev_iou(&a)
        );
        // Turned by 180°: the same footprint.
        let reversed = LidarBox {
            yaw: core::f32::consts::PI,
            ..a
        };
        assert!(close(reversed.bev_iou(&a), 1.0));
        // Rotated 45° square inside a square: 2×2 diamond of area 2 inside a 2×2 box.
        let square = LidarBox { l: 2.0, ..a };
        let diamond = LidarBox {
            w: 2f32.sqrt(),
            l: 2f32.sqrt(),
            yaw: core::f32::consts::FRAC_PI_4,
            ..a
        };
        assert!(close(square.bev_iou(&diamond), 2.0 / 4.0));
        let far = LidarBox { x: 50.0, ..a };
        assert_eq!(far.bev_iou(&a), 0.0);
    }
}
