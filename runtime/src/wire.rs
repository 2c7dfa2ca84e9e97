//! The HIL wire protocol: frames and results framed over a plain byte stream.
//!
//! The rig and a device under test talk over whatever carries bytes: a UART (the
//! firmware under QEMU's `-serial tcp:` chardev), a TCP connection or a Unix socket.
//! None of these keeps message boundaries, and a UART also drops, flips and repeats
//! bytes, so every message is a [`Header`] followed by its payload:
//!
//! ```text
//! offset 0   magic "CDN\xa5"    4 bytes
//! offset 4   version            u16
//! offset 6   kind               u16   (see Kind)
//! offset 8   sequence number    u32   (per stream, +1 per frame, wrapping)
//! offset 12  payload length     u32   (at most MAX_PAYLOAD_LEN)
//! offset 16  payload CRC-32     u32
//! offset 20  header CRC-32      u32   (over bytes 0..20)
//! offset 24  payload
//! ```
//!
//! All integers are little-endian and the header has alignment 1, so it is parsed at
//! any offset of a receive buffer and payloads are handed out in place.
//!
//! [`encode`] writes one message into a caller buffer. [`Decoder`] reassembles messages
//! from arbitrary chunks in a fixed buffer and reports every problem as a [`WireError`]
//! before carrying on with the next message; nothing in this module allocates or panics
//! on any input.

use core::fmt;

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub mod payload;
pub mod session;

/// First bytes of every message; the decoder resynchronises on them after an error.
///
/// No tail of it is also a head of it, so garbage ending in part of a magic cannot
/// combine with a real magic into a false one; the last byte has its top bit set, so a
/// link that strips bytes to seven bits passes no message.
pub const MAGIC: [u8; 4] = *b"CDN\xa5";
/// Protocol version this build speaks; a message with another version is refused.
pub const VERSION: u16 = 1;
/// Size of [`Header`] in bytes.
pub const HEADER_LEN: usize = core::mem::size_of::<Header>();
/// Byte offset of [`Header::header_crc`]; the header CRC covers the bytes before it.
pub const HEADER_CRC_OFFSET: usize = 20;
/// Largest camera frame: a 320 × 320 RGB image, one byte per channel.
pub const MAX_CAMERA_FRAME_LEN: usize = 320 * 320 * 3;
/// Most points in one lidar sweep.
pub const MAX_LIDAR_POINTS: usize = 32_768;
/// Bytes per lidar point: `x, y, z, intensity` as little-endian `f32`.
pub const LIDAR_POINT_LEN: usize = 4 * core::mem::size_of::<f32>();
/// Largest payload of any message: the larger of a camera frame and a lidar sweep
/// (512 KiB with the figures above). Results and control messages are far smaller.
pub const MAX_PAYLOAD_LEN: usize = max(MAX_CAMERA_FRAME_LEN, MAX_LIDAR_POINTS * LIDAR_POINT_LEN);

const _: () = assert!(HEADER_LEN == HEADER_CRC_OFFSET + 4);
const _: () = assert!(MAX_PAYLOAD_LEN <= u32::MAX as usize);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The fixed message header (see the module docs for the layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 4],
    /// [`VERSION`].
    pub version: U16,
    /// A [`Kind`] code.
    pub kind: U16,
    /// Sequence number: the previous message's plus one (wrapping).
    pub seq: U32,
    /// Payload bytes following the header.
    pub payload_len: U32,
    /// CRC-32 of the payload.
    pub payload_crc: U32,
    /// CRC-32 of the header bytes before this field.
    pub header_crc: U32,
}

impl Header {
    /// The header of a message carrying `payload`, with both checksums filled in.
    ///
    /// The payload length is not checked against [`MAX_PAYLOAD_LEN`] here (a length
    /// that does not fit a `u32` saturates), so fault-injection tools can build
    /// oversized headers; [`encode`] checks it.
    pub fn new(kind: Kind, seq: u32, payload: &[u8]) -> Self {
        let mut header = Self {
            magic: MAGIC,
            version: U16::new(VERSION),
            kind: U16::new(kind.code()),
            seq: U32::new(seq),
            payload_len: U32::new(u32::try_from(payload.len()).unwrap_or(u32::MAX)),
            payload_crc: U32::new(crc32fast::hash(payload)),
            header_crc: U32::ZERO,
        };
        header.seal();
        header
    }

