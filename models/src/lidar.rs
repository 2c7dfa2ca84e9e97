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

use core::fmt;

use heapless::Vec;

use crate::ObjectClass;
use crate::math::{sin_cos, sqrt};
use crate::nms::{self, Candidate, PostConfig, PostError, PostStats, TopK};

/// Features per point in the PFN input: `x, y, z, intensity`, offsets from the
/// pillar's mean point (3), offsets from the pillar's cell centre (2).
pub const PILLAR_FEATURES: usize = 9;

/// The pillar grid: what is in range, how it is cut into cells, and the PFN input's
/// capacities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PillarGrid {
    /// `[min, max)` of x in metres.
    pub x_range: [f32; 2],
    /// `[min, max)` of y in metres.
    pub y_range: [f32; 2],
    /// `[min, max)` of z in metres.
    pub z_range: [f32; 2],
    /// Cell side in metres (cells are square).
    pub voxel: f32,
    /// Cells along x (columns).
    pub nx: usize,
    /// Cells along y (rows).
    pub ny: usize,
    /// Pillars in the PFN input (`P`).
    pub max_pillars: usize,
    /// Point slots per pillar (`N`).
    pub max_points: usize,
}

/// The grid the bundled PointPillars models were built for (`lidar/anchors.json`).
pub const POINTPILLARS_GRID: PillarGrid = PillarGrid {
    x_range: [-51.2, 51.2],
    y_range: [-51.2, 51.2],
    z_range: [-5.0, 3.0],
    voxel: 0.4,
    nx: 256,
    ny: 256,
    max_pillars: 12_000,
    max_points: 32,
};

/// A [`CellIndex`] entry packs the pillar number + 1 (0 = no pillar yet) in the low
/// bits and the pillar's kept point count in the top byte.
const PILLAR_BITS: u32 = 24;
const PILLAR_MASK: u32 = (1 << PILLAR_BITS) - 1;

impl PillarGrid {
    /// Cells in the grid (`nx · ny`): the size of the [`CellIndex`] table and of one
    /// BEV channel.
    pub const fn cells(&self) -> usize {
        self.nx * self.ny
    }

    /// Floats in the PFN input `[1, P, N, 9]`.
    pub const fn pillar_tensor_len(&self) -> usize {
        self.max_pillars * self.max_points * PILLAR_FEATURES
    }

    /// Integers in the coordinates array `[P, 2]`.
    pub const fn coords_len(&self) -> usize {
        self.max_pillars * 2
    }

    /// Cell centre offsets: `x_min + voxel/2` and `y_min + voxel/2`, in `f32` (−51.0
    /// for the bundled grid, as in the reference).
    fn centre_offsets(&self) -> [f32; 2] {
        [
            self.x_range[0] + self.voxel * 0.5,
            self.y_range[0] + self.voxel * 0.5,
        ]
    }

    /// Checks that the grid is usable: ordered finite ranges, cell counts that cover
    /// the ranges, and capacities that fit the [`CellIndex`] packing.
    pub fn validate(&self) -> Result<(), LidarError> {
        let bad = |reason| Err(LidarError::InvalidGrid { reason });
        let ordered = |r: [f32; 2]| r[0].is_finite() && r[1].is_finite() && r[0] < r[1];
        if !(ordered(self.x_range) && ordered(self.y_range) && ordered(self.z_range)) {
            return bad("every range must be finite with min < max");
        }
        if !(self.voxel.is_finite() && self.voxel > 0.0) {
            return bad("the voxel size must be positive");
        }
        let covers = |range: [f32; 2], n: usize| {
            let cells = (range[1] - range[0]) / self.voxel + 0.5;
            cells >= 1.0 && cells as usize == n
        };
        if !covers(self.x_range, self.nx) || !covers(self.y_range, self.ny) {
            return bad("nx and ny must equal the x and y extents divided by the voxel size");
        }
        if self.cells() > i32::MAX as usize {
            return bad("nx * ny must fit in an i32");
        }
        if self.max_pillars == 0 || self.max_pillars >= PILLAR_MASK as usize {
            return bad("max_pillars must be between 1 and 2^24 - 2");
        }
        if self.max_points == 0 || self.max_points > 255 {
            return bad("max_points must be between 1 and 255");
        }
        Ok(())
    }
}

