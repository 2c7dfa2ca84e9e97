//! Cadence's model families: what runs around the network in the frame path.
//!
//! Everything here is `no_std`, allocation-free and sized by fixed capacities, so it
//! runs inside the zero-allocation frame loop on every target.
//!
//! - [`camera`]: RGB frame → detector input tensor;
//! - [`ssd`]: the camera SSD head's outputs → [`ssd::Detection`]s;
//! - [`lidar`]: point cloud → pillars → BEV grid, and lidar head outputs →
//!   [`lidar::LidarDetection`]s;
//! - [`nms`]: the score threshold, top-k and non-maximum suppression both share;
//! - [`mcu`]: the microcontroller firmware's ROI and BEV classifiers' frame paths
//!   (frame → model input → detections), which a HIL rig reruns on the host.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

pub mod camera;
pub mod lidar;
mod math;
pub mod mcu;
pub mod nms;
pub mod ssd;

/// What a detection is. Both model families detect the same three road users; each
/// maps its own class indices onto this (the camera model has a background class 0,
/// the lidar model does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectClass {
    /// A car.
    Car,
    /// A pedestrian.
    Pedestrian,
    /// A cyclist.
    Cyclist,
}

impl ObjectClass {
    /// How many classes there are; the length of per-class tables.
    pub const COUNT: usize = 3;
    /// Every class, in index order.
    pub const ALL: [Self; Self::COUNT] = [Self::Car, Self::Pedestrian, Self::Cyclist];

    /// The position of this class in per-class tables (`Car` = 0).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A lower-case name, for logs and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Car => "car",
            Self::Pedestrian => "pedestrian",
            Self::Cyclist => "cyclist",
        }
    }
}

impl fmt::Display for ObjectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
