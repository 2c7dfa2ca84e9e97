//! The device under test's side of the conversation with the rig, written once as a
//! sans-IO state machine that the host DUT (`cadence-dut`) and the firmware DUT both
//! run, so both answer every message alike.
//!
//! [`DutSession`] reads nothing and sends nothing: the DUT feeds it each outcome of its
//! [`Decoder`](super::Decoder) and performs the [`DutAction`] it gets back (sending,
//! running a frame, clearing counters). What a frame computes, and how the answers
//! reach the link, stay the DUT's own.
//!
//! # States
//!
//! ```text
//!            Hello sent (boot, restart, new connection)
//!                          │
//!                          ▼
//!   ┌────────────────▶  Idle  ───── Start ─────▶  Running ──┐
//!   │                                                │      │ Start
//!   └────────────── Stop or Reset ───────────────────┘  ◀───┘
//! ```
//!
//! - **Idle**: after `Hello`, and after `Stop` or `Reset`. Frames are not run.
//! - **Running**: after `Start`. Frames are run.
//!
//! # Messages and answers
//!
//! Every rig message is legal in both states; only what a frame gets depends on the
//! state. The DUT's answers, in the order it sends them:
//!
//! ```text
//! message            Idle                              Running
//! Start              Ack; → Running                    Ack (stays Running)
//! CameraFrame,       TimingRecord Skipped              stream served: Detections, then TimingRecord
//! LidarFrame                                             Met or Late (Failed: the engine failed, no
//!                                                        detections; Refused: the payload does not
//!                                                        parse or is not a shape the DUT takes, no
//!                                                        detections; Skipped: the DUT's overrun
//!                                                        policy dropped it)
//!                                                      stream not served: TimingRecord Refused
//! Stop               Summary                           Summary; → Idle
//! Reset              counters cleared, Ack             counters cleared, Ack; → Idle
//! Detections, TimingRecord, Ack, Hello, Summary
//!                    ignored (only a DUT sends them)   ignored
//! ```
//!
//! A frame before `Start` is answered rather than run so that the rig accounts for
//! every frame it sent whatever the state: each intact frame message gets exactly one
//! `TimingRecord` naming its sequence number, and counts in the `Summary`.
//!
//! # The link
//!
//! A message lost or damaged on the link gets nothing: the DUT's decoder counts it
//! ([`DutAction::LinkProblem`] says so, for the DUT's log), and the `Summary` that
//! answers `Stop` reports those counts since boot or the last `Reset`. So the rig
//! accounts for every frame it sent: a timing record, or a loss the DUT's counters
//! explain.

use super::payload::{Hello, Outcome, Stream};
use super::{Frame, Kind, WireError};

/// Whether the DUT runs frames (see the module docs for the transitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DutState {
    /// After `Hello`, `Stop` or `Reset`: frames are answered `Skipped`, not run.
    Idle,
    /// After `Start`: frames are run.
    Running,
}

/// What the DUT does about one decoder outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DutAction<'a> {
    /// The decoder reported (and counted) a problem with the link: log it; nothing is
    /// sent.
    LinkProblem(WireError),
    /// `Start` numbered `seq`: send an `Ack` of it.
    AckStart {
        /// The `Start` message's sequence number.
        seq: u32,
    },
    /// A frame message arrived: count it as received, then do `task` and send its
    /// answer.
    Frame {
        /// The stream the frame belongs to.
        stream: Stream,
        /// The frame message's sequence number.
        seq: u32,
        /// Run it, or answer it without running it.
        task: FrameTask<'a>,
    },
    /// `Stop` numbered `seq`: once every frame handed over is answered, send the
    /// `Summary` of the counters since boot or the last `Reset`.
    SendSummary {
        /// The `Stop` message's sequence number.
        seq: u32,
    },
    /// `Reset` numbered `seq`: once every frame handed over is answered, clear the
    /// counters (the frame counts and the link counts the `Summary` reports), then
    /// send an `Ack` of it.
    ResetCounters {
        /// The `Reset` message's sequence number.
        seq: u32,
    },
    /// A message only a DUT sends: log it; nothing is sent.
    Ignore {
        /// Its kind.
        kind: Kind,
        /// Its sequence number.
        seq: u32,
    },
}

/// What a DUT does with a frame message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameTask<'a> {
    /// Run this payload through the stream's frame path and send its `Detections`, then
    /// its `TimingRecord`; or only a `TimingRecord` when the payload is refused, the
    /// engine fails, or the DUT's overrun policy skips it.
    Run(&'a [u8]),
    /// Do not run it: send only a `TimingRecord` of this outcome (`Skipped` before
    /// `Start`, `Refused` for a stream the DUT does not serve).
    Report(Outcome),
}

/// The DUT's side of the conversation: its state, and the streams its `Hello` offers.
#[derive(Clone, Copy, Debug)]
pub struct DutSession {
    hello: Hello,
    state: DutState,
}

impl DutSession {
    /// A session for a DUT that introduces itself with `hello` (whose streams are the
    /// ones it runs frames of), before its first [`DutSession::greet`].
    pub const fn new(hello: Hello) -> Self {
        Self {
            hello,
            state: DutState::Idle,
        }
    }

    /// Starts the conversation over (at boot, after a restart, on a new connection):
    /// returns the `Hello` to send, and frames wait for `Start` again.
    pub fn greet(&mut self) -> Hello {
        self.state = DutState::Idle;
        self.hello
    }

    /// The state the conversation is in.
    pub fn state(&self) -> DutState {
        self.state
    }

    /// The `Hello` this DUT sends.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Moves the conversation on by one decoder outcome and says what the DUT must
    /// do about it (see the module docs).
    pub fn receive<'a>(&mut self, received: Result<Frame<'a>, WireError>) -> DutAction<'a> {
        let frame = match received {
            Ok(frame) => frame,
            Err(problem) => return DutAction::LinkProblem(problem),
        };
        let seq = frame.seq;
        let stream = match frame.kind {
            Kind::CameraFrame => Stream::Camera,
            Kind::LidarFrame => Stream::Lidar,
            Kind::Start => {
                self.state = DutState::Running;
                return DutAction::AckStart { seq };
            }
            Kind::Stop => {
                self.state = DutState::Idle;
                return DutAction::SendSummary { seq };
            }
            Kind::Reset => {
                self.state = DutState::Idle;
                return DutAction::ResetCounters { seq };
            }
            Kind::Detections | Kind::TimingRecord | Kind::Ack | Kind::Hello | Kind::Summary => {
                return DutAction::Ignore {
                    kind: frame.kind,
                    seq,
                };
            }
        };
        let task = match self.state {
            DutState::Idle => FrameTask::Report(Outcome::Skipped),
            DutState::Running if !self.hello.serves(stream) => FrameTask::Report(Outcome::Refused),
            DutState::Running => FrameTask::Run(frame.payload),
        };
        DutAction::Frame { stream, seq, task }
    }
}
