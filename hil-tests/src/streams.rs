//! The frames a rig sends and the outputs it expects back.
//!
//! Each recorded frame is turned once, before streaming, into the exact payload the
//! rig sends (camera images resized to the stream's frame size, lidar sweeps cut to its
//! point budget) and run through the same frame path the host DUT uses
//! ([`CameraChain`], [`LidarChain`]) on the host CPU backend: its detections, as the
//! wire carries them, are the reference the DUT's answers are compared with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cadence_hal::cpu::CpuBackend;
use cadence_host::dut::{camera_result, lidar_result};
use cadence_host::pipeline::samples::{camera_frames, lidar_sweeps};
use cadence_host::pipeline::{
    CameraChain, Counters, CpuBackends, Isolation, LidarChain, PipelineError,
};
use cadence_models::camera::RgbFrame;
use cadence_models::mcu;
use cadence_runtime::engine::Engine;
use cadence_runtime::package::{AlignedBytes, Package};
use cadence_runtime::wire::payload::{
    CameraFrameHeader, Detection, LidarFrameHeader, LidarPoint, write_parts,
};
use cadence_runtime::wire::{LIDAR_POINT_LEN, MAX_PAYLOAD_LEN};
use thiserror::Error;
use zerocopy::IntoBytes;
use zerocopy::little_endian::{F32, U16, U32};

use crate::rig::{PipelineKind, ReferenceSpec, StreamKind, StreamSpec};

/// Why a stream's frames or reference cannot be prepared.
#[derive(Debug, Error)]
pub enum StreamError {
    /// The recorded frames cannot be read.
    #[error("stream `{stream}`: {source}")]
    Samples {
        /// The stream.
        stream: &'static str,
        /// Why.
        source: PipelineError,
    },
    /// The reference packages cannot be loaded.
    #[error(
        "stream `{stream}`: the reference models: {source} (build them with `bash tools/build-models.sh`, or pass --models DIR)"
    )]
    Reference {
        /// The stream.
        stream: &'static str,
        /// Why.
        source: PipelineError,
    },
    /// The reference frame path failed on a recorded frame.
    #[error("stream `{stream}`: the reference run failed on recorded frame {index}: {reason}")]
    ReferenceRun {
        /// The stream.
        stream: &'static str,
        /// The frame.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A frame does not fit one wire message.
    #[error(
        "stream `{stream}`: a frame of {bytes} bytes exceeds the wire's {MAX_PAYLOAD_LEN}-byte payload; lower its size"
    )]
    TooLarge {
        /// The stream.
        stream: &'static str,
        /// Its payload size.
        bytes: usize,
    },
}

/// One recorded frame, ready to send, with its expected detections.
pub struct Sample {
    /// The frame message's payload.
    pub payload: Vec<u8>,
    /// What the reference detected, as the wire carries it.
    pub expected: Vec<Detection>,
}

/// A stream as the rig runs it.
pub struct StreamPlan {
    /// Camera or lidar.
    pub kind: StreamKind,
    /// Time between frames, scaled.
    pub period: Duration,
    /// Relative deadline, scaled.
    pub deadline: Duration,
    /// The recorded frames, sent in turn.
    pub samples: Vec<Sample>,
}

impl StreamPlan {
    /// The sample frame `index` of the stream sends (they cycle).
    pub fn sample(&self, index: usize) -> &Sample {
        &self.samples[index % self.samples.len()]
    }
}

