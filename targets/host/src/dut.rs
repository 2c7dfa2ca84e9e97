//! The host binary as a device under test (DUT) for the hardware-in-the-loop rig:
//! the conversation of [`cadence_runtime::wire::payload`] served with the real camera
//! and lidar frame paths ([`CameraChain`], [`LidarChain`]) on the CPU backend.
//!
//! Threads: the link reader (the caller of [`Dut::serve`]) decodes messages, answers
//! control messages and hands each frame to its stream's worker thread (one per
//! stream, see the `worker` module); the workers run the frames and send detections
//! and timing records. Frames are served in arrival order, each stream on its own
//! worker; a frame arriving while its stream's worker is busy is skipped (the
//! scheduler's skip-next policy), so a slow frame never builds a queue. The scheduler's
//! time-triggered executive is not used: here the rig's frames are the releases.
//!
//! Nothing the link carries can stop the DUT: damaged, truncated, duplicated and
//! out-of-order messages are counted by the decoder and reported in the `Summary`
//! that answers `Stop`; a frame whose payload does not parse, or that the DUT does
//! not serve, is answered with [`Outcome::Refused`]. After the first frame of each
//! stream nothing allocates (tested in `tests/dut_zero_alloc.rs`).

mod outbox;
mod worker;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cadence_hal::cpu::CpuBackend;
use cadence_models::detect;
use cadence_models::lidar::LidarDetection;
use cadence_runtime::wire::payload::{
    self, Detection, Hello, LinkCounters, Outcome, Stream, Summary,
};
use cadence_runtime::wire::{Decoder, DecoderStats, Frame, HEADER_LEN, Kind, MAX_PAYLOAD_LEN};
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
    name: String,
    workers: Vec<StreamWorker>,
    outbox: Arc<Outbox>,
    clock: BootClock,
    decoder: Box<Decoder<RECEIVE_CAPACITY>>,
    /// Decoder counts at the last `Reset`: the summary reports the counts since.
    baseline: DecoderStats,
    chunk: Vec<u8>,
}

/// What the link reader does after a control message.
enum Control {
    Stop(u32),
    Reset(u32),
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
        Ok(Self {
            name: name.to_owned(),
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
        let streams: Vec<Stream> = self.workers.iter().map(StreamWorker::stream).collect();
        let max_payload = u32::try_from(Decoder::<RECEIVE_CAPACITY>::MAX_PAYLOAD).unwrap_or(0);
        Hello::new(&self.name, &streams, max_payload)
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

    /// Serves one connection: sends `Hello`, then answers what arrives on `reader`
    /// until the rig hangs up (end of stream or a reset connection). Answers go to
    /// `writer`. Returns an error only for a read error other than a hang-up.
    pub fn serve(&mut self, mut reader: impl Read, writer: LinkWriter) -> std::io::Result<()> {
        self.outbox.connect(writer);
        self.outbox.send(Kind::Hello, self.hello().as_bytes());
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

    /// Handles every message the decoder has ready.
    fn drain(&mut self) {
        loop {
            let control = match self.decoder.next_frame() {
                None => return,
                Some(Err(problem)) => {
                    eprintln!("cadence-dut: link: {problem}");
                    continue;
                }
                Some(Ok(frame)) => handle(&self.workers, &self.outbox, self.clock, frame),
            };
            match control {
                Some(Control::Stop(seq)) => {
                    self.wait_idle();
                    let summary = self.summary();
                    self.outbox.send(Kind::Summary, summary.as_bytes());
                    eprintln!("cadence-dut: stop (message {seq}): summary sent");
                }
                Some(Control::Reset(seq)) => {
                    self.wait_idle();
                    self.outbox.reset_summary();
                    self.baseline = self.decoder.stats();
                    self.outbox.ack(Kind::Reset, seq);
                }
                None => {}
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

/// Handles one intact message; returns what the reader still has to do for `Stop` and
/// `Reset` (which need the decoder's counts).
fn handle(
    workers: &[StreamWorker],
    outbox: &Outbox,
    clock: BootClock,
    frame: Frame<'_>,
) -> Option<Control> {
    match frame.kind {
        Kind::Start => outbox.ack(Kind::Start, frame.seq),
        Kind::Stop => return Some(Control::Stop(frame.seq)),
        Kind::Reset => return Some(Control::Reset(frame.seq)),
        Kind::CameraFrame => serve_frame(workers, outbox, clock, Stream::Camera, frame),
        Kind::LidarFrame => serve_frame(workers, outbox, clock, Stream::Lidar, frame),
        Kind::Detections | Kind::TimingRecord | Kind::Ack | Kind::Hello | Kind::Summary => {
            eprintln!(
                "cadence-dut: ignored a {:?} message (sent by a DUT, not a rig)",
                frame.kind
            );
        }
    }
    None
}

/// Hands a frame to its stream's worker, or answers at once when it is refused or
/// skipped.
fn serve_frame(
    workers: &[StreamWorker],
    outbox: &Outbox,
    clock: BootClock,
    stream: Stream,
    frame: Frame<'_>,
) {
    let received_ns = clock.now_ns();
    outbox.count_frame_received();
    let worker = workers.iter().find(|w| w.stream() == stream);
    let answer_now = |deadline_ns: u64, outcome: Outcome| {
        let record = timing_record((frame.seq, deadline_ns), stream, outcome, [received_ns; 3]);
        outbox.answer(stream, None, &record, outcome);
    };
    let offer = |worker: &StreamWorker, deadline_us: u32, fill: &dyn Fn(&mut FrameSlot)| {
        let deadline_ns = u64::from(deadline_us) * 1000;
        let taken = worker.offer(frame.seq, received_ns, deadline_ns, fill);
        (deadline_ns, taken)
    };
    let offered = match (stream, worker) {
        (_, None) => None,
        (Stream::Camera, Some(worker)) => match payload::read_camera_frame(frame.payload) {
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
        (Stream::Lidar, Some(worker)) => match payload::read_lidar_frame(frame.payload) {
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
pub fn camera_result(d: &detect::Detection) -> Detection {
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
