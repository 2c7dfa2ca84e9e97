//! The fixed-rate demo, the same on both boards: camera crops at 30 Hz and lidar sweeps
//! at 10 Hz for one second, each frame released by an `embassy-time` timer on the
//! board's driver, run through its pipeline, and logged with its release time, its
//! start lag and the counts of the board's timer it took. The frames are synthetic but
//! different every time (a moving pattern), generated in place without a heap.
//!
//! What differs per board is behind [`FrameClock`]: the counter a frame is timed on
//! (SysTick's core cycles on the Cortex-M7, the generic timer on the Cortex-R52) and how
//! the core waits for a timer to expire.
//!
//! Under `-icount` every logged figure is the same on every run (tools/firmware.sh
//! checks the lines that carry the counts).

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use cadence_models::camera::RgbFrame;
use cadence_models::mcu::{McuDetection, ROI_CHANNELS, ROI_SIDE};
use defmt::info;
use embassy_time::{Duration, Instant, Timer};

use crate::pipelines::{FrameError, Pipelines};

/// How long the demo runs.
const LENGTH: Duration = Duration::from_secs(1);
/// Points in a synthetic sweep.
const SWEEP_POINTS: usize = 256;

/// The board's side of the demo: the counter frames are timed on, and the wait for the
/// `embassy-time` driver's next wake-up.
pub trait FrameClock {
    /// What [`FrameClock::count`] counts, as the log names it (`cycles`, `timer ticks`).
    const UNIT: &'static str;

    /// The counter now; it only grows.
    fn count(&self) -> u64;

    /// Nanoseconds in `count` counts.
    fn count_to_ns(&self, count: u64) -> u64;

    /// Waits until a timer of the driver may have expired, and wakes the expired ones.
    fn wait_for_alarm(&self);
}

/// A sensor stream of the demo.
#[derive(Clone, Copy)]
enum Stream {
    Camera,
    Lidar,
}

impl Stream {
    const ALL: [Stream; 2] = [Stream::Camera, Stream::Lidar];

    const fn name(self) -> &'static str {
        match self {
            Stream::Camera => "camera",
            Stream::Lidar => "lidar",
        }
    }

    const fn period(self) -> Duration {
        match self {
            Stream::Camera => Duration::from_hz(30),
            Stream::Lidar => Duration::from_hz(10),
        }
    }
}

/// Runs the demo and logs whether every frame met its deadline (the next release).
/// Timing under emulation says nothing about a real core: late frames are reported,
/// not failed.
pub fn run(pipelines: &mut Pipelines, clock: &impl FrameClock) -> Result<(), FrameError> {
    match release_frames(pipelines, clock)? {
        0 => info!("demo: every frame met its deadline"),
        late => info!("demo: {} frames missed their deadline", late),
    }
    Ok(())
}

/// Releases every frame of the demo; returns how many missed their deadline.
fn release_frames<C: FrameClock>(pipelines: &mut Pipelines, clock: &C) -> Result<u32, FrameError> {
    let start = Instant::now();
    let mut next_release = [start; Stream::ALL.len()];
    let mut frames = [0u32; Stream::ALL.len()];
    let mut late = 0;
    loop {
        // The earliest release next; the camera first on a tie.
        let slot = usize::from(next_release[1] < next_release[0]);
        let release = next_release[slot];
        if release - start >= LENGTH {
            return Ok(late);
        }
        let stream = Stream::ALL[slot];
        block_on(Timer::at(release), clock);
        let started = Instant::now();
        let begin = clock.count();
        let top = match stream {
            Stream::Camera => camera_frame(pipelines, frames[slot])?,
            Stream::Lidar => lidar_frame(pipelines, frames[slot])?,
        };
        let spent = clock.count() - begin;
        let deadline = release + stream.period();
        let on_time = Instant::now() <= deadline;
        late += u32::from(!on_time);
        info!(
            "{} frame {}: released at {} us, started {} us late, {} {=str} ({} us){}; top class {} score {}",
            stream.name(),
            frames[slot],
            (release - start).as_micros(),
            (started - release).as_micros(),
            spent,
            C::UNIT,
            clock.count_to_ns(spent) / 1_000,
            if on_time { "" } else { ", LATE" },
            top.map_or(-1, |d| d.class as i64),
            top.map_or(0.0, |d| d.score),
        );
        frames[slot] += 1;
        next_release[slot] = deadline;
    }
}

/// Classifies camera frame `index`: a 32×32 crop with a pattern that moves per frame.
fn camera_frame(pipelines: &mut Pipelines, index: u32) -> Result<Option<McuDetection>, FrameError> {
    let mut pixels = [0u8; ROI_SIDE * ROI_SIDE * ROI_CHANNELS];
    for (i, pixel) in pixels.iter_mut().enumerate() {
        let (y, x, c) = (i / (ROI_SIDE * 3), i / 3 % ROI_SIDE, i % 3);
        *pixel = (x * 7 + y * 13 + c * 50 + index as usize * 11) as u8;
    }
    let frame = RgbFrame {
        width: ROI_SIDE,
        height: ROI_SIDE,
        pixels: &pixels,
    };
    let detections = pipelines.camera(&frame)?;
    Ok(best(&detections))
}

/// Classifies lidar sweep `index`: a lattice of points over the grid, heights varying
/// per point and per sweep.
fn lidar_frame(pipelines: &mut Pipelines, index: u32) -> Result<Option<McuDetection>, FrameError> {
    let points = (0..SWEEP_POINTS).map(|i| {
        let drift = index as f32 * 0.3;
        [
            1.0 + (i % 16) as f32 * 1.9 + drift,
            -15.0 + (i / 16) as f32 * 1.9,
            ((i * 37 + index as usize) % 50) as f32 * 0.1 - 2.5,
            (i % 100) as f32,
        ]
    });
    let detections = pipelines.lidar(points)?;
    Ok(best(&detections))
}

/// The highest-scoring detection (the first on a tie).
fn best(detections: &[McuDetection]) -> Option<McuDetection> {
    detections
        .iter()
        .copied()
        .reduce(|best, d| if d.score > best.score { d } else { best })
}

/// Polls `future` to completion, waiting for the clock's next alarm between polls.
fn block_on<F: Future>(future: F, clock: &impl FrameClock) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        clock.wait_for_alarm();
    }
}