    /// Recomputes [`Header::header_crc`] after a field was changed.
    pub fn seal(&mut self) {
        self.header_crc = U32::new(self.computed_header_crc());
    }

    fn computed_header_crc(&self) -> u32 {
        crc32fast::hash(&self.as_bytes()[..HEADER_CRC_OFFSET])
    }
}

/// What a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    /// Rig → DUT: one camera image.
    CameraFrame = 1,
    /// Rig → DUT: one lidar sweep.
    LidarFrame = 2,
    /// DUT → rig: the detections computed for a frame.
    Detections = 3,
    /// DUT → rig: the timing of a frame's pipeline.
    TimingRecord = 4,
    /// Rig → DUT: start processing frames.
    Start = 5,
    /// Rig → DUT: stop processing frames.
    Stop = 6,
    /// Rig → DUT: drop all state and wait for `Start`.
    Reset = 7,
    /// Either way: acknowledges a control message.
    Ack = 8,
    /// DUT → rig: sent once at boot (and after every restart).
    Hello = 9,
    /// DUT → rig: the DUT's counters, in answer to `Stop`.
    Summary = 10,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 10] = [
        Kind::CameraFrame,
        Kind::LidarFrame,
        Kind::Detections,
        Kind::TimingRecord,
        Kind::Start,
        Kind::Stop,
        Kind::Reset,
        Kind::Ack,
        Kind::Hello,
        Kind::Summary,
    ];

    /// The code stored in [`Header::kind`].
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The kind stored as `code`, if this build knows it.
    pub fn from_code(code: u16) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// A problem with the byte stream or with a message to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Bytes that do not start a message were skipped up to the next magic.
    Garbage {
        /// Bytes skipped.
        skipped: usize,
    },
    /// A header's CRC does not match: the header is damaged, so is its length, and the
    /// decoder resynchronises on the next magic.
    HeaderChecksum,
    /// A message of another protocol version.
    UnsupportedVersion {
        /// Version in the header.
        found: u16,
        /// [`VERSION`].
        supported: u16,
    },
    /// A message kind this build does not know.
    UnknownKind(u16),
    /// A payload longer than the receiver can hold, or than [`MAX_PAYLOAD_LEN`].
    TooLong {
        /// Payload length in the header, or of the payload to encode.
        length: usize,
        /// The largest length accepted.
        max: usize,
    },
    /// A payload's CRC does not match its header's; the message is dropped.
    PayloadChecksum {
        /// Sequence number of the dropped message.
        seq: u32,
    },
    /// The stream ended inside a message.
    Truncated {
        /// Sequence number of the message, when its header arrived whole.
        seq: Option<u32>,
        /// Bytes of the message that arrived.
        have: usize,
        /// Bytes needed: the header's, or the whole message's once the header arrived.
        need: usize,
    },
    /// The same sequence number twice in a row; the repeat is dropped.
    Duplicate {
        /// The repeated sequence number.
        seq: u32,
    },
    /// A sequence number other than the previous one plus one: messages were lost or
    /// reordered. The message is still delivered, by the next call.
    OutOfOrder {
        /// The previous sequence number plus one.
        expected: u32,
        /// The message's sequence number.
        found: u32,
    },
    /// The output buffer cannot hold the encoded message.
    BufferTooSmall {
        /// Bytes the message needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::Garbage { skipped } => write!(
                f,
                "skipped {skipped} bytes that do not start a message; check the link's baud rate and framing, or another writer on the stream"
            ),
            WireError::HeaderChecksum => write!(
                f,
                "a message header failed its CRC (bytes damaged in transit); resynchronising on the next message"
            ),
            WireError::UnsupportedVersion { found, supported } => write!(
                f,
                "message uses wire protocol version {found}, this build speaks version {supported}; rebuild the rig and the device from the same source"
            ),
            WireError::UnknownKind(code) => write!(
                f,
                "message kind {code} is unknown to this build; rebuild the rig and the device from the same source"
            ),
            WireError::TooLong { length, max } => write!(
                f,
                "payload of {length} bytes exceeds the {max} bytes accepted; send smaller frames or enlarge the receive buffer"
            ),
            WireError::PayloadChecksum { seq } => write!(
                f,
                "payload of message {seq} failed its CRC (bytes damaged in transit); the message was dropped"
            ),
            WireError::Truncated {
                seq: Some(seq),
                have,
                need,
            } => write!(
                f,
                "stream ended inside message {seq}: {have} of {need} bytes arrived"
            ),
            WireError::Truncated {
                seq: None,
                have,
                need,
            } => write!(
                f,
                "stream ended inside a message header: {have} of {need} bytes arrived"
            ),
            WireError::Duplicate { seq } => write!(
                f,
                "message {seq} arrived twice in a row; the repeat was dropped"
            ),
            WireError::OutOfOrder { expected, found } => write!(
                f,
                "expected message {expected} but got {found}: messages were lost or reordered"
            ),
            WireError::BufferTooSmall { need, have } => write!(
                f,
                "message needs {need} bytes but the output buffer holds {have}; pass a buffer of at least HEADER_LEN + payload length"
            ),
        }
    }
}

