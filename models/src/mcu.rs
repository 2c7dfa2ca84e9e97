//! The microcontroller models' frame paths: what the Cortex-M7 firmware
//! (`targets/firmware`) does around its two embedded packages, and what a
//! hardware-in-the-loop rig runs on the host to compute the reference outputs.
//!
//! - Camera: a region-of-interest crop (`u8` RGB, row-major HWC, any size; natively
//!   [`ROI_SIDE`]×[`ROI_SIDE`]) → [`roi_input`] (bilinear resize to 32×32, `v / 255`,
//!   planar) → the ROI classifier (`roi` `[1, 3, 32, 32]` → `class_probs` `[1, 4]`) →
//!   [`roi_detections`]: one [`McuDetection`] per class, in class order.
//! - Lidar: a sweep of at most [`LIDAR_MAX_POINTS`] `[x, y, z, intensity]` points →
//!   [`bev_input`] (a coarse bird's-eye-view occupancy grid, [`BEV_CHANNELS`] features
//!   per cell) → the BEV cell classifier (`bev` `[1, 4, 16, 16]` → `cell_probs`
//!   `[1, 4, 16, 16]`) → [`bev_detections`]: the [`LIDAR_MAX_DETECTIONS`] occupied cells
//!   with the highest object-class probability.
//!
//! Class indices are the models' output indices: 0 is background, `k ≥ 1` is
//! [`ObjectClass::ALL`]`[k - 1]`. Every step is in `f32` in a fixed order, so the host
//! and the microcontroller compute the same bits.

use core::fmt;

use heapless::Vec;

use crate::ObjectClass;
use crate::camera::{self, CameraError, Normalisation, RgbFrame};

/// Side of the square crop the ROI classifier takes, in pixels.
pub const ROI_SIDE: usize = 32;
/// Channels of a camera crop (RGB).
pub const ROI_CHANNELS: usize = 3;
/// Name of the ROI classifier's input.
pub const ROI_INPUT: &str = "roi";
/// Shape of the ROI classifier's input.
pub const ROI_INPUT_SHAPE: [usize; 4] = [1, ROI_CHANNELS, ROI_SIDE, ROI_SIDE];
/// Floats in the ROI classifier's input.
pub const ROI_INPUT_LEN: usize = ROI_CHANNELS * ROI_SIDE * ROI_SIDE;
/// Name of the ROI classifier's output.
pub const ROI_OUTPUT: &str = "class_probs";
/// Classes the ROI classifier scores: background and every [`ObjectClass`].
pub const ROI_CLASSES: usize = 1 + ObjectClass::COUNT;

/// Most points in a lidar sweep the firmware accepts (its receive buffer holds one
/// sweep of this size); [`bev_input`] itself takes any number.
pub const LIDAR_MAX_POINTS: usize = 512;
/// `[min, max)` of x (forward) in metres covered by the BEV grid.
pub const BEV_X_RANGE: [f32; 2] = [0.0, 32.0];
/// `[min, max)` of y (left) in metres.
pub const BEV_Y_RANGE: [f32; 2] = [-16.0, 16.0];
/// `[min, max)` of z (up) in metres.
pub const BEV_Z_RANGE: [f32; 2] = [-3.0, 3.0];
/// Side of a BEV cell in metres.
pub const BEV_CELL: f32 = 2.0;
/// Cells along x (columns).
pub const BEV_NX: usize = 16;
/// Cells along y (rows).
pub const BEV_NY: usize = 16;
/// Features per cell: occupancy, mean z, max z, mean intensity.
pub const BEV_CHANNELS: usize = 4;
/// Points at which a cell's occupancy feature saturates at 1.
pub const BEV_FULL_CELL: usize = 8;
/// Intensity that maps to 1 in the mean-intensity feature (8-bit sensors' full scale).
pub const BEV_INTENSITY_SCALE: f32 = 255.0;
/// Name of the BEV classifier's input.
pub const BEV_INPUT: &str = "bev";
/// Shape of the BEV classifier's input, planar `[1, C, ny, nx]`.
pub const BEV_INPUT_SHAPE: [usize; 4] = [1, BEV_CHANNELS, BEV_NY, BEV_NX];
/// Floats in the BEV classifier's input.
pub const BEV_INPUT_LEN: usize = BEV_CHANNELS * BEV_NY * BEV_NX;
/// Name of the BEV classifier's output: per cell, background and every class.
pub const BEV_OUTPUT: &str = "cell_probs";
/// Classes the BEV classifier scores per cell.
pub const BEV_CLASSES: usize = 1 + ObjectClass::COUNT;
/// Floats in the BEV classifier's output `[1, BEV_CLASSES, ny, nx]`.
pub const BEV_OUTPUT_LEN: usize = BEV_CLASSES * BEV_NY * BEV_NX;
/// Most detections [`bev_detections`] keeps.
pub const LIDAR_MAX_DETECTIONS: usize = 16;

