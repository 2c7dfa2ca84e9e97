//! The image's two perception pipelines, each an embedded package on its own engine:
//! camera crop → ROI classifier → one detection per class, and lidar sweep → BEV
//! classifier → the best occupied cells. The steps around the engines are
//! `cadence_models::mcu`'s, so a rig computes the same outputs on the host.

use core::fmt;

use cadence_hal::cpu::CpuBackend;
use cadence_models::camera::RgbFrame;
use cadence_models::mcu::{
    self, BEV_INPUT, BEV_INPUT_LEN, BEV_INPUT_SHAPE, BEV_OUTPUT, LIDAR_MAX_DETECTIONS,
    McuDetection, McuError, ROI_CLASSES, ROI_INPUT, ROI_OUTPUT,
};
use cadence_runtime::engine::SelftestReport;
use cadence_runtime::{Engine, EngineError, Package, PackageError};
use defmt::info;
use heapless::Vec;

/// Bytes stored from a 64-byte boundary: the alignment `Package::parse` requires of a
/// package (its sections are read in place as `f32`) and the engine of its arena.
#[repr(C, align(64))]
pub struct Aligned<Bytes: ?Sized>(pub Bytes);

/// The ROI classifier package, in flash, parsed in place.
static ROI_PACKAGE: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/roi.cpk")));
/// The BEV classifier package.
static BEV_PACKAGE: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/bev.cpk")));

/// Why the pipelines could not be set up.
pub enum SetupError {
    /// An embedded package is damaged or from an unsupported format version.
    Package(&'static str, PackageError),
    /// The engine refused a package or its arena, or a self-test case could not run.
    Engine(&'static str, EngineError),
    /// A package lacks the input the pipeline writes.
    MissingInput(&'static str, &'static str),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Package(name, e) => write!(f, "the embedded {name} package is unusable: {e}"),
            Self::Engine(name, e) => write!(f, "the {name} engine failed: {e}"),
            Self::MissingInput(name, input) => write!(
                f,
                "the embedded {name} package has no input `{input}`; rebuild it with tools/firmware.sh"
            ),
        }
    }
}

/// Why one frame produced no detections.
#[derive(Debug)]
pub enum FrameError {
    /// The frame is not one the pipeline takes (the rig sent the wrong size or shape).
    Input(McuError),
    /// The engine failed on it.
    Engine(EngineError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(e) => write!(f, "frame refused: {e}"),
            Self::Engine(e) => write!(f, "engine failed: {e}"),
        }
    }
}

impl From<McuError> for FrameError {
    fn from(e: McuError) -> Self {
        Self::Input(e)
    }
}

impl From<EngineError> for FrameError {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}

/// The lidar detections of one sweep.
pub type LidarDetections = Vec<McuDetection, LIDAR_MAX_DETECTIONS>;

/// Both engines, loaded.
pub struct Pipelines {
    camera: Engine<'static, 'static, CpuBackend>,
    /// Position of [`ROI_INPUT`] among the camera engine's inputs.
    roi_input: usize,
    lidar: Engine<'static, 'static, CpuBackend>,
    /// The last sweep's grid: the engine may reuse its input's memory during a run,
    /// and the detections need the grid after it.
    bev: [f32; BEV_INPUT_LEN],
}

impl Pipelines {
    /// Parses both embedded packages and loads each on the CPU backend in its arena.
    pub fn load(
        roi_arena: &'static mut [u8],
        bev_arena: &'static mut [u8],
    ) -> Result<Self, SetupError> {
        let camera = load("camera", &ROI_PACKAGE.0, roi_arena)?;
        let lidar = load("lidar", &BEV_PACKAGE.0, bev_arena)?;
        let roi_input = camera
            .input_index(ROI_INPUT)
            .ok_or(SetupError::MissingInput("camera", ROI_INPUT))?;
        Ok(Self {
            camera,
            roi_input,
            lidar,
            bev: [0.0; BEV_INPUT_LEN],
        })
    }

    /// Runs both packages' test vectors, logs the reports, and says whether all passed.
    pub fn selftest(&mut self) -> Result<bool, SetupError> {
        let mut passed = true;
        for (name, engine) in [("camera", &mut self.camera), ("lidar", &mut self.lidar)] {
            let report = engine.selftest().map_err(|e| SetupError::Engine(name, e))?;
            log_report(name, &report);
            passed &= report.passed();
        }
        Ok(passed)
    }

    /// Classifies one camera crop: one detection per class, in class order.
    pub fn camera(
        &mut self,
        frame: &RgbFrame<'_>,
    ) -> Result<[McuDetection; ROI_CLASSES], FrameError> {
        mcu::roi_input(frame, self.camera.input_mut(self.roi_input)?)?;
        self.camera.run()?;
        Ok(mcu::roi_detections(
            self.camera.output(ROI_OUTPUT)?,
            frame.width,
            frame.height,
        )?)
    }

    /// Classifies the cells of one lidar sweep (`[x, y, z, intensity]` per point).
    pub fn lidar(
        &mut self,
        points: impl IntoIterator<Item = [f32; 4]>,
    ) -> Result<LidarDetections, FrameError> {
        mcu::bev_input(points, &mut self.bev)?;
        self.lidar
            .set_input_f32(BEV_INPUT, &BEV_INPUT_SHAPE, &self.bev)?;
        self.lidar.run()?;
        Ok(mcu::bev_detections(
            &self.bev,
            self.lidar.output(BEV_OUTPUT)?,
        )?)
    }
}

/// Parses `bytes` and loads the package on the CPU backend in `arena`.
fn load(
    name: &'static str,
    bytes: &'static [u8],
    arena: &'static mut [u8],
) -> Result<Engine<'static, 'static, CpuBackend>, SetupError> {
    let package = Package::parse(bytes).map_err(|e| SetupError::Package(name, e))?;
    info!(
        "{} package {} ({} bytes, format {}.{}), arena {} bytes, {} test cases",
        name,
        package.provenance().source_name(),
        package.file_len(),
        package.format_version().0,
        package.format_version().1,
        arena.len(),
        package.test_vectors().len()
    );
    Engine::load(&package, CpuBackend, arena).map_err(|e| SetupError::Engine(name, e))
}

fn log_report(name: &str, report: &SelftestReport<'_>) {
    for output in &report.outputs {
        info!(
            "{} output {}: {} cases, max abs error {}, {} mismatches",
            name, output.name, report.cases, output.max_abs_error, output.mismatches
        );
        if let Some(first) = output.first_mismatch {
            info!(
                "{}   first mismatch: case {} element {}: got {} expected {}",
                name, first.case, first.index, first.got, first.expected
            );
        }
    }
}
