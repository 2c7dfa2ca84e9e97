//! The host binary as a device under test (DUT) for the hardware-in-the-loop rig:
//! the conversation of [`cadence_runtime::wire::session`] (shared with the firmware
//! DUT, which documents the states and the answer to every message) served with the
//! real camera and lidar frame paths ([`CameraChain`], [`LidarChain`]) on the CPU
//! backend.
//!
//! Threads: the link reader (the caller of [`Dut::serve`]) decodes messages, answers
//! them as the [`DutSession`] says and hands each frame to run to its stream's worker
//! thread (one per stream, see the `worker` module); the workers run the frames and
//! send detections and timing records. Frames are served in arrival order, each stream on its own
//! worker; a frame arriving while its stream's worker is busy is skipped (the
//! scheduler's skip-next policy), so a slow frame never builds a queue. The scheduler's
//! time-triggered executive is not used: here the rig's frames are the releases.
//!
//! Nothing the link carries can stop the DUT: damaged, truncated, duplicated and
//! out-of-order messages are counted by the decoder and reported in the `Summary`
//! that answers `Stop`; a frame whose payload does not parse, or that the DUT does
//! not serve, is answered with [`Outcome::Refused`], and one before `Start` with
//! [`Outcome::Skipped`]. After the first frame of each stream nothing allocates
//! (tested in `tests/dut_zero_alloc.rs`).

mod outbox;
mod worker;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cadence_hal::cpu::CpuBackend;
use cadence_models::lidar::LidarDetection;
use cadence_models::ssd;
use cadence_runtime::wire::payload::{
    self, Detection, Hello, LinkCounters, Outcome, Stream, Summary,
};
use cadence_runtime::wire::session::{DutAction, DutSession, FrameTask};
use cadence_runtime::wire::{Decoder, DecoderStats, HEADER_LEN, Kind, MAX_PAYLOAD_LEN};
use thiserror::Error;
use zerocopy::IntoBytes;
use zerocopy::little_endian::{F32, U32};

use crate::pipeline::{CameraChain, CpuBackends, Isolation, LidarChain, PipelineError};
pub use outbox::LinkWriter;
use outbox::Outbox;
use worker::{BootClock, Chain, FrameSlot, StreamWorker, timing_record};

/// Bytes the DUT's receive buffer holds: one largest message.
pub const RECEIVE_CAPACITY: usize = HEADER_LEN + MAX_PAYLOAD_LEN;

/// Bytes read from the link per call.
const READ_CHUNK: usize = 64 * 1024;

/// The packages a DUT serves its streams with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DutModels {
    /// The camera detector; no camera stream without it.
    pub camera: Option<PathBuf>,
    /// The lidar PFN and backbone; no lidar stream without them.
    pub lidar: Option<(PathBuf, PathBuf)>,
}

/// How the DUT reaches the rig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Listen on this TCP address and serve each connection in turn.
    Listen(String),
    /// Connect to the rig at this TCP address and serve that one connection.
    Connect(String),
    /// Speak on standard input and output (the rig runs the DUT as a pipe).
    Stdio,
}

/// Why the DUT cannot start or keep serving.
#[derive(Debug, Error)]
pub enum DutError {
    /// Neither stream has models.
    #[error(
        "the DUT serves no stream: give `--camera PKG` and/or `--lidar-pfn PKG --lidar-backbone PKG`"
    )]
    NoModels,
    /// A stream's packages cannot be loaded.
    #[error("loading the {stream} models: {source}")]
    Models {
        /// `camera` or `lidar`.
        stream: &'static str,
        /// Why.
        source: PipelineError,
    },
    /// A worker thread cannot be started.
    #[error("cannot start the {stream} worker thread: {source}")]
    Thread {
        /// `camera` or `lidar`.
        stream: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The TCP address cannot be listened on.
    #[error("cannot listen on `{addr}`: {source} (is another process using the port?)")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The rig's TCP address cannot be reached.
    #[error("cannot connect to the rig at `{addr}`: {source} (is the rig listening?)")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The link failed in a way that is not the rig hanging up.
    #[error("the link to the rig failed: {0}")]
    Link(std::io::Error),
}

/// A loaded DUT: its workers, its sender, and the decoder of what the rig sends.
pub struct Dut {
    /// The conversation with the rig: whether frames run, and what each message gets.
    session: DutSession,
    workers: Vec<StreamWorker>,
    outbox: Arc<Outbox>,
    clock: BootClock,
    decoder: Box<Decoder<RECEIVE_CAPACITY>>,
    /// Decoder counts at the last `Reset`: the summary reports the counts since.
    baseline: DecoderStats,
    chunk: Vec<u8>,
}