const _: () = assert!((BEV_X_RANGE[1] - BEV_X_RANGE[0]) / BEV_CELL == BEV_NX as f32);
const _: () = assert!((BEV_Y_RANGE[1] - BEV_Y_RANGE[0]) / BEV_CELL == BEV_NY as f32);

/// One detection as the wire protocol carries it (`runtime::wire::payload::Detection`),
/// in native types.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct McuDetection {
    /// The model's output index (0: background, `k`: [`ObjectClass::ALL`]`[k - 1]`).
    pub class: u32,
    /// Its probability.
    pub score: f32,
    /// Camera: the crop classified, `0, 0, width, height`, then zeros. Lidar: the
    /// cell's column as a box: centre `x, y, z`, size `l, w, h` in metres, yaw 0.
    pub bbox: [f32; 7],
}

/// Why a frame or a model output cannot be turned into inputs or detections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum McuError {
    /// A camera frame that is not 3-channel RGB.
    Channels {
        /// Channels the frame announces.
        got: usize,
    },
    /// The camera crop could not be pre-processed.
    Camera(CameraError),
    /// A tensor of the wrong length.
    TensorLength {
        /// Which tensor.
        tensor: &'static str,
        /// Floats expected.
        expected: usize,
        /// Floats given.
        got: usize,
    },
}

impl fmt::Display for McuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Channels { got } => write!(
                f,
                "camera frame has {got} channels; the ROI classifier takes RGB ({ROI_CHANNELS})"
            ),
            Self::Camera(e) => write!(f, "{e}"),
            Self::TensorLength {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "{tensor} holds {got} floats, the model needs {expected}; use the sizes in cadence_models::mcu"
            ),
        }
    }
}

impl From<CameraError> for McuError {
    fn from(e: CameraError) -> Self {
        Self::Camera(e)
    }
}

fn check_len(tensor: &'static str, expected: usize, got: usize) -> Result<(), McuError> {
    if expected == got {
        Ok(())
    } else {
        Err(McuError::TensorLength {
            tensor,
            expected,
            got,
        })
    }
}

/// A camera frame as the wire protocol describes it (`width × height × channels`
/// bytes, HWC), checked to be RGB.
pub fn camera_frame(
    width: usize,
    height: usize,
    channels: usize,
    pixels: &[u8],
) -> Result<RgbFrame<'_>, McuError> {
    if channels != ROI_CHANNELS {
        return Err(McuError::Channels { got: channels });
    }
    Ok(RgbFrame {
        width,
        height,
        pixels,
    })
}

/// Writes the ROI classifier's input for `frame` into `out` ([`ROI_INPUT_LEN`]
/// floats): resized to [`ROI_SIDE`]² (an exact copy at that size), scaled to `[0, 1]`,
/// planar.
pub fn roi_input(frame: &RgbFrame<'_>, out: &mut [f32]) -> Result<(), McuError> {
    camera::preprocess(frame, Normalisation::Unit, ROI_SIDE, ROI_SIDE, out)?;
    Ok(())
}

/// One detection per class of the ROI classifier's `class_probs`, in class order, each
/// boxed as the whole `width × height` crop.
pub fn roi_detections(
    class_probs: &[f32],
    width: usize,
    height: usize,
) -> Result<[McuDetection; ROI_CLASSES], McuError> {
    check_len(ROI_OUTPUT, ROI_CLASSES, class_probs.len())?;
    let mut bbox = [0.0; 7];
    bbox[2] = width as f32;
    bbox[3] = height as f32;
    Ok(core::array::from_fn(|class| McuDetection {
        class: class as u32,
        score: class_probs[class],
        bbox,
    }))
}

