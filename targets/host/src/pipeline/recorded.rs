//! A frame path replaying recorded sensor data: the inputs are read and decoded once
//! at load, so a job only indexes memory, and the chain runs them in turn.

use std::time::Duration;

use super::{Counters, FrameFault};

/// A model chain that runs one recorded input at a time (a camera frame, a sweep).
pub(super) trait FramePath {
    /// One recorded input, as decoded at load.
    type Input;
    /// What the chain finds in a frame.
    type Detection;

    /// Runs `input` on the primary or the fallback chain; an out-of-process model gets
    /// `timeout` to answer.
    #[expect(
        clippy::result_large_err,
        reason = "see FrameFault: boxing would allocate per frame"
    )]
    fn run_input(
        &mut self,
        input: &Self::Input,
        fallback: bool,
        timeout: Duration,
        counters: &mut Counters,
    ) -> Result<(), FrameFault>;

    /// The last completed frame's detections, best first.
    fn last_detections(&self) -> &[Self::Detection];

    /// The running model workers' process ids.
    fn model_worker_pids(&self) -> impl Iterator<Item = u32> + '_;
}

/// The recorded inputs of one task and the chain that runs them.
pub(super) struct Recorded<P: FramePath> {
    inputs: Vec<P::Input>,
    chain: P,
}

impl<P: FramePath> Recorded<P> {
    /// `chain` replaying `inputs` (at least one: the sample readers refuse an empty
    /// recording).
    pub(super) fn new(chain: P, inputs: Vec<P::Input>) -> Self {
        Self { inputs, chain }
    }

    /// Recorded inputs.
    pub(super) fn len(&self) -> usize {
        self.inputs.len()
    }

    /// The last completed frame's detections.
    pub(super) fn detections(&self) -> &[P::Detection] {
        self.chain.last_detections()
    }

    /// The running model workers' process ids.
    pub(super) fn worker_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.chain.model_worker_pids()
    }

    /// Runs input `seq` (cycling through the recordings) on the primary or the
    /// fallback chain; an out-of-process model gets `timeout` to answer.
    #[expect(
        clippy::result_large_err,
        reason = "see FrameFault: boxing would allocate per frame"
    )]
    pub(super) fn run(
        &mut self,
        seq: usize,
        fallback: bool,
        timeout: Duration,
        counters: &mut Counters,
    ) -> Result<(), FrameFault> {
        let input = &self.inputs[seq % self.inputs.len()];
        self.chain.run_input(input, fallback, timeout, counters)
    }
}