/// Why a lidar frame cannot be pre-processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LidarError {
    /// A caller-provided buffer has the wrong length for the grid.
    BufferSize {
        /// Which buffer.
        buffer: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// The grid configuration is inconsistent.
    InvalidGrid {
        /// What is wrong.
        reason: &'static str,
    },
    /// A coordinates row handed to [`scatter`] lies outside the grid.
    CoordOutOfGrid {
        /// The pillar.
        pillar: usize,
        /// Its row.
        row: i32,
        /// Its column.
        col: i32,
    },
}

impl fmt::Display for LidarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferSize {
                buffer,
                expected,
                got,
            } => write!(
                f,
                "{buffer} holds {got} elements, the pillar grid needs {expected}: \
                 size it from the same PillarGrid"
            ),
            Self::InvalidGrid { reason } => write!(f, "invalid pillar grid: {reason}"),
            Self::CoordOutOfGrid { pillar, row, col } => write!(
                f,
                "pillar {pillar} has coordinates (row {row}, col {col}) outside the grid: \
                 pass the coordinates pillarise wrote for the same grid"
            ),
        }
    }
}

/// The key → pillar table [`pillarise`] uses instead of a hash map: one `u32` per grid
/// cell ([`PillarGrid::cells`], 65,536 for the bundled grid, so 256 KB: give it a
/// `static` on firmware).
///
/// It is all zeros between frames: [`CellIndex::new`] zeroes it once, and
/// [`pillarise`] clears exactly the cells it set (their keys are in the coordinates it
/// writes), so per-frame cost follows the number of pillars, not the grid size.
pub struct CellIndex<'a> {
    slots: &'a mut [u32],
}

impl<'a> CellIndex<'a> {
    /// Takes the table's storage and zeroes it.
    pub fn new(slots: &'a mut [u32]) -> Self {
        slots.fill(0);
        Self { slots }
    }
}

/// What [`pillarise`] did with a sweep's points. Every point is counted exactly once
/// in `points_kept`, `points_out_of_range`, `points_non_finite`, `dropped_pillar_full`
/// or `dropped_too_many_pillars`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PillarStats {
    /// Finite points inside the grid's x, y and z ranges.
    pub points_in_range: usize,
    /// Points written to the PFN input.
    pub points_kept: usize,
    /// Finite points outside the ranges.
    pub points_out_of_range: usize,
    /// Points with a NaN or infinite coordinate or intensity: dropped.
    pub points_non_finite: usize,
    /// In-range points dropped because their pillar already held `max_points`.
    pub dropped_pillar_full: usize,
    /// In-range points dropped because their cell had no pillar and `max_pillars` were
    /// already open (the oversize-input policy: a dense scene keeps the pillars that
    /// appear first in the sweep, and the count tells the caller how much was lost).
    pub dropped_too_many_pillars: usize,
    /// Pillars used.
    pub pillars: usize,
    /// Most points kept in one pillar.
    pub max_points_in_pillar: usize,
}