/// What [`bev_input`] did with a sweep's points; each point is counted once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BevStats {
    /// Points inside the grid's x, y and z ranges.
    pub points_in_range: usize,
    /// Finite points outside them.
    pub points_out_of_range: usize,
    /// Points with a NaN or infinite value: dropped.
    pub points_non_finite: usize,
    /// Cells holding at least one point.
    pub occupied_cells: usize,
}

/// Channel offsets of the features in a BEV cell.
const OCCUPANCY: usize = 0;
const MEAN_Z: usize = 1;
const MAX_Z: usize = 2;
const MEAN_INTENSITY: usize = 3;
const PLANE: usize = BEV_NY * BEV_NX;

/// Writes the BEV classifier's input for a sweep into `out` ([`BEV_INPUT_LEN`] floats,
/// planar `[1, 4, ny, nx]`). Per cell: occupancy `min(points, 8) / 8`, the mean and the
/// largest z of its points (metres) and their mean intensity divided by
/// [`BEV_INTENSITY_SCALE`]; all zero for an empty cell. Points are summed in sweep order
/// in `f32`.
pub fn bev_input(
    points: impl IntoIterator<Item = [f32; 4]>,
    out: &mut [f32],
) -> Result<BevStats, McuError> {
    check_len(BEV_INPUT, BEV_INPUT_LEN, out.len())?;
    out.fill(0.0);
    let mut stats = BevStats::default();
    // Pass 1: channel OCCUPANCY counts points, MEAN_Z and MEAN_INTENSITY sum them.
    for [x, y, z, intensity] in points {
        if !(x.is_finite() && y.is_finite() && z.is_finite() && intensity.is_finite()) {
            stats.points_non_finite += 1;
            continue;
        }
        let Some(cell) = cell_of(x, y, z) else {
            stats.points_out_of_range += 1;
            continue;
        };
        stats.points_in_range += 1;
        let count = out[OCCUPANCY * PLANE + cell];
        let max_z = &mut out[MAX_Z * PLANE + cell];
        *max_z = if count == 0.0 { z } else { max_z.max(z) };
        out[OCCUPANCY * PLANE + cell] = count + 1.0;
        out[MEAN_Z * PLANE + cell] += z;
        out[MEAN_INTENSITY * PLANE + cell] += intensity;
    }
    // Pass 2: counts into occupancy, sums into means.
    for cell in 0..PLANE {
        let count = out[OCCUPANCY * PLANE + cell];
        if count == 0.0 {
            continue;
        }
        stats.occupied_cells += 1;
        out[MEAN_Z * PLANE + cell] /= count;
        out[MEAN_INTENSITY * PLANE + cell] /= count * BEV_INTENSITY_SCALE;
        out[OCCUPANCY * PLANE + cell] = count.min(BEV_FULL_CELL as f32) / BEV_FULL_CELL as f32;
    }
    Ok(stats)
}

/// The cell (`row · nx + col`) holding a finite point, if it is in range.
fn cell_of(x: f32, y: f32, z: f32) -> Option<usize> {
    let inside = |v: f32, [min, max]: [f32; 2]| v >= min && v < max;
    if !(inside(x, BEV_X_RANGE) && inside(y, BEV_Y_RANGE) && inside(z, BEV_Z_RANGE)) {
        return None;
    }
    // Non-negative here, so truncation is floor.
    let col = (((x - BEV_X_RANGE[0]) / BEV_CELL) as usize).min(BEV_NX - 1);
    let row = (((y - BEV_Y_RANGE[0]) / BEV_CELL) as usize).min(BEV_NY - 1);
    Some(row * BEV_NX + col)
}

