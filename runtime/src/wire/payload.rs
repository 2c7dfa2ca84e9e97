//! What each message kind carries between the rig and a device under test (DUT).
//!
//! Every payload is a fixed `#[repr(C)]` little-endian struct with alignment 1,
//! sometimes followed by an array of records, so it is read in place from the
//! decoder's buffer and written with `as_bytes` without a serialiser.
//!
//! ```text
//! kind          direction   payload
//! Hello         DUT → rig   Hello
//! Start         rig → DUT   (empty)                 answered by Ack
//! CameraFrame   rig → DUT   CameraFrameHeader + width·height·channels bytes (HWC, u8)
//! LidarFrame    rig → DUT   LidarFrameHeader + points × LidarPoint
//! Detections    DUT → rig   ResultHeader + count × Detection
//! TimingRecord  DUT → rig   TimingRecord
//! Stop          rig → DUT   (empty)                 answered by Summary
//! Reset         rig → DUT   (empty)                 counters cleared, answered by Ack
//! Ack           either      Ack
//! Summary       DUT → rig   Summary
//! ```
//!
//! The conversation (the DUT's states, which message is legal when, and the answer to
//! each) is [`super::session`]'s, where both DUTs take it from.

use core::fmt;

use zerocopy::little_endian::{F32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{DecoderStats, Kind};

/// Most detections one result carries; a DUT keeps the highest scores beyond it.
pub const MAX_DETECTIONS: usize = 256;

/// The sensor stream a frame or a result belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Stream {
    /// Camera images.
    Camera = 1,
    /// Lidar sweeps.
    Lidar = 2,
}

impl Stream {
    /// The code stored in payloads.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The stream stored as `code`, if it is one.
    pub fn from_code(code: u16) -> Option<Stream> {
        [Stream::Camera, Stream::Lidar]
            .into_iter()
            .find(|stream| stream.code() == code)
    }

    /// The message kind that carries this stream's frames.
    pub const fn frame_kind(self) -> Kind {
        match self {
            Stream::Camera => Kind::CameraFrame,
            Stream::Lidar => Kind::LidarFrame,
        }
    }

    /// Bit of this stream in [`Hello::streams`].
    pub const fn bit(self) -> u16 {
        1 << (self as u16 - 1)
    }
}

/// How a frame ended on the DUT, in its own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Outcome {
    /// Finished by its deadline.
    Met = 0,
    /// Finished after its deadline.
    Late = 1,
    /// Not run: the DUT's overrun policy skipped it.
    Skipped = 2,
    /// Run, but the engine or backend failed.
    Failed = 3,
    /// Not run: its payload did not parse (wrong size or shape).
    Refused = 4,
}

impl Outcome {
    /// Every outcome, in code order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Met,
        Outcome::Late,
        Outcome::Skipped,
        Outcome::Failed,
        Outcome::Refused,
    ];

    /// The code stored in [`TimingRecord::outcome`].
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The outcome stored as `code`, if it is one.
    pub fn from_code(code: u16) -> Option<Outcome> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.code() == code)
    }
}

/// Payload of [`Kind::Hello`]: who the DUT is and what it serves.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Hello {
    /// The DUT's name, UTF-8, padded with zero bytes.
    pub name: [u8; 16],
    /// [`Stream::bit`]s of the streams it processes.
    pub streams: U16,
    /// Reserved, zero.
    pub reserved: U16,
    /// Longest payload its receiver accepts: the rig sends no larger frame.
    pub max_payload: U32,
}

impl Hello {
    /// A hello from `name` (cut to 16 bytes) serving `streams`.
    pub fn new(name: &str, streams: &[Stream], max_payload: u32) -> Self {
        let mut padded = [0; 16];
        let len = name.len().min(padded.len());
        padded[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self {
            name: padded,
            streams: U16::new(streams.iter().fold(0, |bits, s| bits | s.bit())),
            reserved: U16::ZERO,
            max_payload: U32::new(max_payload),
        }
    }

    /// The name without its padding (empty if it is not UTF-8).
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(16);
        core::str::from_utf8(&self.name[..len]).unwrap_or("")
    }

    /// Whether the DUT processes `stream`.
    pub fn serves(&self, stream: Stream) -> bool {
        self.streams.get() & stream.bit() != 0
    }
}

