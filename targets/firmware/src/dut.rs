//! The hardware-in-the-loop device under test: serves `cadence_runtime::wire`'s
//! conversation on UART0, as `cadence_runtime::wire::session::DutSession` (shared with
//! the host DUT) says: that module documents the states and the answer to every message.
//!
//! At boot it sends `Hello` (name [`NAME`], camera and lidar, the largest payload its
//! receive buffer takes). Once started, a frame it runs is a `CameraFrame` (RGB crop,
//! natively 32×32, other sizes resized) or a `LidarFrame` (at most
//! `cadence_models::mcu::LIDAR_MAX_POINTS` points), answered with `Detections`, then a
//! `TimingRecord` (`Met` or `Late` against the frame's deadline, with the cycles it
//! took). A frame whose payload does not parse or is not a shape the models take gets
//! only a `TimingRecord` with `Refused`; one the engine fails on, `Failed`. Frames are
//! run one at a time as they arrive, so none is skipped by overrun.
//!
//! Damaged, truncated, repeated or lost messages are the decoder's to count; they are
//! logged and reported in the `Summary`. Everything lives in fixed buffers: the
//! decoder's is a `static`.
//!
//! Under QEMU, with the rig listening on a TCP port (`-serial tcp:HOST:PORT,server=on`
//! makes QEMU listen instead), the defmt log decoded on standard output:
//!
//! ```text
//! targets/firmware/qemu-run.sh out/firmware/cadence-firmware-dut.elf -serial tcp:127.0.0.1:PORT
//! ```
//!
//! which runs `qemu-system-arm -cpu cortex-m7 -machine mps2-an500 -display none
//! -monitor none -semihosting-config enable=on,target=native -serial tcp:127.0.0.1:PORT
//! -kernel out/firmware/cadence-firmware-dut.elf | defmt-print -e …`.

use core::mem::size_of;

use cadence_models::mcu::{self, LIDAR_MAX_DETECTIONS, LIDAR_MAX_POINTS, McuDetection};
use cadence_runtime::wire::payload::{
    self, Ack, Detection, Hello, LidarFrameHeader, LinkCounters, Outcome, ResultHeader, Stream,
    Summary, TimingRecord,
};
use cadence_runtime::wire::session::{DutAction, DutSession, FrameTask};
use cadence_runtime::wire::{self, Decoder, DecoderStats, HEADER_LEN, Kind, LIDAR_POINT_LEN};
use defmt::{Debug2Format, Display2Format, error, info, warn};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{F32, U16, U32, U64};

use crate::clock::{cycles, cycles_to_ns};
use crate::pipelines::{FrameError, Pipelines};
use crate::uart::Uart;

/// The name the DUT gives in `Hello`.
pub const NAME: &str = "cadence-m7";

/// Bytes the receive buffer holds: one message carrying the largest lidar sweep taken
/// (8 KiB of points), which also fits a camera crop of up to 52×52.
pub const RX_CAPACITY: usize =
    HEADER_LEN + size_of::<LidarFrameHeader>() + LIDAR_MAX_POINTS * LIDAR_POINT_LEN;

/// The decoder of the rig's messages.
pub type RxDecoder = Decoder<RX_CAPACITY>;

/// Most detections one result carries here: the larger of the two pipelines'.
const MAX_RESULT_DETECTIONS: usize = max(mcu::ROI_CLASSES, LIDAR_MAX_DETECTIONS);
/// Largest payload the DUT sends: a full detections result.
const TX_PAYLOAD_CAPACITY: usize =
    size_of::<ResultHeader>() + MAX_RESULT_DETECTIONS * size_of::<Detection>();

const _: () = assert!(size_of::<Summary>() <= TX_PAYLOAD_CAPACITY);
const _: () = assert!(size_of::<TimingRecord>() <= TX_PAYLOAD_CAPACITY);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The DUT's state between messages.
pub struct Dut {
    pipelines: Pipelines,
    uart: Uart,
    /// Sequence number of the next message sent.
    tx_seq: u32,
    /// The conversation with the rig: whether frames run, and what each message gets.
    session: DutSession,
    /// Counters since boot or the last `Reset`; `link` is filled in when sent.
    summary: Summary,
    /// The decoder's counters at the last `Reset`.
    link_baseline: DecoderStats,
    /// A payload being built.
    payload: [u8; TX_PAYLOAD_CAPACITY],
    /// A message being sent.
    message: [u8; HEADER_LEN + TX_PAYLOAD_CAPACITY],
}

