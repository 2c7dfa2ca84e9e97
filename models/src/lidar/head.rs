//! The lidar head's output grid and its anchors (`lidar/anchors.json`).

use crate::ObjectClass;

/// One anchor of the lidar head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LidarAnchor {
    /// The class the anchor was sized for.
    pub class: ObjectClass,
    /// Width (across the heading), metres.
    pub w: f32,
    /// Length (along the heading), metres.
    pub l: f32,
    /// Height, metres.
    pub h: f32,
    /// Centre z, metres.
    pub z: f32,
    /// Heading, radians.
    pub yaw: f32,
}

/// The lidar head's output grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LidarHead {
    /// Output rows (y).
    pub rows: usize,
    /// Output columns (x).
    pub cols: usize,
    /// x of the left edge of column 0, metres.
    pub x_min: f32,
    /// y of the edge of row 0, metres.
    pub y_min: f32,
    /// Output cell side, metres (pillar size × output stride).
    pub cell: f32,
}

/// The bundled backbone's head: 128×128 cells of 0.8 m over the pillar grid.
pub const LIDAR_HEAD: LidarHead = LidarHead {
    rows: 128,
    cols: 128,
    x_min: -51.2,
    y_min: -51.2,
    cell: 0.8,
};

/// Class channels per anchor in `cls_scores` (car, pedestrian, cyclist).
pub const LIDAR_CLASSES: usize = ObjectClass::COUNT;
/// Box channels per anchor in `box_preds`: `(dx, dy, dz, dw, dl, dh, dyaw)`.
pub const LIDAR_BOX_CODE: usize = 7;
/// Direction bins per anchor in `dir_scores`.
pub const LIDAR_DIR_BINS: usize = 2;

const HALF_PI: f32 = core::f32::consts::FRAC_PI_2;

/// The anchors per location, in channel order `a` (`lidar/anchors.json`).
pub const LIDAR_ANCHORS: [LidarAnchor; 6] = [
    lidar_anchor(ObjectClass::Car, 1.6, 3.9, 1.56, -1.0, 0.0),
    lidar_anchor(ObjectClass::Car, 1.6, 3.9, 1.56, -1.0, HALF_PI),
    lidar_anchor(ObjectClass::Pedestrian, 0.6, 0.8, 1.73, -0.9, 0.0),
    lidar_anchor(ObjectClass::Pedestrian, 0.6, 0.8, 1.73, -0.9, HALF_PI),
    lidar_anchor(ObjectClass::Cyclist, 0.6, 1.76, 1.73, -0.9, 0.0),
    lidar_anchor(ObjectClass::Cyclist, 0.6, 1.76, 1.73, -0.9, HALF_PI),
];

const fn lidar_anchor(class: ObjectClass, w: f32, l: f32, h: f32, z: f32, yaw: f32) -> LidarAnchor {
    LidarAnchor {
        class,
        w,
        l,
        h,
        z,
        yaw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lidar::POINTPILLARS_GRID;

    #[test]
    fn anchors_and_grid_match_anchors_json() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/lidar/anchors.json"))
                .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let f = |v: &serde_json::Value| v.as_f64().unwrap() as f32;
        let g = &json["grid"];
        let grid = POINTPILLARS_GRID;
        assert_eq!([f(&g["x_range"][0]), f(&g["x_range"][1])], grid.x_range);
        assert_eq!([f(&g["y_range"][0]), f(&g["y_range"][1])], grid.y_range);
        assert_eq!([f(&g["z_range"][0]), f(&g["z_range"][1])], grid.z_range);
        assert_eq!(f(&g["voxel"]), grid.voxel);
        assert_eq!((g["nx"].as_u64(), g["ny"].as_u64()), (Some(256), Some(256)));
        assert_eq!(g["max_pillars"], grid.max_pillars);
        assert_eq!(g["max_points"], grid.max_points);
        assert_eq!(json["feature_size"][0], LIDAR_HEAD.rows);
        assert_eq!(json["feature_size"][1], LIDAR_HEAD.cols);
        let stride = json["output_stride"].as_u64().unwrap() as f32;
        assert_eq!(stride * grid.voxel, LIDAR_HEAD.cell);
        assert_eq!(json["anchors_per_location"], LIDAR_ANCHORS.len());
        for (i, name) in ["car", "pedestrian", "cyclist"].into_iter().enumerate() {
            assert_eq!(json["classes"][i], name);
        }
        for (j, r) in json["anchors"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&LIDAR_ANCHORS)
        {
            assert_eq!(j["cls"], r.class.name());
            assert_eq!(
                [f(&j["w"]), f(&j["l"]), f(&j["h"]), f(&j["z"])],
                [r.w, r.l, r.h, r.z]
            );
            assert!((f(&j["yaw"]) - r.yaw).abs() < 1e-6);
        }
    }
}
