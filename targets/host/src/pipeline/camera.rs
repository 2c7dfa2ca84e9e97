//! The camera frame path: pre-process, detect, decode.

use std::path::Path;
use std::time::Duration;

use cadence_hal::Accelerator;
use cadence_models::camera::{self, Normalisation, RgbFrame};
use cadence_models::nms::TopK;
use cadence_models::ssd::{self, CAMERA_NUM_ANCHORS, CAMERA_SCORE_CLASSES, Detection};
use cadence_runtime::package::{ModelFamily, Preprocess};
use heapless::Vec as FixedVec;

use super::model::Model;
use super::recorded::FramePath;
use super::samples::CameraFrame;
use super::{
    BackendFactory, CAMERA_POST, Counters, FrameFault, Isolation, MAX_CANDIDATES, MAX_DETECTIONS,
    PipelineError, Pool,
};

/// A camera detector with its input and outputs resolved at load.
struct Detector<B> {
    model: Model<B>,
    input: usize,
    boxes: usize,
    scores: usize,
    normalisation: Normalisation,
    height: usize,
    width: usize,
}

impl<B: Accelerator> Detector<B> {
    fn load(
        path: &Path,
        isolation: Isolation,
        backends: &impl BackendFactory<B>,
    ) -> Result<Self, PipelineError> {
        let model = Model::load(path, ModelFamily::Camera, isolation, backends)?;
        let (normalisation, height, width) = match model.preprocess() {
            Preprocess::CameraImagenet { height, width } => {
                (Normalisation::Imagenet, height, width)
            }
            Preprocess::CameraUnit { height, width } => (Normalisation::Unit, height, width),
            other => {
                return Err(model.mismatch(format!(
                    "it declares {other:?} pre-processing, a camera detector needs camera pre-processing"
                )));
            }
        };
        let (height, width) = (height as usize, width as usize);
        let input = model.input("image")?;
        let expected_input = [1, 3, height, width];
        if model.input_dims(input) != expected_input {
            return Err(model.mismatch(format!(
                "input `image` has shape {:?}, its pre-processing writes {expected_input:?}",
                model.input_dims(input)
            )));
        }
        let boxes = model.output("boxes")?;
        let scores = model.output("scores")?;
        for (index, name, expected) in [
            (boxes, "boxes", [1, CAMERA_NUM_ANCHORS, 4]),
            (
                scores,
                "scores",
                [1, CAMERA_NUM_ANCHORS, CAMERA_SCORE_CLASSES],
            ),
        ] {
            if model.output_dims(index) != expected {
                return Err(model.mismatch(format!(
                    "output `{name}` has shape {:?}, the SSD decoder reads {expected:?}",
                    model.output_dims(index)
                )));
            }
        }
        Ok(Self {
            model,
            input,
            boxes,
            scores,
            normalisation,
            height,
            width,
        })
    }
}

/// A camera task's detectors (primary and optional fallback) and its decode buffers:
/// the frame path from an RGB frame to detections, for any frame (the host DUT runs it
/// on frames from the wire, a scheduler task's [`super::Pipeline`] on recorded ones).
pub struct CameraChain<B> {
    detectors: Vec<Detector<B>>,
    primary: usize,
    fallback: Option<usize>,
    candidates: TopK<Detection, MAX_CANDIDATES>,
    detections: FixedVec<Detection, MAX_DETECTIONS>,
}

impl<B: Accelerator> CameraChain<B> {
    /// Loads the primary detector and the fallback one (the same file loads once).
    pub fn load(
        primary: &Path,
        fallback: Option<&Path>,
        isolation: Isolation,
        backends: &impl BackendFactory<B>,
    ) -> Result<Self, PipelineError> {
        let mut pool = Pool::new();
        let load = |path: &Path| Detector::load(path, isolation, backends);
        let primary = pool.index_or_load(primary, load)?;
        let fallback = fallback
            .map(|path| pool.index_or_load(path, load))
            .transpose()?;
        Ok(Self {
            detectors: pool.into_values(),
            primary,
            fallback,
            candidates: TopK::new(),
            detections: FixedVec::new(),
        })
    }

    /// The last completed frame's detections, best first.
    pub fn detections(&self) -> &[Detection] {
        &self.detections
    }

    /// Runs `frame` on the primary or the fallback detector; an out-of-process detector
    /// gets `timeout` to answer. Allocates nothing after the first frame of each chain.
    #[expect(
        clippy::result_large_err,
        reason = "see FrameFault: boxing would allocate per frame"
    )]
    pub fn run(
        &mut self,
        frame: &RgbFrame<'_>,
        fallback: bool,
        timeout: Duration,
        counters: &mut Counters,
    ) -> Result<(), FrameFault> {
        let index = if fallback {
            self.fallback.ok_or(FrameFault::NoFallback)?
        } else {
            self.primary
        };
        let detector = &mut self.detectors[index];
        let model = &mut detector.model;
        camera::preprocess(
            frame,
            detector.normalisation,
            detector.height,
            detector.width,
            model.input_mut(detector.input)?,
        )
        .map_err(FrameFault::Camera)?;
        model.run(timeout)?;
        let stats = ssd::decode_camera(
            model.output_at(detector.boxes)?,
            model.output_at(detector.scores)?,
            &CAMERA_POST,
            &mut self.candidates,
            &mut self.detections,
        )?;
        counters.count_decoded(self.detections.len(), &stats);
        Ok(())
    }
}

impl<B: Accelerator> FramePath for CameraChain<B> {
    type Input = CameraFrame;
    type Detection = Detection;

    fn run_input(
        &mut self,
        frame: &CameraFrame,
        fallback: bool,
        timeout: Duration,
        counters: &mut Counters,
    ) -> Result<(), FrameFault> {
        self.run(&frame.rgb(), fallback, timeout, counters)
    }

    fn last_detections(&self) -> &[Detection] {
        self.detections()
    }

    fn model_worker_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.detectors.iter().filter_map(|d| d.model.worker_pid())
    }
}
