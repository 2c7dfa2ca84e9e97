//! One stream's worker thread and the one-frame mailbox the link reader fills.
//!
//! The reader copies an arriving frame into the mailbox and returns to the link at
//! once, so a frame's release time is when its last byte arrived, however long the
//! previous frame takes. A frame that arrives while the worker is still busy with an
//! earlier one is skipped (the scheduler's skip-next policy): the DUT never queues
//! work it cannot finish, and the skip is reported like any other outcome.
//!
//! Lock order: mailbox, then outbox (the reader never holds the outbox while it takes
//! a mailbox).
//!
//! The mailbox and the worker each own one frame buffer, sized for the largest payload
//! at start and swapped on hand-over, so no frame allocates.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cadence_hal::cpu::CpuBackend;
use cadence_models::camera::RgbFrame;
use cadence_runtime::wire::MAX_PAYLOAD_LEN;
use cadence_runtime::wire::payload::{Detection, Outcome, Stream, TimingRecord};
use zerocopy::little_endian::{U16, U32, U64};

use super::outbox::Outbox;
use super::{camera_result, lidar_result};
use crate::pipeline::{CameraChain, Counters, LidarChain};

/// A frame's pixels or points, and where it came from.
pub struct FrameSlot {
    /// The frame message's sequence number.
    pub seq: u32,
    /// Arrival of its last byte, ns since boot.
    pub received_ns: u64,
    /// Relative deadline, ns.
    pub deadline_ns: u64,
    /// Camera: image width.
    pub width: usize,
    /// Camera: image height.
    pub height: usize,
    /// Camera: RGB bytes, row-major.
    pub pixels: Vec<u8>,
    /// Lidar: `x, y, z, intensity` per point.
    pub points: Vec<[f32; 4]>,
}

impl FrameSlot {
    fn with_capacity(stream: Stream) -> Self {
        let (pixels, points) = match stream {
            Stream::Camera => (MAX_PAYLOAD_LEN, 0),
            Stream::Lidar => (0, MAX_PAYLOAD_LEN / size_of::<[f32; 4]>()),
        };
        Self {
            seq: 0,
            received_ns: 0,
            deadline_ns: 0,
            width: 0,
            height: 0,
            pixels: Vec::with_capacity(pixels),
            points: Vec::with_capacity(points),
        }
    }

    /// Whether `len` pixel bytes or points fit without growing the buffer.
    pub fn fits(&self, pixels: usize, points: usize) -> bool {
        pixels <= self.pixels.capacity() && points <= self.points.capacity()
    }
}

struct Mailbox {
    slot: FrameSlot,
    /// A frame waits in `slot`.
    full: bool,
    /// The worker is running a frame.
    busy: bool,
    /// The worker should exit.
    closed: bool,
}