impl Dut {
    /// Loads the models and starts one worker per stream. `name` goes into `Hello`
    /// (cut to 16 bytes).
    pub fn load(name: &str, models: &DutModels) -> Result<Self, DutError> {
        if models.camera.is_none() && models.lidar.is_none() {
            return Err(DutError::NoModels);
        }
        let clock = BootClock(Instant::now());
        let outbox = Arc::new(Outbox::new());
        let mut workers = Vec::new();
        if let Some(camera) = &models.camera {
            let chain =
                CameraChain::<CpuBackend>::load(camera, None, Isolation::None, &CpuBackends)
                    .map_err(|source| DutError::Models {
                        stream: "camera",
                        source,
                    })?;
            workers.push(spawn(Chain::Camera(Box::new(chain)), &outbox, clock)?);
        }
        if let Some((pfn, backbone)) = &models.lidar {
            let chain = LidarChain::<CpuBackend>::load(
                (pfn, backbone),
                None,
                Isolation::None,
                &CpuBackends,
            )
            .map_err(|source| DutError::Models {
                stream: "lidar",
                source,
            })?;
            workers.push(spawn(Chain::Lidar(Box::new(chain)), &outbox, clock)?);
        }
        let streams: Vec<Stream> = workers.iter().map(StreamWorker::stream).collect();
        let max_payload = u32::try_from(Decoder::<RECEIVE_CAPACITY>::MAX_PAYLOAD).unwrap_or(0);
        Ok(Self {
            session: DutSession::new(Hello::new(name, &streams, max_payload)),
            workers,
            outbox,
            clock,
            decoder: Box::new(Decoder::new()),
            baseline: DecoderStats::default(),
            chunk: vec![0; READ_CHUNK],
        })
    }

    /// The `Hello` this DUT sends on every new connection.
    pub fn hello(&self) -> Hello {
        *self.session.hello()
    }

    /// The summary `Stop` would answer now.
    pub fn summary(&self) -> Summary {
        let mut summary = self.outbox.summary();
        summary.link = LinkCounters::from(self.decoder.stats().since(&self.baseline));
        summary
    }

    /// Serves `transport` until it ends: `Listen` serves connection after connection
    /// and returns only on an error; `Connect` and `Stdio` return when the rig hangs up.
    pub fn run(&mut self, transport: &Transport) -> Result<(), DutError> {
        match transport {
            Transport::Listen(addr) => {
                let listener = TcpListener::bind(addr).map_err(|source| DutError::Listen {
                    addr: addr.clone(),
                    source,
                })?;
                let local = listener.local_addr().map_err(DutError::Link)?;
                eprintln!("cadence-dut: listening on {local}");
                loop {
                    let (stream, peer) = listener.accept().map_err(DutError::Link)?;
                    eprintln!("cadence-dut: rig connected from {peer}");
                    self.serve_tcp(stream)?;
                    eprintln!("cadence-dut: rig {peer} hung up");
                }
            }
            Transport::Connect(addr) => {
                let stream = TcpStream::connect(addr).map_err(|source| DutError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
                self.serve_tcp(stream)
            }
            Transport::Stdio => self
                .serve(std::io::stdin().lock(), Box::new(std::io::stdout()))
                .map_err(DutError::Link),
        }
    }

    fn serve_tcp(&mut self, stream: TcpStream) -> Result<(), DutError> {
        // Small messages (acks, timing records) go out at once, not after 40 ms.
        stream.set_nodelay(true).map_err(DutError::Link)?;
        let writer = stream.try_clone().map_err(DutError::Link)?;
        self.serve(stream, Box::new(writer)).map_err(DutError::Link)
    }

    /// Serves one connection: sends `Hello` (a new conversation, waiting for `Start`
    /// again), then answers what arrives on `reader` until the rig hangs up (end of
    /// stream or a reset connection). Answers go to `writer`. Returns an error only for a read error other than a hang-up.
    pub fn serve(&mut self, mut reader: impl Read, writer: LinkWriter) -> std::io::Result<()> {
        self.outbox.connect(writer);
        let hello = self.session.greet();
        self.outbox.send(Kind::Hello, hello.as_bytes());
        let result = loop {
            let read = match reader.read(&mut self.chunk) {
                Ok(0) => break Ok(()),
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if is_hang_up(&e) => break Ok(()),
                Err(e) => break Err(e),
            };
            let mut offset = 0;
            while offset < read {
                offset += self.decoder.push(&self.chunk[offset..read]);
                self.drain();
            }
        };
        self.decoder.finish();
        self.drain();
        self.wait_idle();
        self.outbox.disconnect();
        let failures = self.outbox.write_failures();
        if failures > 0 {
            eprintln!(
                "cadence-dut: {failures} message(s) could not be sent so far (the rig hung up mid-answer)"
            );
        }
        result
    }

    /// Handles every message the decoder has ready, as the session says.
    fn drain(&mut self) {
        while let Some(received) = self.decoder.next_frame() {
            match self.session.receive(received) {
                DutAction::LinkProblem(problem) => eprintln!("cadence-dut: link: {problem}"),
                DutAction::AckStart { seq } => self.outbox.ack(Kind::Start, seq),
                DutAction::Frame { stream, seq, task } => {
                    serve_frame(&self.workers, &self.outbox, self.clock, (stream, seq), task);
                }
                DutAction::SendSummary { seq } => {
                    self.wait_idle();
                    let summary = self.summary();
                    self.outbox.send(Kind::Summary, summary.as_bytes());
                    eprintln!("cadence-dut: stop (message {seq}): summary sent");
                }
                DutAction::ResetCounters { seq } => {
                    self.wait_idle();
                    self.outbox.reset_summary();
                    self.baseline = self.decoder.stats();
                    self.outbox.ack(Kind::Reset, seq);
                }
                DutAction::Ignore { kind, seq } => eprintln!(
                    "cadence-dut: ignored message {seq}, a {kind:?} (sent by a DUT, not a rig)"
                ),
            }
        }
    }

    fn wait_idle(&self) {
        for worker in &self.workers {
            worker.wait_idle();
        }
    }
}

fn spawn(chain: Chain, outbox: &Arc<Outbox>, clock: BootClock) -> Result<StreamWorker, DutError> {
    let stream = match chain {
        Chain::Camera(_) => "camera",
        Chain::Lidar(_) => "lidar",
    };
    StreamWorker::spawn(chain, Arc::clone(outbox), clock)
        .map_err(|source| DutError::Thread { stream, source })
}

fn is_hang_up(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        e.kind(),
        BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
    )
}