/// Prepares `spec`'s frames and their reference outputs; `resolve` expands the
/// `{models}` placeholder in package paths, `time_scale` stretches periods and
/// deadlines.
pub fn prepare(
    spec: &StreamSpec,
    reference: &ReferenceSpec,
    time_scale: f64,
    resolve: impl Fn(&str) -> PathBuf,
) -> Result<StreamPlan, StreamError> {
    let stream = spec.kind.name();
    let period = Duration::from_secs_f64(time_scale / spec.rate_hz);
    let deadline = Duration::from_secs_f64(time_scale * spec.deadline_ms / 1000.0);
    let deadline_us = U32::new(u32::try_from(deadline.as_micros()).unwrap_or(u32::MAX));
    let samples_error = |source| StreamError::Samples { stream, source };
    let reference_error = |source| StreamError::Reference { stream, source };
    let run_error = |index: usize, reason: String| StreamError::ReferenceRun {
        stream,
        index,
        reason,
    };
    let mut counters = Counters::default();
    let samples = match (spec.kind, spec.pipeline) {
        (StreamKind::Camera, PipelineKind::Mcu) => {
            let package = resolve(reference.camera.as_deref().unwrap_or_default());
            let mut model = McuModel::load(&package, mcu::ROI_INPUT).map_err(reference_error)?;
            let (width, height) = (spec.width.unwrap_or(0), spec.height.unwrap_or(0));
            let frames = camera_frames(&spec.data).map_err(samples_error)?;
            let mut samples = Vec::with_capacity(frames.len());
            for (index, frame) in frames.iter().enumerate() {
                let pixels = centre_crop(&frame.rgb(), usize::from(width), usize::from(height));
                let rgb = RgbFrame {
                    width: usize::from(width),
                    height: usize::from(height),
                    pixels: &pixels,
                };
                let expected = model.roi(&rgb).map_err(|reason| run_error(index, reason))?;
                let header = camera_header(width, height, deadline_us);
                samples.push(Sample {
                    payload: join(stream, &[header.as_bytes(), &pixels])?,
                    expected,
                });
            }
            samples
        }
        (StreamKind::Lidar, PipelineKind::Mcu) => {
            let package = resolve(reference.lidar.as_deref().unwrap_or_default());
            let mut model = McuModel::load(&package, mcu::BEV_INPUT).map_err(reference_error)?;
            let budget = spec
                .max_points
                .map_or(mcu::LIDAR_MAX_POINTS, |m| m as usize);
            let sweeps = lidar_sweeps(&spec.data).map_err(samples_error)?;
            let mut samples = Vec::with_capacity(sweeps.len());
            for (index, sweep) in sweeps.iter().enumerate() {
                let sweep = &sweep[..sweep.len().min(budget)];
                let expected = model
                    .bev(sweep)
                    .map_err(|reason| run_error(index, reason))?;
                samples.push(Sample {
                    payload: lidar_payload(stream, sweep, deadline_us)?,
                    expected,
                });
            }
            samples
        }
        (StreamKind::Camera, PipelineKind::Host) => {
            let (width, height) = (spec.width.unwrap_or(0), spec.height.unwrap_or(0));
            let package = resolve(reference.camera.as_deref().unwrap_or_default());
            let mut chain =
                CameraChain::<CpuBackend>::load(&package, None, Isolation::None, &CpuBackends)
                    .map_err(reference_error)?;
            let frames = camera_frames(&spec.data).map_err(samples_error)?;
            let mut samples = Vec::with_capacity(frames.len());
            for (index, frame) in frames.iter().enumerate() {
                let pixels = resize_nearest(&frame.rgb(), usize::from(width), usize::from(height));
                let rgb = RgbFrame {
                    width: usize::from(width),
                    height: usize::from(height),
                    pixels: &pixels,
                };
                chain
                    .run(&rgb, false, Duration::MAX, &mut counters)
                    .map_err(|e| run_error(index, e.to_string()))?;
                let header = camera_header(width, height, deadline_us);
                samples.push(Sample {
                    payload: join(stream, &[header.as_bytes(), &pixels])?,
                    expected: chain.detections().iter().map(camera_result).collect(),
                });
            }
            samples
        }
        (StreamKind::Lidar, PipelineKind::Host) => {
            let pfn = resolve(reference.lidar_pfn.as_deref().unwrap_or_default());
            let backbone = resolve(reference.lidar_backbone.as_deref().unwrap_or_default());
            let mut chain = LidarChain::<CpuBackend>::load(
                (&pfn, &backbone),
                None,
                Isolation::None,
                &CpuBackends,
            )
            .map_err(reference_error)?;
            let budget = spec.max_points.map_or(MAX_WIRE_POINTS, |m| m as usize);
            let sweeps = lidar_sweeps(&spec.data).map_err(samples_error)?;
            let mut samples = Vec::with_capacity(sweeps.len());
            for (index, sweep) in sweeps.iter().enumerate() {
                let sweep = &sweep[..sweep.len().min(budget)];
                chain
                    .run(sweep, false, Duration::MAX, &mut counters)
                    .map_err(|e| run_error(index, e.to_string()))?;
                samples.push(Sample {
                    payload: lidar_payload(stream, sweep, deadline_us)?,
                    expected: chain.detections().iter().map(lidar_result).collect(),
                });
            }
            samples
        }
    };
    Ok(StreamPlan {
        kind: spec.kind,
        period,
        deadline,
        samples,
    })
}