/// The reader's handle on one stream's worker.
pub struct StreamWorker {
    stream: Stream,
    shared: Arc<(Mutex<Mailbox>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The frame path a worker runs.
pub enum Chain {
    /// Camera detector.
    Camera(Box<CameraChain<CpuBackend>>),
    /// Lidar PFN and backbone.
    Lidar(Box<LidarChain<CpuBackend>>),
}

impl Chain {
    fn stream(&self) -> Stream {
        match self {
            Chain::Camera(_) => Stream::Camera,
            Chain::Lidar(_) => Stream::Lidar,
        }
    }
}

/// The clock every timestamp is read on: ns since the DUT booted.
#[derive(Clone, Copy)]
pub struct BootClock(pub Instant);

impl BootClock {
    /// Now, ns since boot.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl StreamWorker {
    /// Starts the worker thread for `chain`, answering through `outbox`.
    pub fn spawn(chain: Chain, outbox: Arc<Outbox>, clock: BootClock) -> std::io::Result<Self> {
        let stream = chain.stream();
        let shared = Arc::new((
            Mutex::new(Mailbox {
                slot: FrameSlot::with_capacity(stream),
                full: false,
                busy: false,
                closed: false,
            }),
            Condvar::new(),
        ));
        let thread = std::thread::Builder::new()
            .name(format!("dut-{stream:?}").to_lowercase())
            .spawn({
                let shared = Arc::clone(&shared);
                move || work(chain, &shared, &outbox, clock)
            })?;
        Ok(Self {
            stream,
            shared,
            thread: Some(thread),
        })
    }

    /// The stream it serves.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    fn lock(&self) -> MutexGuard<'_, Mailbox> {
        lock(&self.shared.0)
    }

    /// Hands frame `seq` over: its timing goes into the mailbox's slot and `fill`
    /// writes its data there. Returns `false` (and calls nothing) when the worker is
    /// busy or a frame already waits: the caller skips the frame.
    pub fn offer(
        &self,
        seq: u32,
        received_ns: u64,
        deadline_ns: u64,
        fill: impl FnOnce(&mut FrameSlot),
    ) -> bool {
        let mut mailbox = self.lock();
        if mailbox.busy || mailbox.full {
            return false;
        }
        let slot = &mut mailbox.slot;
        slot.seq = seq;
        slot.received_ns = received_ns;
        slot.deadline_ns = deadline_ns;
        fill(slot);
        mailbox.full = true;
        drop(mailbox);
        self.shared.1.notify_all();
        true
    }

    /// Whether a frame of `pixels` bytes or `points` points fits the slot.
    pub fn fits(&self, pixels: usize, points: usize) -> bool {
        self.lock().slot.fits(pixels, points)
    }

    /// Waits until the worker has answered every frame handed to it.
    pub fn wait_idle(&self) {
        let mut mailbox = self.lock();
        while mailbox.busy || mailbox.full {
            mailbox = self
                .shared
                .1
                .wait(mailbox)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for StreamWorker {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            // A worker that panicked has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

fn lock(mutex: &Mutex<Mailbox>) -> MutexGuard<'_, Mailbox> {
    // The mailbox holds plain data and flags that are valid at every step.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The worker loop: wait for a frame, swap it out of the mailbox, run it, answer.
fn work(mut chain: Chain, shared: &(Mutex<Mailbox>, Condvar), outbox: &Outbox, clock: BootClock) {
    let (mutex, ready) = shared;
    let stream = chain.stream();
    let mut frame = FrameSlot::with_capacity(stream);
    let mut counters = Counters::default();
    let mut results: Vec<Detection> = Vec::with_capacity(crate::pipeline::MAX_DETECTIONS);
    loop {
        {
            let mut mailbox = lock(mutex);
            while !mailbox.full && !mailbox.closed {
                mailbox = ready
                    .wait(mailbox)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if mailbox.closed {
                return;
            }
            std::mem::swap(&mut mailbox.slot, &mut frame);
            mailbox.full = false;
            mailbox.busy = true;
        }
        let started_ns = clock.now_ns();
        // A frame cannot be cut short in its own thread; the timeout only bounds an
        // out-of-process model, which the DUT does not use.
        let timeout = Duration::from_nanos(frame.deadline_ns);
        let ran = match &mut chain {
            Chain::Camera(camera) => {
                let rgb = RgbFrame {
                    width: frame.width,
                    height: frame.height,
                    pixels: &frame.pixels,
                };
                camera.run(&rgb, false, timeout, &mut counters).map(|()| {
                    results.clear();
                    results.extend(camera.detections().iter().map(camera_result));
                })
            }
            Chain::Lidar(lidar) => {
                lidar
                    .run(&frame.points, false, timeout, &mut counters)
                    .map(|()| {
                        results.clear();
                        results.extend(lidar.detections().iter().map(lidar_result));
                    })
            }
        };
        let finished_ns = clock.now_ns();
        let outcome = match ran {
            Err(_) => Outcome::Failed,
            Ok(()) if finished_ns.saturating_sub(frame.received_ns) <= frame.deadline_ns => {
                Outcome::Met
            }
            Ok(()) => Outcome::Late,
        };
        let record = timing_record(
            (frame.seq, frame.deadline_ns),
            stream,
            outcome,
            [frame.received_ns, started_ns, finished_ns],
        );
        let detections = (outcome != Outcome::Failed).then_some(&results[..]);
        {
            // Answer and become idle in one step: the rig may send the next frame the
            // moment the record arrives, and it must not find the worker still busy;
            // nor may `Stop` find it idle before the record is out.
            let mut mailbox = lock(mutex);
            outbox.answer(stream, detections, &record, outcome);
            mailbox.busy = false;
        }
        ready.notify_all();
    }
}

/// The timing record of frame `(seq, relative deadline ns)` of `stream`, with
/// `[received, started, finished]` times in ns since boot.
pub fn timing_record(
    (seq, deadline_ns): (u32, u64),
    stream: Stream,
    outcome: Outcome,
    [received_ns, started_ns, finished_ns]: [u64; 3],
) -> TimingRecord {
    TimingRecord {
        frame_seq: U32::new(seq),
        stream: U16::new(stream.code()),
        outcome: U16::new(outcome.code()),
        received_ns: U64::new(received_ns),
        started_ns: U64::new(started_ns),
        finished_ns: U64::new(finished_ns),
        deadline_ns: U64::new(deadline_ns),
        cycles: U64::ZERO,
    }
}
