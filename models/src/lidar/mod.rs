//! Lidar pre- and post-processing for the PointPillars models (`lidar/pfn.onnx`,
//! `lidar/backbone.onnx`).
//!
//! Frame path: [`pillarise`] a sweep into the PFN input, run the PFN, [`scatter`] its
//! per-pillar features onto the BEV grid, run the backbone, [`decode_lidar`] its heads.
//!
//! [`pillarise`] reproduces the generator's reference (`generate.py::pillarise`, rule
//! in `models/README.md`) bit for bit: same `f32` operation order, pillars numbered in
//! order of first appearance, same drop rules. The key → pillar lookup uses a
//! caller-provided [`CellIndex`] table instead of a hash map, so nothing allocates;
//! the table is cleared after every frame by visiting only the cells that were used.
//!
//! - [`pillars`]: the grid, [`pillarise`] and [`scatter`];
//! - [`head`]: the backbone head's output grid and anchors;
//! - [`rotated_box`]: 3-D boxes and their bird's-eye-view overlap;
//! - [`decode`]: head outputs to [`LidarDetection`]s.

pub mod decode;
pub mod head;
pub mod pillars;
pub mod rotated_box;

pub use decode::{LidarDetection, decode_lidar, decode_lidar_box};
pub use head::{
    LIDAR_ANCHORS, LIDAR_BOX_CODE, LIDAR_CLASSES, LIDAR_DIR_BINS, LIDAR_HEAD, LidarAnchor,
    LidarHead,
};
pub use pillars::{
    CellIndex, LidarError, PILLAR_FEATURES, POINTPILLARS_GRID, PillarGrid, PillarStats, pillarise,
    scatter,
};
pub use rotated_box::LidarBox;