/// Start of a [`Kind::CameraFrame`] payload; the pixels follow, row-major HWC `u8`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CameraFrameHeader {
    /// Image width in pixels.
    pub width: U16,
    /// Image height in pixels.
    pub height: U16,
    /// Channels per pixel (3: RGB).
    pub channels: U16,
    /// Reserved, zero.
    pub reserved: U16,
    /// The frame's relative deadline, from its arrival at the DUT, in microseconds.
    pub deadline_us: U32,
}

/// Start of a [`Kind::LidarFrame`] payload; `points` × [`LidarPoint`] follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct LidarFrameHeader {
    /// Points that follow.
    pub points: U32,
    /// The frame's relative deadline, from its arrival at the DUT, in microseconds.
    pub deadline_us: U32,
}

/// One lidar return.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct LidarPoint {
    /// `x, y, z` in metres and reflected intensity.
    pub xyzi: [F32; 4],
}

/// Start of a [`Kind::Detections`] payload; `count` × [`Detection`] follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ResultHeader {
    /// Sequence number of the frame message these detections answer.
    pub frame_seq: U32,
    /// [`Stream::code`] of that frame.
    pub stream: U16,
    /// Detections that follow (at most [`MAX_DETECTIONS`]).
    pub count: U16,
}

/// One detection (or one class score, from a classifier).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Detection {
    /// Class index.
    pub class: U32,
    /// Confidence in `[0, 1]`.
    pub score: F32,
    /// Camera: `x0, y0, x1, y1` in input pixels, then zeros. Lidar: centre `x, y, z`,
    /// size `l, w, h` in metres and `yaw` in radians. A classifier: the region it
    /// classified (`0, 0, width, height`).
    pub bbox: [F32; 7],
}

/// Payload of [`Kind::TimingRecord`]: how one frame went, in the DUT's clock.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TimingRecord {
    /// Sequence number of the frame message.
    pub frame_seq: U32,
    /// [`Stream::code`] of the frame.
    pub stream: U16,
    /// [`Outcome::code`].
    pub outcome: U16,
    /// When the frame's last byte arrived (its release), ns since the DUT booted.
    pub received_ns: U64,
    /// When processing started, ns since boot.
    pub started_ns: U64,
    /// When processing (results encoded) finished, ns since boot.
    pub finished_ns: U64,
    /// The relative deadline the outcome was judged against, ns.
    pub deadline_ns: U64,
    /// Core clock cycles the frame took, where the DUT counts them (0 otherwise).
    pub cycles: U64,
}

impl TimingRecord {
    /// Release to finish, ns.
    pub fn response_ns(&self) -> u64 {
        self.finished_ns
            .get()
            .saturating_sub(self.received_ns.get())
    }
}

/// Payload of [`Kind::Ack`]: the control message acknowledged.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Ack {
    /// Its [`Kind::code`].
    pub kind: U16,
    /// Reserved, zero.
    pub reserved: U16,
    /// Its sequence number.
    pub seq: U32,
}

/// Payload of [`Kind::Summary`]: everything the DUT counted since boot or `Reset`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Summary {
    /// Frame messages delivered intact by the decoder.
    pub frames_received: U64,
    /// Timing records sent.
    pub records_sent: U64,
    /// Frames per [`Outcome`], indexed by its code.
    pub outcomes: [U64; 5],
    /// The DUT decoder's counts of link problems.
    pub link: LinkCounters,
}

impl Summary {
    /// Frames that ended in `outcome`.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes[usize::from(outcome.code())].get()
    }

    /// Counts one more frame that ended in `outcome` (and its timing record).
    pub fn record(&mut self, outcome: Outcome) {
        let slot = &mut self.outcomes[usize::from(outcome.code())];
        *slot = U64::new(slot.get() + 1);
        self.records_sent = U64::new(self.records_sent.get() + 1);
    }
}