/// Builds the PFN input from a sweep.
///
/// - `points`: `[x, y, z, intensity]` per point (metres; the layout of the float32
///   `[N, 4]` sweeps), in sensor order (the order decides which points are kept);
/// - `cells`: the lookup table, `grid.cells()` entries, all zero (left all zero);
/// - `out_pillars`: the PFN input `[1, P, N, 9]`, fully overwritten (unused slots and
///   pillars are zero);
/// - `out_coords`: `[P, 2]` `(row, col)` per pillar, `(-1, -1)` for unused pillars.
///
/// Points are dropped, never an error: out of range, non-finite (the reference would
/// pass a NaN intensity through to the network; here it is dropped and counted), in a
/// full pillar, or in a new cell once all pillars are open. See [`PillarStats`].
pub fn pillarise(
    points: &[[f32; 4]],
    grid: &PillarGrid,
    cells: &mut CellIndex<'_>,
    out_pillars: &mut [f32],
    out_coords: &mut [i32],
) -> Result<PillarStats, LidarError> {
    grid.validate()?;
    check_len("cell index table", grid.cells(), cells.slots.len())?;
    check_len("pillar tensor", grid.pillar_tensor_len(), out_pillars.len())?;
    check_len("pillar coordinates", grid.coords_len(), out_coords.len())?;

    let slots = &mut *cells.slots;
    let slot_len = PILLAR_FEATURES;
    let pillar_len = grid.max_points * slot_len;
    let [x_min, x_max] = grid.x_range;
    let [y_min, y_max] = grid.y_range;
    let [z_min, z_max] = grid.z_range;
    let mut stats = PillarStats::default();

    // Pass 1: assign points to pillars, copy the raw values into their slots.
    for point in points {
        let [x, y, z, intensity] = *point;
        if !(x.is_finite() && y.is_finite() && z.is_finite() && intensity.is_finite()) {
            stats.points_non_finite += 1;
            continue;
        }
        if !(x >= x_min && x < x_max && y >= y_min && y < y_max && z >= z_min && z < z_max) {
            stats.points_out_of_range += 1;
            continue;
        }
        stats.points_in_range += 1;
        // Non-negative here, so truncation is the reference's floor.
        let ix = (((x - x_min) / grid.voxel) as usize).min(grid.nx - 1);
        let iy = (((y - y_min) / grid.voxel) as usize).min(grid.ny - 1);
        let key = iy * grid.nx + ix;
        let entry = slots[key];
        let (pillar, count) = if entry == 0 {
            if stats.pillars == grid.max_pillars {
                stats.dropped_too_many_pillars += 1;
                continue;
            }
            let pillar = stats.pillars;
            stats.pillars += 1;
            // Fits: validate() bounds nx·ny by i32::MAX.
            out_coords[2 * pillar] = iy as i32;
            out_coords[2 * pillar + 1] = ix as i32;
            (pillar, 0)
        } else {
            (
                ((entry & PILLAR_MASK) - 1) as usize,
                (entry >> PILLAR_BITS) as usize,
            )
        };
        if count == grid.max_points {
            stats.dropped_pillar_full += 1;
            continue;
        }
        let at = pillar * pillar_len + count * slot_len;
        out_pillars[at..at + 4].copy_from_slice(point);
        // validate() bounds the pillar number below 2^24 - 1 and the count by 255.
        slots[key] = (pillar as u32 + 1) | ((count as u32 + 1) << PILLAR_BITS);
        stats.points_kept += 1;
    }

    // Pass 2: derived features, zero padding, and clearing the used cells.
    let [cx0, cy0] = grid.centre_offsets();
    for pillar in 0..stats.pillars {
        let (row, col) = (
            out_coords[2 * pillar] as usize,
            out_coords[2 * pillar + 1] as usize,
        );
        let key = row * grid.nx + col;
        let count = (slots[key] >> PILLAR_BITS) as usize;
        slots[key] = 0;
        stats.max_points_in_pillar = stats.max_points_in_pillar.max(count);

        let block = &mut out_pillars[pillar * pillar_len..(pillar + 1) * pillar_len];
        let (kept, padding) = block.split_at_mut(count * slot_len);
        // Mean of the kept points, summed sequentially in slot order from 0 in f32.
        let mut sum = [0.0f32; 3];
        for slot in kept.chunks_exact(slot_len) {
            for c in 0..3 {
                sum[c] += slot[c];
            }
        }
        let n = count as f32;
        let mean = sum.map(|s| s / n);
        let cx = col as f32 * grid.voxel + cx0;
        let cy = row as f32 * grid.voxel + cy0;
        for slot in kept.chunks_exact_mut(slot_len) {
            slot[4] = slot[0] - mean[0];
            slot[5] = slot[1] - mean[1];
            slot[6] = slot[2] - mean[2];
            slot[7] = slot[0] - cx;
            slot[8] = slot[1] - cy;
        }
        padding.fill(0.0);
    }
    out_pillars[stats.pillars * pillar_len..].fill(0.0);
    out_coords[stats.pillars * 2..].fill(-1);
    Ok(stats)
}