impl core::error::Error for WireError {}

/// Writes a message (header, then `payload`) to the front of `out` and returns its
/// length in bytes.
pub fn encode(kind: Kind, seq: u32, payload: &[u8], out: &mut [u8]) -> Result<usize, WireError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(WireError::TooLong {
            length: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    let need = HEADER_LEN + payload.len();
    let Some(message) = out.get_mut(..need) else {
        return Err(WireError::BufferTooSmall {
            need,
            have: out.len(),
        });
    };
    let (header, body) = message.split_at_mut(HEADER_LEN);
    header.copy_from_slice(Header::new(kind, seq, payload).as_bytes());
    body.copy_from_slice(payload);
    Ok(need)
}

/// One message as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the payload carries.
    pub kind: Kind,
    /// The message's sequence number.
    pub seq: u32,
    /// The payload, in place in the decoder's buffer.
    pub payload: &'a [u8],
}

/// How often each outcome occurred since the decoder was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Messages delivered.
    pub frames: u64,
    /// Bytes skipped while looking for a message start: garbage, and the remains of
    /// rejected headers.
    pub skipped_bytes: u64,
    /// [`WireError::Garbage`] reports.
    pub garbage: u64,
    /// [`WireError::HeaderChecksum`] reports.
    pub header_checksum: u64,
    /// [`WireError::UnsupportedVersion`] reports.
    pub unsupported_version: u64,
    /// [`WireError::UnknownKind`] reports.
    pub unknown_kind: u64,
    /// [`WireError::TooLong`] reports.
    pub too_long: u64,
    /// [`WireError::PayloadChecksum`] reports.
    pub payload_checksum: u64,
    /// [`WireError::Truncated`] reports.
    pub truncated: u64,
    /// [`WireError::Duplicate`] reports.
    pub duplicate: u64,
    /// [`WireError::OutOfOrder`] reports.
    pub out_of_order: u64,
}

impl DecoderStats {
    /// The counts since `baseline`, an earlier snapshot of the same decoder: what a
    /// device reports after a `Reset` cleared its counters without a new decoder.
    pub fn since(&self, baseline: &DecoderStats) -> DecoderStats {
        DecoderStats {
            frames: self.frames - baseline.frames,
            skipped_bytes: self.skipped_bytes - baseline.skipped_bytes,
            garbage: self.garbage - baseline.garbage,
            header_checksum: self.header_checksum - baseline.header_checksum,
            unsupported_version: self.unsupported_version - baseline.unsupported_version,
            unknown_kind: self.unknown_kind - baseline.unknown_kind,
            too_long: self.too_long - baseline.too_long,
            payload_checksum: self.payload_checksum - baseline.payload_checksum,
            truncated: self.truncated - baseline.truncated,
            duplicate: self.duplicate - baseline.duplicate,
            out_of_order: self.out_of_order - baseline.out_of_order,
        }
    }
}

/// What to do with the front of the buffer before looking at it again.
#[derive(Clone, Copy, Debug)]
enum Pending {
    Nothing,
    /// Drop this many bytes: a message handed out (or dropped) by the last call.
    Consume(usize),
    /// A checked message of this many bytes, announced by an `OutOfOrder` report.
    Deliver {
        kind: Kind,
        seq: u32,
        len: usize,
    },
}

