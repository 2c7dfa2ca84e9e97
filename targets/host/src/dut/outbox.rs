//! The DUT's sending side: one writer shared by the link reader and the stream
//! workers, which numbers every message it sends and keeps the [`Summary`] counters
//! of the timing records among them.

use std::io::Write;
use std::sync::Mutex;

use cadence_runtime::wire::payload::{
    self, Ack, Detection, Outcome, Stream, Summary, TimingRecord,
};
use cadence_runtime::wire::{self, HEADER_LEN, Kind};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32};

/// Bytes of the largest message the DUT sends: a full detections payload.
const MAX_SENT: usize = HEADER_LEN
    + core::mem::size_of::<payload::ResultHeader>()
    + payload::MAX_DETECTIONS * core::mem::size_of::<Detection>();

/// The link's write half, replaced when a new connection is accepted.
pub type LinkWriter = Box<dyn Write + Send>;

struct State {
    writer: Option<LinkWriter>,
    /// The next message's sequence number; a new connection starts again at 0, as a
    /// rebooted device does.
    seq: u32,
    /// Encode buffer, allocated once.
    buf: Vec<u8>,
    /// Scratch for a detections payload, allocated once.
    payload: Vec<u8>,
    summary: Summary,
    /// Writes that failed (the rig went away mid-message); the frame still counts.
    write_failures: u64,
}

/// The shared sender. Each method sends one whole message under the lock, so messages
/// from different threads never interleave on the link.
pub struct Outbox {
    state: Mutex<State>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    /// An outbox with no link yet.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                writer: None,
                seq: 0,
                buf: vec![0; MAX_SENT],
                payload: vec![0; MAX_SENT - HEADER_LEN],
                summary: Summary::default(),
                write_failures: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked mid-send leaves whole messages behind it (each send
        // completes or fails under the lock), so the state stays usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends from now on to `writer`, numbering from 0.
    pub fn connect(&self, writer: LinkWriter) {
        let mut state = self.lock();
        state.writer = Some(writer);
        state.seq = 0;
    }

    /// Stops sending: later messages are counted but go nowhere.
    pub fn disconnect(&self) {
        self.lock().writer = None;
    }

    /// Sends a message of `kind` carrying `body`.
    pub fn send(&self, kind: Kind, body: &[u8]) {
        let mut state = self.lock();
        state.send(kind, body);
    }

    /// Acknowledges the control message `kind` numbered `seq`.
    pub fn ack(&self, kind: Kind, seq: u32) {
        let ack = Ack {
            kind: U16::new(kind.code()),
            reserved: U16::ZERO,
            seq: U32::new(seq),
        };
        self.send(Kind::Ack, ack.as_bytes());
    }

    /// Sends a frame's detections (unless it has none to send) and then its timing
    /// record, back to back, and counts the record in the summary.
    pub fn answer(
        &self,
        stream: Stream,
        detections: Option<&[Detection]>,
        record: &TimingRecord,
        outcome: Outcome,
    ) {
        let mut state = self.lock();
        if let Some(detections) = detections {
            let State { payload, .. } = &mut *state;
            let kept = &detections[..detections.len().min(payload::MAX_DETECTIONS)];
            if let Some(len) =
                payload::write_detections(record.frame_seq.get(), stream, kept, payload)
            {
                let body = std::mem::take(&mut state.payload);
                state.send(Kind::Detections, &body[..len]);
                state.payload = body;
            }
        }
        state.send(Kind::TimingRecord, record.as_bytes());
        state.summary.record(outcome);
    }

    /// The summary counters so far (the link counters are the reader's to fill in).
    pub fn summary(&self) -> Summary {
        self.lock().summary
    }

    /// Clears the summary counters.
    pub fn reset_summary(&self) {
        self.lock().summary = Summary::default();
    }

    /// Counts one more intact frame delivered by the decoder.
    pub fn count_frame_received(&self) {
        let mut state = self.lock();
        let received = &mut state.summary.frames_received;
        *received = received.get().wrapping_add(1).into();
    }

    /// Writes that failed since start.
    pub fn write_failures(&self) -> u64 {
        self.lock().write_failures
    }
}

impl State {
    fn send(&mut self, kind: Kind, body: &[u8]) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let Ok(len) = wire::encode(kind, seq, body, &mut self.buf) else {
            // Every body the DUT builds fits `MAX_SENT`; a larger one is a bug that is
            // counted, not a reason to stop serving.
            self.write_failures += 1;
            return;
        };
        let failed = match self.writer.as_mut() {
            Some(writer) => writer
                .write_all(&self.buf[..len])
                .and_then(|()| writer.flush())
                .is_err(),
            None => true,
        };
        if failed {
            self.write_failures += 1;
        }
    }
}