/// The header of a camera frame of `width × height` RGB pixels.
pub(crate) fn camera_header(width: u16, height: u16, deadline_us: U32) -> CameraFrameHeader {
    CameraFrameHeader {
        width: U16::new(width),
        height: U16::new(height),
        channels: U16::new(3),
        reserved: U16::ZERO,
        deadline_us,
    }
}

/// A lidar frame's payload: its header, then `sweep`'s points (`stream` names it in an
/// error).
pub(crate) fn lidar_payload(
    stream: &'static str,
    sweep: &[[f32; 4]],
    deadline_us: U32,
) -> Result<Vec<u8>, StreamError> {
    let header = LidarFrameHeader {
        points: U32::new(u32::try_from(sweep.len()).unwrap_or(u32::MAX)),
        deadline_us,
    };
    let points: Vec<LidarPoint> = sweep
        .iter()
        .map(|p| LidarPoint {
            xyzi: p.map(F32::new),
        })
        .collect();
    join(stream, &[header.as_bytes(), points.as_bytes()])
}

/// A microcontroller model (one package, `cadence_models::mcu`'s frame paths) loaded
/// on the host CPU backend, as the firmware loads it on its own.
struct McuModel {
    path: PathBuf,
    bytes: AlignedBytes,
    arena: AlignedBytes,
    /// The model's input, as `cadence_models::mcu` writes it.
    input: Vec<f32>,
}

impl McuModel {
    /// Reads `path` and checks it parses, loads and has input `input`.
    fn load(path: &Path, input: &str) -> Result<Self, PipelineError> {
        let bytes = AlignedBytes::read(path).map_err(|source| PipelineError::ReadPackage {
            path: path.to_owned(),
            source,
        })?;
        let package =
            Package::parse(bytes.as_slice()).map_err(|source| PipelineError::BadPackage {
                path: path.to_owned(),
                source,
            })?;
        let Some(io) = package.inputs().find(|io| io.name() == input) else {
            return Err(PipelineError::Interface {
                path: path.to_owned(),
                reason: format!("it has no input `{input}`; is it the firmware's model?"),
            });
        };
        let len = io.shape().dims().iter().product();
        let arena = AlignedBytes::zeroed(package.arena_bytes());
        Ok(Self {
            path: path.to_owned(),
            bytes,
            arena,
            input: vec![0.0; len],
        })
    }

    /// Runs the package on `self.input` and hands `output` to `decode`.
    fn run<T>(
        &mut self,
        input: &str,
        output: &str,
        decode: impl FnOnce(&[f32], &[f32]) -> Result<T, String>,
    ) -> Result<T, String> {
        let package = Package::parse(self.bytes.as_slice()).map_err(|e| e.to_string())?;
        let mut engine = Engine::load(&package, CpuBackend, self.arena.as_mut_slice())
            .map_err(|e| format!("`{}`: {e}", self.path.display()))?;
        let shape: Vec<usize> = package
            .inputs()
            .find(|io| io.name() == input)
            .map(|io| io.shape().dims().to_vec())
            .unwrap_or_default();
        engine
            .set_input_f32(input, &shape, &self.input)
            .map_err(|e| e.to_string())?;
        engine.run().map_err(|e| e.to_string())?;
        decode(
            &self.input,
            engine.output(output).map_err(|e| e.to_string())?,
        )
    }