impl Dut {
    /// A DUT serving `pipelines` on `uart`.
    pub fn new(pipelines: Pipelines, uart: Uart) -> Self {
        Self {
            pipelines,
            uart,
            tx_seq: 0,
            session: DutSession::new(Hello::new(
                NAME,
                &[Stream::Camera, Stream::Lidar],
                RxDecoder::MAX_PAYLOAD as u32,
            )),
            summary: Summary::default(),
            link_baseline: DecoderStats::default(),
            payload: [0; TX_PAYLOAD_CAPACITY],
            message: [0; HEADER_LEN + TX_PAYLOAD_CAPACITY],
        }
    }

    /// Says `Hello`, then serves the rig for ever.
    pub fn serve(mut self, decoder: &mut RxDecoder) -> ! {
        let hello = self.session.greet();
        self.send(Kind::Hello, hello.as_bytes());
        info!(
            "HIL DUT on UART0: hello sent, max payload {} bytes",
            RxDecoder::MAX_PAYLOAD
        );
        let mut chunk = [0u8; 64];
        loop {
            self.uart.wait_for_input();
            let received = self.uart.read_available(&mut chunk);
            let mut rest = &chunk[..received];
            while !rest.is_empty() {
                let taken = decoder.push(rest);
                rest = &rest[taken..];
                self.drain(decoder);
            }
        }
    }

    /// Handles every message the decoder holds, as the session says.
    fn drain(&mut self, decoder: &mut RxDecoder) {
        while let Some(received) = decoder.next_frame() {
            match self.session.receive(received) {
                DutAction::LinkProblem(problem) => warn!("link: {}", Display2Format(&problem)),
                DutAction::AckStart { seq } => {
                    self.ack(Kind::Start, seq);
                    info!("start (message {})", seq);
                }
                DutAction::Frame { stream, seq, task } => self.frame(stream, seq, task),
                DutAction::SendSummary { seq } => {
                    let mut summary = self.summary;
                    summary.link = LinkCounters::from(decoder.stats().since(&self.link_baseline));
                    self.send(Kind::Summary, summary.as_bytes());
                    info!("stop (message {}): summary sent", seq);
                }
                DutAction::ResetCounters { seq } => {
                    self.summary = Summary::default();
                    self.link_baseline = decoder.stats();
                    self.ack(Kind::Reset, seq);
                    info!("reset (message {}): counters cleared", seq);
                }
                DutAction::Ignore { kind, seq } => warn!(
                    "ignored message {}, a {}: only a DUT sends those",
                    seq,
                    Debug2Format(&kind)
                ),
            }
        }
    }

    /// Answers one frame message: runs its payload and sends its results, or takes the
    /// outcome the session reports; then sends its timing record.
    fn frame(&mut self, stream: Stream, seq: u32, task: FrameTask<'_>) {
        let received = cycles();
        self.summary.frames_received = U64::new(self.summary.frames_received.get() + 1);
        let mut detections = [Detection {
            class: U32::ZERO,
            score: F32::ZERO,
            bbox: [F32::ZERO; 7],
        }; MAX_RESULT_DETECTIONS];
        let started = cycles();
        let result = match task {
            FrameTask::Run(payload) => self.run(stream, payload, &mut detections),
            FrameTask::Report(outcome) => Err(outcome),
        };
        let (outcome, deadline_us) = match result {
            Ok((count, deadline_us)) => {
                self.send_detections(seq, stream, &detections[..count]);
                (None, deadline_us)
            }
            Err(outcome) => (Some(outcome), 0),
        };
        let finished = cycles();
        let deadline_ns = u64::from(deadline_us) * 1_000;
        let outcome = outcome.unwrap_or(if cycles_to_ns(finished - received) <= deadline_ns {
            Outcome::Met
        } else {
            Outcome::Late
        });
        let record = TimingRecord {
            frame_seq: U32::new(seq),
            stream: U16::new(stream.code()),
            outcome: U16::new(outcome.code()),
            received_ns: U64::new(cycles_to_ns(received)),
            started_ns: U64::new(cycles_to_ns(started)),
            finished_ns: U64::new(cycles_to_ns(finished)),
            deadline_ns: U64::new(deadline_ns),
            cycles: U64::new(finished - started),
        };
        self.send(Kind::TimingRecord, record.as_bytes());
        self.summary.record(outcome);
    }