/// [`DecoderStats`] as sent on the wire.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct LinkCounters {
    /// See [`DecoderStats::frames`].
    pub messages: U64,
    /// See [`DecoderStats::skipped_bytes`].
    pub skipped_bytes: U64,
    /// See [`DecoderStats::garbage`].
    pub garbage: U64,
    /// See [`DecoderStats::header_checksum`].
    pub header_checksum: U64,
    /// See [`DecoderStats::unsupported_version`].
    pub unsupported_version: U64,
    /// See [`DecoderStats::unknown_kind`].
    pub unknown_kind: U64,
    /// See [`DecoderStats::too_long`].
    pub too_long: U64,
    /// See [`DecoderStats::payload_checksum`].
    pub payload_checksum: U64,
    /// See [`DecoderStats::truncated`].
    pub truncated: U64,
    /// See [`DecoderStats::duplicate`].
    pub duplicate: U64,
    /// See [`DecoderStats::out_of_order`].
    pub out_of_order: U64,
}

impl From<DecoderStats> for LinkCounters {
    fn from(s: DecoderStats) -> Self {
        Self {
            messages: U64::new(s.frames),
            skipped_bytes: U64::new(s.skipped_bytes),
            garbage: U64::new(s.garbage),
            header_checksum: U64::new(s.header_checksum),
            unsupported_version: U64::new(s.unsupported_version),
            unknown_kind: U64::new(s.unknown_kind),
            too_long: U64::new(s.too_long),
            payload_checksum: U64::new(s.payload_checksum),
            truncated: U64::new(s.truncated),
            duplicate: U64::new(s.duplicate),
            out_of_order: U64::new(s.out_of_order),
        }
    }
}

/// A payload that does not have the layout its kind requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// Shorter than its fixed header.
    TooShort {
        /// The message kind.
        kind: Kind,
        /// Bytes the header needs.
        need: usize,
        /// Bytes the payload has.
        have: usize,
    },
    /// The records after the header do not match the count the header gives.
    WrongLength {
        /// The message kind.
        kind: Kind,
        /// Bytes the header announces in all.
        expected: usize,
        /// Bytes the payload has.
        found: usize,
    },
    /// A detections payload with more than [`MAX_DETECTIONS`].
    TooManyDetections {
        /// Detections announced.
        count: usize,
    },
    /// A stream code that is neither camera nor lidar.
    UnknownStream(u16),
    /// An outcome code this build does not know.
    UnknownOutcome(u16),
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PayloadError::TooShort { kind, need, have } => write!(
                f,
                "{kind:?} payload has {have} bytes, fewer than its {need}-byte header"
            ),
            PayloadError::WrongLength {
                kind,
                expected,
                found,
            } => write!(
                f,
                "{kind:?} payload has {found} bytes but its header announces {expected}; the sender built it wrongly"
            ),
            PayloadError::TooManyDetections { count } => write!(
                f,
                "{count} detections in one result, more than the {MAX_DETECTIONS} allowed; keep the highest scores"
            ),
            PayloadError::UnknownStream(code) => {
                write!(f, "stream code {code} is neither camera (1) nor lidar (2)")
            }
            PayloadError::UnknownOutcome(code) => {
                write!(f, "outcome code {code} is unknown to this build")
            }
        }
    }
}

impl core::error::Error for PayloadError {}

/// Splits `payload` into its fixed header `H` and the bytes after it.
fn split_header<H: FromBytes + KnownLayout + Immutable>(
    kind: Kind,
    payload: &[u8],
) -> Result<(&H, &[u8]), PayloadError> {
    H::ref_from_prefix(payload).map_err(|_| PayloadError::TooShort {
        kind,
        need: core::mem::size_of::<H>(),
        have: payload.len(),
    })
}

/// Reads `count` records of `R` from `rest`, which must hold exactly that many.
fn records<R: FromBytes + KnownLayout + Immutable>(
    kind: Kind,
    header_len: usize,
    count: usize,
    rest: &[u8],
) -> Result<&[R], PayloadError> {
    let wrong_length = || PayloadError::WrongLength {
        kind,
        expected: header_len.saturating_add(count.saturating_mul(core::mem::size_of::<R>())),
        found: header_len + rest.len(),
    };
    match <[R]>::ref_from_bytes_with_elems(rest, count) {
        Ok(records) => Ok(records),
        Err(_) => Err(wrong_length()),
    }
}