    /// The ROI classifier's detections for one crop.
    fn roi(&mut self, crop: &RgbFrame<'_>) -> Result<Vec<Detection>, String> {
        mcu::roi_input(crop, &mut self.input).map_err(|e| e.to_string())?;
        let (width, height) = (crop.width, crop.height);
        self.run(mcu::ROI_INPUT, mcu::ROI_OUTPUT, |_, probs| {
            let detections =
                mcu::roi_detections(probs, width, height).map_err(|e| e.to_string())?;
            Ok(detections.iter().map(mcu_result).collect())
        })
    }

    /// The BEV cell classifier's detections for one sweep.
    fn bev(&mut self, sweep: &[[f32; 4]]) -> Result<Vec<Detection>, String> {
        mcu::bev_input(sweep.iter().copied(), &mut self.input).map_err(|e| e.to_string())?;
        self.run(mcu::BEV_INPUT, mcu::BEV_OUTPUT, |bev, probs| {
            let detections = mcu::bev_detections(bev, probs).map_err(|e| e.to_string())?;
            Ok(detections.iter().map(mcu_result).collect())
        })
    }
}

/// A microcontroller detection as the wire carries it.
fn mcu_result(d: &mcu::McuDetection) -> Detection {
    Detection {
        class: U32::new(d.class),
        score: F32::new(d.score),
        bbox: d.bbox.map(F32::new),
    }
}

/// The centre square of `frame` (half its shorter side: a region of interest around
/// the middle of the scene) resized to `width × height` by nearest neighbour.
fn centre_crop(frame: &RgbFrame<'_>, width: usize, height: usize) -> Vec<u8> {
    let side = (frame.width.min(frame.height) / 2).max(1);
    let origin = ((frame.width - side) / 2, (frame.height - side) / 2);
    resize_region_nearest(frame, origin, (side, side), width, height)
}

/// The `size` (width, height) region of `frame` at `origin` (x, y) resized to
/// `width × height` by nearest neighbour.
fn resize_region_nearest(
    frame: &RgbFrame<'_>,
    (x0, y0): (usize, usize),
    (region_width, region_height): (usize, usize),
    width: usize,
    height: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        let sy = y0 + y * region_height / height;
        for x in 0..width {
            let sx = x0 + x * region_width / width;
            let at = (sy * frame.width + sx) * 3;
            out.extend_from_slice(&frame.pixels[at..at + 3]);
        }
    }
    out
}

/// Most lidar points one message carries.
const MAX_WIRE_POINTS: usize =
    (MAX_PAYLOAD_LEN - core::mem::size_of::<LidarFrameHeader>()) / LIDAR_POINT_LEN;

fn join(stream: &'static str, parts: &[&[u8]]) -> Result<Vec<u8>, StreamError> {
    let bytes = parts.iter().map(|p| p.len()).sum();
    if bytes > MAX_PAYLOAD_LEN {
        return Err(StreamError::TooLarge { stream, bytes });
    }
    let mut payload = vec![0; bytes];
    write_parts(&mut payload, parts);
    Ok(payload)
}

/// `frame` resized to `width × height` by nearest neighbour: the camera's frame size,
/// whatever size the recording has (the DUT's own pre-processing then resizes to its
/// network input).
fn resize_nearest(frame: &RgbFrame<'_>, width: usize, height: usize) -> Vec<u8> {
    resize_region_nearest(frame, (0, 0), (frame.width, frame.height), width, height)
}

/// `path` with a leading `{models}` replaced by `models`.
pub fn resolve_models(path: &str, models: &Path) -> PathBuf {
    match path.strip_prefix("{models}") {
        Some(rest) => models.join(rest.trim_start_matches('/')),
        None => PathBuf::from(path),
    }
}