    /// Runs `payload` through `stream`'s pipeline into `out`; returns the detections
    /// written and the frame's deadline in µs, or the outcome of a frame not run.
    fn run(
        &mut self,
        stream: Stream,
        payload: &[u8],
        out: &mut [Detection; MAX_RESULT_DETECTIONS],
    ) -> Result<(usize, u32), Outcome> {
        let refused = |error: &dyn core::fmt::Display| {
            warn!(
                "{} frame refused: {}",
                Debug2Format(&stream),
                Display2Format(error)
            );
            Outcome::Refused
        };
        let result = match stream {
            Stream::Camera => {
                let (header, pixels) =
                    payload::read_camera_frame(payload).map_err(|e| refused(&e))?;
                let frame = mcu::camera_frame(
                    usize::from(header.width.get()),
                    usize::from(header.height.get()),
                    usize::from(header.channels.get()),
                    pixels,
                )
                .map_err(|e| refused(&e))?;
                let deadline_us = header.deadline_us.get();
                self.pipelines
                    .camera(&frame)
                    .map(|detections| (to_wire(&detections, out), deadline_us))
            }
            Stream::Lidar => {
                let (header, points) =
                    payload::read_lidar_frame(payload).map_err(|e| refused(&e))?;
                let deadline_us = header.deadline_us.get();
                self.pipelines
                    .lidar(points.iter().map(|point| point.xyzi.map(F32::get)))
                    .map(|detections| (to_wire(&detections, out), deadline_us))
            }
        };
        result.map_err(|error| match error {
            FrameError::Input(e) => refused(&e),
            FrameError::Engine(e) => {
                error!(
                    "{} frame failed: {}",
                    Debug2Format(&stream),
                    Display2Format(&e)
                );
                Outcome::Failed
            }
        })
    }

    fn send_detections(&mut self, seq: u32, stream: Stream, detections: &[Detection]) {
        let Some(len) = payload::write_detections(seq, stream, detections, &mut self.payload)
        else {
            // Unreachable: the buffer is sized for the most detections a pipeline gives.
            error!("detections of message {} do not fit the send buffer", seq);
            return;
        };
        let (payload, message) = (&self.payload[..len], &mut self.message);
        send_message(
            &mut self.uart,
            &mut self.tx_seq,
            message,
            Kind::Detections,
            payload,
        );
    }

    fn ack(&mut self, kind: Kind, seq: u32) {
        let ack = Ack {
            kind: U16::new(kind.code()),
            reserved: U16::ZERO,
            seq: U32::new(seq),
        };
        self.send(Kind::Ack, ack.as_bytes());
    }

    fn send(&mut self, kind: Kind, payload: &[u8]) {
        send_message(
            &mut self.uart,
            &mut self.tx_seq,
            &mut self.message,
            kind,
            payload,
        );
    }
}

/// Encodes one message into `message` with the next sequence number and sends it.
fn send_message(uart: &mut Uart, tx_seq: &mut u32, message: &mut [u8], kind: Kind, payload: &[u8]) {
    match wire::encode(kind, *tx_seq, payload, message) {
        Ok(len) => {
            uart.write_all(&message[..len]);
            *tx_seq = tx_seq.wrapping_add(1);
        }
        // Unreachable: the buffer is sized for the largest payload sent.
        Err(error) => error!(
            "cannot send a {} message: {}",
            Debug2Format(&kind),
            Display2Format(&error)
        ),
    }
}

/// Writes `detections` to the front of `out` in their wire layout; returns how many.
fn to_wire(detections: &[McuDetection], out: &mut [Detection]) -> usize {
    for (wire, detection) in out.iter_mut().zip(detections) {
        *wire = Detection {
            class: U32::new(detection.class),
            score: F32::new(detection.score),
            bbox: detection.bbox.map(F32::new),
        };
    }
    detections.len().min(out.len())
}