/// Reassembles messages from a byte stream in a fixed buffer of `CAPACITY` bytes.
///
/// Feed bytes with [`Decoder::push`] and drain outcomes with [`Decoder::next_frame`]
/// until it returns `None`; at the end of the stream call [`Decoder::finish`] and drain
/// again. A message that has not fully arrived is waited for, not reported. Rules:
///
/// - bytes before a magic are skipped and reported once per run as
///   [`WireError::Garbage`], except the remains of a header already reported as bad;
/// - a header is checked for its CRC, then version, kind and length (at most
///   [`MAX_PAYLOAD_LEN`] and at most `CAPACITY - HEADER_LEN`); a bad one is reported
///   and the decoder resynchronises on the next magic after its first byte;
/// - a bad payload is reported and its message dropped whole (its header is intact);
/// - sequence numbers: the first message sets the sequence; a repeat of the previous
///   number is reported as [`WireError::Duplicate`] and dropped; any other number than
///   the previous plus one is reported as [`WireError::OutOfOrder`], after which the
///   message is delivered by the next call and its number becomes the previous one.
///   Dropped messages do not advance the sequence, so a loss shows as a gap.
///
/// Messages are kept contiguous so payloads are handed out in place; the buffer's
/// remaining bytes are moved to its front as each message is consumed.
pub struct Decoder<const CAPACITY: usize> {
    buf: [u8; CAPACITY],
    len: usize,
    pending: Pending,
    last_seq: Option<u32>,
    /// Bytes skipped since the last magic found.
    garbage_run: usize,
    /// The current garbage run follows a reported bad header and is not reported.
    run_explained: bool,
    ended: bool,
    stats: DecoderStats,
}

impl<const CAPACITY: usize> Default for Decoder<CAPACITY> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAPACITY: usize> Decoder<CAPACITY> {
    /// Longest payload this decoder accepts.
    pub const MAX_PAYLOAD: usize = max_payload(CAPACITY);

    /// An empty decoder at the start of a stream.
    pub const fn new() -> Self {
        const {
            assert!(
                CAPACITY > HEADER_LEN,
                "a decoder must hold a header and some payload"
            )
        };
        Self {
            buf: [0; CAPACITY],
            len: 0,
            pending: Pending::Nothing,
            last_seq: None,
            garbage_run: 0,
            run_explained: false,
            ended: false,
            stats: DecoderStats {
                frames: 0,
                skipped_bytes: 0,
                garbage: 0,
                header_checksum: 0,
                unsupported_version: 0,
                unknown_kind: 0,
                too_long: 0,
                payload_checksum: 0,
                truncated: 0,
                duplicate: 0,
                out_of_order: 0,
            },
        }
    }