fn check_len(buffer: &'static str, expected: usize, got: usize) -> Result<(), LidarError> {
    if expected == got {
        Ok(())
    } else {
        Err(LidarError::BufferSize {
            buffer,
            expected,
            got,
        })
    }
}

/// Scatters the PFN output onto the backbone's BEV input.
///
/// `pillar_features` is `[C, P]` (the PFN's `[1, C, P, 1]`, flat); `coords` is what
/// [`pillarise`] wrote (`[P, 2]`, rows of `-1` skipped); `out_bev` is `[C, ny, nx]`,
/// cleared, then `bev[c, row, col] = features[c, p]` for every used pillar `p`.
pub fn scatter(
    grid: &PillarGrid,
    pillar_features: &[f32],
    coords: &[i32],
    channels: usize,
    out_bev: &mut [f32],
) -> Result<(), LidarError> {
    let pillars = coords.len() / 2;
    check_len("pillar coordinates", pillars * 2, coords.len())?;
    check_len("pillar features", channels * pillars, pillar_features.len())?;
    check_len("BEV tensor", channels * grid.cells(), out_bev.len())?;
    let cell_of = |pillar: usize| -> Result<Option<usize>, LidarError> {
        let (row, col) = (coords[2 * pillar], coords[2 * pillar + 1]);
        if row < 0 && col < 0 {
            return Ok(None);
        }
        match (usize::try_from(row), usize::try_from(col)) {
            (Ok(r), Ok(c)) if r < grid.ny && c < grid.nx => Ok(Some(r * grid.nx + c)),
            _ => Err(LidarError::CoordOutOfGrid { pillar, row, col }),
        }
    };
    // Check every row before writing, so a bad input leaves the BEV untouched.
    for pillar in 0..pillars {
        cell_of(pillar)?;
    }
    out_bev.fill(0.0);
    for pillar in 0..pillars {
        if let Ok(Some(cell)) = cell_of(pillar) {
            for c in 0..channels {
                out_bev[c * grid.cells() + cell] = pillar_features[c * pillars + pillar];
            }
        }
    }
    Ok(())
}

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
        w: anchor.w * cadence_hal::op::exp(dw),
        l: anchor.l * cadence_hal::op::exp(dl),
        h: anchor.h * cadence_hal::op::exp(dh),
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

    fn data(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/lidar")
            .join(name)
    }

    fn read_npy<T: npyz::Deserialize>(name: &str) -> (std::vec::Vec<u64>, std::vec::Vec<T>) {
        let file = std::fs::File::open(data(name))
            .unwrap_or_else(|e| panic!("{name}: {e} (run models/generate.py)"));
        let npy = npyz::NpyFile::new(std::io::BufReader::new(file)).unwrap();
        let shape = npy.shape().to_vec();
        (shape, npy.into_vec().unwrap())
    }

    fn reference_pillars() -> std::vec::Vec<f32> {
        let mut npz = npyz::npz::NpzArchive::open(data("sweep_000_pillars.npz")).unwrap();
        let npy = npz
            .by_name("pillars")
            .unwrap()
            .expect("array `pillars` in the .npz");
        assert_eq!(npy.shape(), &[1, 12_000, 32, 9]);
        npy.into_vec().unwrap()
    }

    fn sweep(name: &str) -> std::vec::Vec<[f32; 4]> {
        let (shape, flat) = read_npy::<f32>(name);
        assert_eq!(shape[1], 4);
        flat.chunks_exact(4)
            .map(|p| [p[0], p[1], p[2], p[3]])
            .collect()
    }

    struct Buffers {
        table: std::vec::Vec<u32>,
        pillars: std::vec::Vec<f32>,
        coords: std::vec::Vec<i32>,
    }

    impl Buffers {
        fn new(grid: &PillarGrid) -> Self {
            Self {
                table: vec![0; grid.cells()],
                pillars: vec![f32::NAN; grid.pillar_tensor_len()],
                coords: vec![7; grid.coords_len()],
            }
        }
    }

    #[test]
    fn sweep_0_matches_the_numpy_reference_bit_for_bit() {
        let grid = POINTPILLARS_GRID;
        let points = sweep("sweep_000.npy");
        let mut b = Buffers::new(&grid);
        let mut cells = CellIndex::new(&mut b.table);
        // Run twice with a different sweep in between: stale state must not leak.
        for frame in ["sweep_000.npy", "sweep_001.npy", "sweep_000.npy"] {
            let stats = pillarise(
                &sweep(frame),
                &grid,
                &mut cells,
                &mut b.pillars,
                &mut b.coords,
            )
            .unwrap();
            if frame == "sweep_001.npy" {
                continue;
            }
            assert_eq!(stats.points_in_range, 34_641);
            assert_eq!(stats.pillars, 12_000);
            assert_eq!(stats.points_kept, 15_637);
            assert_eq!(stats.max_points_in_pillar, 32);
            assert!(stats.dropped_pillar_full > 0 && stats.dropped_too_many_pillars > 0);
            assert_eq!(
                stats.points_kept
                    + stats.points_out_of_range
                    + stats.points_non_finite
                    + stats.dropped_pillar_full
                    + stats.dropped_too_many_pillars,
                points.len()
            );
        }
        assert!(
            cells.slots.iter().all(|&e| e == 0),
            "the cell table is left clear"
        );

        let (shape, coords) = read_npy::<i32>("sweep_000_coords.npy");
        assert_eq!(shape, [12_000, 2]);
        assert_eq!(b.coords, coords);

        let reference = reference_pillars();
        assert_eq!(reference.len(), b.pillars.len());
        let mismatches = b
            .pillars
            .iter()
            .zip(&reference)
            .filter(|(a, r)| a.to_bits() != r.to_bits())
            .count();
        assert_eq!(
            mismatches, 0,
            "pillar floats differing from the reference (bitwise)"
        );
    }

    #[test]
    fn sparse_sweeps_pad_with_zeros_and_minus_one() {
        let grid = POINTPILLARS_GRID;
        let mut b = Buffers::new(&grid);
        let mut cells = CellIndex::new(&mut b.table);
        let points = [
            [0.1, 0.1, 0.0, 0.5],
            [0.3, 0.2, 1.0, 0.25],
            [f32::NAN, 0.0, 0.0, 0.0],
            [1.0, 1.0, 0.0, f32::INFINITY],
            [60.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 3.0, 0.0], // z max is exclusive
            [-51.2, -51.2, -5.0, 1.0],
        ];
        let stats = pillarise(&points, &grid, &mut cells, &mut b.pillars, &mut b.coords).unwrap();
        assert_eq!(
            stats,
            PillarStats {
                points_in_range: 3,
                points_kept: 3,
                points_out_of_range: 2,
                points_non_finite: 2,
                pillars: 2,
                max_points_in_pillar: 2,
                ..PillarStats::default()
            }
        );
        assert_eq!(&b.coords[..6], &[128, 128, 0, 0, -1, -1]);
        let p0 = &b.pillars[..2 * 9];
        let (mx, my, mz) = ((0.1f32 + 0.3) / 2.0, (0.1f32 + 0.2) / 2.0, 0.5f32);
        assert_eq!(p0[..4], [0.1, 0.1, 0.0, 0.5]);
        let centre = 128.0f32 * 0.4 + -51.0;
        assert_eq!(
            p0[4..9],
            [0.1 - mx, 0.1 - my, 0.0 - mz, 0.1 - centre, 0.1 - centre]
        );
        assert_eq!(p0[9 + 6], 1.0 - mz);
        let used = 2 * 32 * 9;
        assert!(b.pillars[2 * 9..32 * 9].iter().all(|&v| v == 0.0));
        assert!(b.pillars[32 * 9 + 9..used].iter().all(|&v| v == 0.0));
        assert!(b.pillars[used..].iter().all(|&v| v == 0.0));
        assert!(b.coords[4..].iter().all(|&v| v == -1));
    }

    #[test]
    fn capacities_drop_and_count() {
        let grid = PillarGrid {
            max_pillars: 2,
            max_points: 3,
            ..POINTPILLARS_GRID
        };
        let mut b = Buffers::new(&grid);
        let mut cells = CellIndex::new(&mut b.table);
        let mut points = std::vec::Vec::new();
        for i in 0..5 {
            points.push([0.1, 0.1, 0.0, i as f32]); // cell A: 3 kept, 2 dropped
        }
        points.push([10.1, 0.1, 0.0, 0.0]); // cell B
        points.push([20.1, 0.1, 0.0, 0.0]); // cell C: no pillar left
        points.push([10.2, 0.1, 0.0, 0.0]); // cell B again: kept
        let stats = pillarise(&points, &grid, &mut cells, &mut b.pillars, &mut b.coords).unwrap();
        assert_eq!(stats.points_kept, 5);
        assert_eq!(stats.dropped_pillar_full, 2);
        assert_eq!(stats.dropped_too_many_pillars, 1);
        assert_eq!(stats.pillars, 2);
        // Slot j holds the j-th kept point.
        assert_eq!(
            [b.pillars[3], b.pillars[9 + 3], b.pillars[18 + 3]],
            [0.0, 1.0, 2.0]
        );
    }

    #[test]
    fn bad_buffers_and_grids_are_refused() {
        let grid = POINTPILLARS_GRID;
        let mut b = Buffers::new(&grid);
        let mut short = vec![0u32; 10];
        let mut cells = CellIndex::new(&mut short);
        let err = pillarise(&[], &grid, &mut cells, &mut b.pillars, &mut b.coords).unwrap_err();
        assert_eq!(
            err,
            LidarError::BufferSize {
                buffer: "cell index table",
                expected: 65_536,
                got: 10
            }
        );
        assert!(
            err.to_string()
                .contains("cell index table holds 10 elements")
        );
        let mut cells = CellIndex::new(&mut b.table);
        assert!(matches!(
            pillarise(&[], &grid, &mut cells, &mut b.pillars[1..], &mut b.coords),
            Err(LidarError::BufferSize {
                buffer: "pillar tensor",
                ..
            })
        ));
        let wrong_nx = PillarGrid { nx: 200, ..grid };
        assert!(matches!(
            wrong_nx.validate(),
            Err(LidarError::InvalidGrid { .. })
        ));
        let too_many_points = PillarGrid {
            max_points: 256,
            ..grid
        };
        assert!(matches!(
            too_many_points.validate(),
            Err(LidarError::InvalidGrid { .. })
        ));
        assert_eq!(grid.validate(), Ok(()));
    }

    #[test]
    fn scatter_places_features_and_clears_the_rest() {
        let grid = PillarGrid {
            x_range: [0.0, 1.6],
            y_range: [0.0, 1.2],
            nx: 4,
            ny: 3,
            max_pillars: 3,
            ..POINTPILLARS_GRID
        };
        // C = 2, P = 3: [C, P]
        let features = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
        let coords = [2, 1, 0, 3, -1, -1];
        let mut bev = [9.0f32; 2 * 12];
        scatter(&grid, &features, &coords, 2, &mut bev).unwrap();
        let mut want = [0.0f32; 24];
        want[2 * 4 + 1] = 1.0;
        want[3] = 2.0;
        want[12 + 2 * 4 + 1] = 10.0;
        want[12 + 3] = 20.0;
        assert_eq!(bev, want);

        let bad = [2, 1, 3, 0, -1, -1];
        assert_eq!(
            scatter(&grid, &features, &bad, 2, &mut bev),
            Err(LidarError::CoordOutOfGrid {
                pillar: 1,
                row: 3,
                col: 0
            })
        );
        assert_eq!(bev, want, "a refused input leaves the BEV as it was");
        assert!(matches!(
            scatter(&grid, &features[1..], &coords, 2, &mut bev),
            Err(LidarError::BufferSize {
                buffer: "pillar features",
                ..
            })
        ));
    }

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

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-4 * b.abs().max(1.0)
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