/// Reads a fixed-size payload (`Hello`, `TimingRecord`, `Ack`, `Summary`).
pub fn read_fixed<P: FromBytes + KnownLayout + Immutable>(
    kind: Kind,
    payload: &[u8],
) -> Result<&P, PayloadError> {
    let (fixed, rest) = split_header::<P>(kind, payload)?;
    if rest.is_empty() {
        Ok(fixed)
    } else {
        Err(PayloadError::WrongLength {
            kind,
            expected: core::mem::size_of::<P>(),
            found: payload.len(),
        })
    }
}

/// Reads a camera frame: its header and its `width × height × channels` pixel bytes.
pub fn read_camera_frame(payload: &[u8]) -> Result<(&CameraFrameHeader, &[u8]), PayloadError> {
    let (header, pixels) = split_header::<CameraFrameHeader>(Kind::CameraFrame, payload)?;
    // Three u16 factors overflow a 32-bit usize (the firmware's): a product that does
    // not fit is a length no payload has.
    let count = usize::from(header.width.get())
        .checked_mul(usize::from(header.height.get()))
        .and_then(|n| n.checked_mul(usize::from(header.channels.get())))
        .unwrap_or(usize::MAX);
    let pixels = records::<u8>(
        Kind::CameraFrame,
        core::mem::size_of::<CameraFrameHeader>(),
        count,
        pixels,
    )?;
    Ok((header, pixels))
}

/// Reads a lidar frame: its header and its points.
pub fn read_lidar_frame(
    payload: &[u8],
) -> Result<(&LidarFrameHeader, &[LidarPoint]), PayloadError> {
    let (header, rest) = split_header::<LidarFrameHeader>(Kind::LidarFrame, payload)?;
    let count = usize::try_from(header.points.get()).unwrap_or(usize::MAX);
    let points = records(
        Kind::LidarFrame,
        core::mem::size_of::<LidarFrameHeader>(),
        count,
        rest,
    )?;
    Ok((header, points))
}

/// Reads a detections payload: its header, its stream and its detections.
pub fn read_detections(
    payload: &[u8],
) -> Result<(&ResultHeader, Stream, &[Detection]), PayloadError> {
    let (header, rest) = split_header::<ResultHeader>(Kind::Detections, payload)?;
    let stream = Stream::from_code(header.stream.get())
        .ok_or(PayloadError::UnknownStream(header.stream.get()))?;
    let count = usize::from(header.count.get());
    if count > MAX_DETECTIONS {
        return Err(PayloadError::TooManyDetections { count });
    }
    let detections = records(
        Kind::Detections,
        core::mem::size_of::<ResultHeader>(),
        count,
        rest,
    )?;
    Ok((header, stream, detections))
}

/// Reads a timing record, with its stream and outcome checked.
pub fn read_timing_record(
    payload: &[u8],
) -> Result<(&TimingRecord, Stream, Outcome), PayloadError> {
    let record = read_fixed::<TimingRecord>(Kind::TimingRecord, payload)?;
    let stream = Stream::from_code(record.stream.get())
        .ok_or(PayloadError::UnknownStream(record.stream.get()))?;
    let outcome = Outcome::from_code(record.outcome.get())
        .ok_or(PayloadError::UnknownOutcome(record.outcome.get()))?;
    Ok((record, stream, outcome))
}

/// Writes a detections payload (header, then `detections`) to the front of `out` and
/// returns its length; `None` if `out` is too small or there are more than
/// [`MAX_DETECTIONS`].
pub fn write_detections(
    frame_seq: u32,
    stream: Stream,
    detections: &[Detection],
    out: &mut [u8],
) -> Option<usize> {
    if detections.len() > MAX_DETECTIONS {
        return None;
    }
    let header = ResultHeader {
        frame_seq: U32::new(frame_seq),
        stream: U16::new(stream.code()),
        count: U16::new(u16::try_from(detections.len()).ok()?),
    };
    write_parts(out, &[header.as_bytes(), detections.as_bytes()])
}

/// Writes a frame's fixed header then its records to the front of `out` and returns
/// the payload length; `None` if `out` is too small.
pub fn write_parts(out: &mut [u8], parts: &[&[u8]]) -> Option<usize> {
    let mut len = 0;
    for part in parts {
        out.get_mut(len..len + part.len())?.copy_from_slice(part);
        len += part.len();
    }
    Some(len)
}