    /// Counts of every outcome so far.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Appends as many of `bytes` as fit and returns how many that was. When it is
    /// fewer than given, drain [`Decoder::next_frame`] and push the rest: the buffer
    /// always frees up, since every accepted message fits it.
    ///
    /// Pushing after [`Decoder::finish`] starts a new stream once the old one has been
    /// drained.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.consume_pending();
        let taken = bytes.len().min(CAPACITY - self.len);
        self.buf[self.len..self.len + taken].copy_from_slice(&bytes[..taken]);
        self.len += taken;
        taken
    }

    /// Marks the end of the stream: the following [`Decoder::next_frame`] calls report
    /// a message cut short as [`WireError::Truncated`] and a trailing garbage run,
    /// then return `None` and leave the decoder ready for a new stream.
    pub fn finish(&mut self) {
        self.ended = true;
    }

    /// The next outcome from the bytes pushed so far, or `None` when more bytes are
    /// needed (or, after [`Decoder::finish`], when the stream is fully drained).
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, WireError>> {
        if let Pending::Deliver { kind, seq, len } = self.pending {
            return Some(Ok(self.deliver(kind, seq, len)));
        }
        self.consume_pending();

        let magic_at = find_magic(&self.buf[..self.len]);
        let skip = magic_at.unwrap_or(self.len - magic_prefix_at_end(&self.buf[..self.len]));
        self.skip(skip);
        if self.garbage_run > 0 && (magic_at.is_some() || self.ended) {
            let skipped = core::mem::take(&mut self.garbage_run);
            if !core::mem::take(&mut self.run_explained) {
                self.stats.garbage += 1;
                return Some(Err(WireError::Garbage { skipped }));
            }
        }

        let Ok((header, _)) = Header::read_from_prefix(&self.buf[..self.len]) else {
            return self.wait_or_truncate(None, HEADER_LEN);
        };
        if header.header_crc.get() != header.computed_header_crc() {
            self.stats.header_checksum += 1;
            return Some(Err(self.resync(WireError::HeaderChecksum)));
        }
        if header.version.get() != VERSION {
            self.stats.unsupported_version += 1;
            return Some(Err(self.resync(WireError::UnsupportedVersion {
                found: header.version.get(),
                supported: VERSION,
            })));
        }
        let Some(kind) = Kind::from_code(header.kind.get()) else {
            self.stats.unknown_kind += 1;
            return Some(Err(self.resync(WireError::UnknownKind(header.kind.get()))));
        };
        let payload_len = usize::try_from(header.payload_len.get()).unwrap_or(usize::MAX);
        if payload_len > Self::MAX_PAYLOAD {
            self.stats.too_long += 1;
            return Some(Err(self.resync(WireError::TooLong {
                length: payload_len,
                max: Self::MAX_PAYLOAD,
            })));
        }

        let seq = header.seq.get();
        let len = HEADER_LEN + payload_len;
        if self.len < len {
            return self.wait_or_truncate(Some(seq), len);
        }
        self.pending = Pending::Consume(len);
        if crc32fast::hash(&self.buf[HEADER_LEN..len]) != header.payload_crc.get() {
            self.stats.payload_checksum += 1;
            return Some(Err(WireError::PayloadChecksum { seq }));
        }
        match self.last_seq {
            Some(last) if seq == last => {
                self.stats.duplicate += 1;
                Some(Err(WireError::Duplicate { seq }))
            }
            Some(last) if seq != last.wrapping_add(1) => {
                self.stats.out_of_order += 1;
                self.last_seq = Some(seq);
                self.pending = Pending::Deliver { kind, seq, len };
                Some(Err(WireError::OutOfOrder {
                    expected: last.wrapping_add(1),
                    found: seq,
                }))
            }
            _ => {
                self.last_seq = Some(seq);
                Some(Ok(self.deliver(kind, seq, len)))
            }
        }
    }

    fn deliver(&mut self, kind: Kind, seq: u32, len: usize) -> Frame<'_> {
        self.stats.frames += 1;
        self.pending = Pending::Consume(len);
        Frame {
            kind,
            seq,
            payload: &self.buf[HEADER_LEN..len],
        }
    }

    /// Waits for a message of `need` bytes, or reports it cut short at the end of the
    /// stream (and then resets for the next stream).
    fn wait_or_truncate(
        &mut self,
        seq: Option<u32>,
        need: usize,
    ) -> Option<Result<Frame<'_>, WireError>> {
        if !self.ended {
            return None;
        }
        if self.len > 0 {
            let have = core::mem::take(&mut self.len);
            self.stats.truncated += 1;
            return Some(Err(WireError::Truncated { seq, have, need }));
        }
        self.ended = false;
        self.last_seq = None;
        None
    }

    /// Skips the first byte of a rejected header, so the search for the next magic
    /// starts inside it, and returns `error` for reporting.
    fn resync(&mut self, error: WireError) -> WireError {
        self.skip(1);
        self.run_explained = true;
        error
    }

    fn consume_pending(&mut self) {
        if let Pending::Consume(len) = self.pending {
            self.drop_front(len);
            self.pending = Pending::Nothing;
        }
    }

    fn skip(&mut self, count: usize) {
        self.drop_front(count);
        self.garbage_run += count;
        self.stats.skipped_bytes += count as u64;
    }

    fn drop_front(&mut self, count: usize) {
        self.buf.copy_within(count..self.len, 0);
        self.len -= count;
    }
}

const fn max_payload(capacity: usize) -> usize {
    let room = capacity.saturating_sub(HEADER_LEN);
    if room < MAX_PAYLOAD_LEN {
        room
    } else {
        MAX_PAYLOAD_LEN
    }
}

fn find_magic(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(MAGIC.len())
        .position(|window| window == MAGIC)
}

/// Length of the longest tail of `bytes` that could be the start of a magic.
fn magic_prefix_at_end(bytes: &[u8]) -> usize {
    (1..MAGIC.len())
        .rev()
        .find(|&len| bytes.ends_with(&MAGIC[..len]))
        .unwrap_or(0)
}