/// The lidar detections: for every occupied cell of `bev` (what [`bev_input`] wrote),
/// its most probable object class in `cell_probs` (ties: the lower index) and that
/// probability; the [`LIDAR_MAX_DETECTIONS`] highest scores are kept, highest first
/// (ties: the lower cell index first). Each box is the cell's column from the grid's
/// floor to its highest point.
pub fn bev_detections(
    bev: &[f32],
    cell_probs: &[f32],
) -> Result<Vec<McuDetection, LIDAR_MAX_DETECTIONS>, McuError> {
    check_len(BEV_INPUT, BEV_INPUT_LEN, bev.len())?;
    check_len(BEV_OUTPUT, BEV_OUTPUT_LEN, cell_probs.len())?;
    let mut kept: Vec<McuDetection, LIDAR_MAX_DETECTIONS> = Vec::new();
    for cell in (0..PLANE).filter(|&cell| bev[OCCUPANCY * PLANE + cell] > 0.0) {
        let (class, score) = (1..BEV_CLASSES)
            .map(|class| (class, cell_probs[class * PLANE + cell]))
            .fold((0, f32::NEG_INFINITY), |best, candidate| {
                if candidate.1 > best.1 {
                    candidate
                } else {
                    best
                }
            });
        let at = kept
            .iter()
            .position(|d| score > d.score)
            .unwrap_or(kept.len());
        if at == LIDAR_MAX_DETECTIONS {
            continue;
        }
        if kept.is_full() {
            kept.pop();
        }
        let (row, col) = (cell / BEV_NX, cell % BEV_NX);
        let floor = BEV_Z_RANGE[0];
        let top = bev[MAX_Z * PLANE + cell];
        let detection = McuDetection {
            class: class as u32,
            score,
            bbox: [
                BEV_X_RANGE[0] + (col as f32 + 0.5) * BEV_CELL,
                BEV_Y_RANGE[0] + (row as f32 + 0.5) * BEV_CELL,
                (floor + top) * 0.5,
                BEV_CELL,
                BEV_CELL,
                top - floor,
                0.0,
            ],
        };
        // Room was made above, and `at` is at most the length.
        let _ = kept.insert(at, detection);
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crop(width: usize, height: usize) -> std::vec::Vec<u8> {
        (0..width * height * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect()
    }

    #[test]
    fn a_native_size_crop_is_copied_planar_and_scaled() {
        let pixels = crop(ROI_SIDE, ROI_SIDE);
        let frame = camera_frame(ROI_SIDE, ROI_SIDE, 3, &pixels).unwrap();
        let mut input = [0.0; ROI_INPUT_LEN];
        roi_input(&frame, &mut input).unwrap();
        for (i, &byte) in pixels.iter().enumerate() {
            let (pixel, channel) = (i / 3, i % 3);
            assert_eq!(
                input[channel * ROI_SIDE * ROI_SIDE + pixel],
                f32::from(byte) / 255.0
            );
        }
    }

    #[test]
    fn other_crop_sizes_are_resized_and_wrong_frames_refused() {
        let pixels = crop(48, 20);
        let mut input = [-1.0; ROI_INPUT_LEN];
        roi_input(&camera_frame(48, 20, 3, &pixels).unwrap(), &mut input).unwrap();
        assert!(input.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(
            camera_frame(32, 32, 1, &pixels).unwrap_err(),
            McuError::Channels { got: 1 }
        );
        let short = camera_frame(48, 21, 3, &pixels).unwrap();
        assert!(matches!(
            roi_input(&short, &mut input),
            Err(McuError::Camera(CameraError::FrameSize { .. }))
        ));
    }

    #[test]
    fn roi_detections_are_one_per_class_boxing_the_crop() {
        let probs = [0.1, 0.2, 0.3, 0.4];
        let detections = roi_detections(&probs, 40, 30).unwrap();
        for (class, detection) in detections.iter().enumerate() {
            assert_eq!(detection.class, class as u32);
            assert_eq!(detection.score, probs[class]);
            assert_eq!(detection.bbox, [0.0, 0.0, 40.0, 30.0, 0.0, 0.0, 0.0]);
        }
        assert!(matches!(
            roi_detections(&probs[..3], 40, 30),
            Err(McuError::TensorLength {
                expected: 4,
                got: 3,
                ..
            })
        ));
    }

    #[test]
    fn bev_input_counts_averages_and_drops_points() {
        let points = [
            [1.0, -15.0, 0.5, 10.0],
            [1.5, -14.5, -0.5, 30.0],
            [31.9, 15.9, 2.0, 1.0],
            [32.0, 0.0, 0.0, 0.0],
            [5.0, 0.0, 3.0, 0.0],
            [f32::NAN, 0.0, 0.0, 0.0],
            [5.0, 0.0, 0.0, f32::INFINITY],
        ];
        let mut bev = [9.0; BEV_INPUT_LEN];
        let stats = bev_input(points, &mut bev).unwrap();
        assert_eq!(
            stats,
            BevStats {
                points_in_range: 3,
                points_out_of_range: 2,
                points_non_finite: 2,
                occupied_cells: 2,
            }
        );
        let first = 0;
        assert_eq!(bev[OCCUPANCY * PLANE + first], 2.0 / 8.0);
        assert_eq!(bev[MEAN_Z * PLANE + first], 0.0);
        assert_eq!(bev[MAX_Z * PLANE + first], 0.5);
        assert_eq!(bev[MEAN_INTENSITY * PLANE + first], 40.0 / (2.0 * 255.0));
        let last = PLANE - 1;
        assert_eq!(bev[OCCUPANCY * PLANE + last], 1.0 / 8.0);
        assert_eq!(bev[MAX_Z * PLANE + last], 2.0);
        let occupied = |cell: usize| cell == first || cell == last;
        for channel in 0..BEV_CHANNELS {
            for cell in (0..PLANE).filter(|&cell| !occupied(cell)) {
                assert_eq!(bev[channel * PLANE + cell], 0.0);
            }
        }
    }

    #[test]
    fn occupancy_saturates() {
        let mut bev = [0.0; BEV_INPUT_LEN];
        bev_input([[10.0, 0.0, 0.0, 0.0]; 3 * BEV_FULL_CELL], &mut bev).unwrap();
        assert_eq!(bev.iter().take(PLANE).copied().fold(0.0, f32::max), 1.0);
    }

    /// Class probabilities where cell `c`'s best object class is `1 + c % 3` with
    /// probability `score(c)`.
    fn probs(score: impl Fn(usize) -> f32) -> std::vec::Vec<f32> {
        let mut probs = vec![0.0; BEV_OUTPUT_LEN];
        for cell in 0..PLANE {
            probs[cell] = 0.9;
            probs[(1 + cell % 3) * PLANE + cell] = score(cell);
        }
        probs
    }

    #[test]
    fn bev_detections_keep_the_best_occupied_cells_highest_first() {
        let points: std::vec::Vec<[f32; 4]> = (0..PLANE)
            .map(|cell| {
                let (row, col) = (cell / BEV_NX, cell % BEV_NX);
                [col as f32 * 2.0 + 1.0, row as f32 * 2.0 - 15.0, 1.0, 0.0]
            })
            .collect();
        let mut bev = [0.0; BEV_INPUT_LEN];
        bev_input(points, &mut bev).unwrap();
        // Every cell occupied; scores rise with the cell index but tie in pairs.
        let cell_probs = probs(|cell| (cell / 2) as f32 / PLANE as f32);
        let detections = bev_detections(&bev, &cell_probs).unwrap();
        assert_eq!(detections.len(), LIDAR_MAX_DETECTIONS);
        let expected_cells = (PLANE - LIDAR_MAX_DETECTIONS..PLANE)
            .collect::<std::vec::Vec<_>>()
            .chunks(2)
            .rev()
            .flatten()
            .copied()
            .collect::<std::vec::Vec<_>>();
        for (detection, &cell) in detections.iter().zip(&expected_cells) {
            let (row, col) = (cell / BEV_NX, cell % BEV_NX);
            assert_eq!(detection.class, 1 + (cell % 3) as u32);
            assert_eq!(detection.score, (cell / 2) as f32 / PLANE as f32);
            assert_eq!(
                detection.bbox,
                [
                    col as f32 * 2.0 + 1.0,
                    row as f32 * 2.0 - 15.0,
                    -1.0,
                    2.0,
                    2.0,
                    4.0,
                    0.0
                ]
            );
        }
    }

    #[test]
    fn bev_detections_skip_empty_cells_and_check_lengths() {
        let mut bev = [0.0; BEV_INPUT_LEN];
        bev_input([[3.0, 1.0, 0.0, 0.0]], &mut bev).unwrap();
        let detections = bev_detections(&bev, &probs(|_| 0.05)).unwrap();
        assert_eq!(detections.len(), 1);
        assert_eq!(detections[0].bbox[..2], [3.0, 1.0]);
        assert!(matches!(
            bev_detections(&bev[1..], &probs(|_| 0.05)),
            Err(McuError::TensorLength {
                tensor: BEV_INPUT,
                ..
            })
        ));
    }
}