/// Answers frame `seq` of `stream`: hands the payload to run to the stream's worker,
/// or answers at once with the outcome the session reports, or when the payload is
/// refused or the worker busy (skipped).
fn serve_frame(
    workers: &[StreamWorker],
    outbox: &Outbox,
    clock: BootClock,
    (stream, seq): (Stream, u32),
    task: FrameTask<'_>,
) {
    let received_ns = clock.now_ns();
    outbox.count_frame_received();
    let answer_now = |deadline_ns: u64, outcome: Outcome| {
        let record = timing_record((seq, deadline_ns), stream, outcome, [received_ns; 3]);
        outbox.answer(stream, None, &record, outcome);
    };
    let payload = match task {
        FrameTask::Run(payload) => payload,
        FrameTask::Report(outcome) => return answer_now(0, outcome),
    };
    let worker = workers.iter().find(|w| w.stream() == stream);
    let offer = |worker: &StreamWorker, deadline_us: u32, fill: &dyn Fn(&mut FrameSlot)| {
        let deadline_ns = u64::from(deadline_us) * 1000;
        let taken = worker.offer(seq, received_ns, deadline_ns, fill);
        (deadline_ns, taken)
    };
    let offered = match (stream, worker) {
        (_, None) => None,
        (Stream::Camera, Some(worker)) => match payload::read_camera_frame(payload) {
            Ok((header, pixels))
                if header.channels.get() == 3
                    && header.width.get() > 0
                    && header.height.get() > 0
                    && worker.fits(pixels.len(), 0) =>
            {
                Some(offer(worker, header.deadline_us.get(), &|slot| {
                    slot.width = usize::from(header.width.get());
                    slot.height = usize::from(header.height.get());
                    slot.pixels.clear();
                    slot.pixels.extend_from_slice(pixels);
                }))
            }
            _ => None,
        },
        (Stream::Lidar, Some(worker)) => match payload::read_lidar_frame(payload) {
            Ok((header, points)) if worker.fits(0, points.len()) => {
                Some(offer(worker, header.deadline_us.get(), &|slot| {
                    slot.points.clear();
                    slot.points
                        .extend(points.iter().map(|p| p.xyzi.map(|v| v.get())));
                }))
            }
            _ => None,
        },
    };
    match offered {
        None => answer_now(0, Outcome::Refused),
        Some((deadline_ns, false)) => answer_now(deadline_ns, Outcome::Skipped),
        Some((_, true)) => {}
    }
}

/// A camera detection as the wire carries it: the box in network-input pixels.
pub fn camera_result(d: &ssd::Detection) -> Detection {
    Detection {
        class: U32::new(d.class.index() as u32),
        score: F32::new(d.score),
        bbox: [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1, 0.0, 0.0, 0.0].map(F32::new),
    }
}

/// A lidar detection as the wire carries it: centre, size `l, w, h`, yaw.
pub fn lidar_result(d: &LidarDetection) -> Detection {
    let b = &d.bbox;
    Detection {
        class: U32::new(d.class.index() as u32),
        score: F32::new(d.score),
        bbox: [b.x, b.y, b.z, b.l, b.w, b.h, b.yaw].map(F32::new),
    }
}
