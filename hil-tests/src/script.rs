//! One byte script for every device under test: the conversation of
//! [`cadence_runtime::wire::session`] walked through message by message (frames
//! before `Start`, after `Stop` and after `Reset`, a payload that does not parse,
//! link faults), and the DUT's answers written down as a [`Transcript`] that leaves out
//! what differs between DUTs by design (timings, detections' values, names, buffer
//! sizes). Two DUTs that run the same conversation give the same transcript.
//!
//! The rig sends one step at a time and waits for the answer the protocol promises
//! for it (an `Ack`, the frame's `TimingRecord`, the `Summary`) before the next, so
//! the transcript does not depend on how fast the DUT is; a step the DUT cannot see
//! (noise, a damaged or lost message) waits for nothing and shows only in the
//! `Summary`'s link counts.

use std::path::Path;
use std::time::{Duration, Instant};

use cadence_runtime::wire::payload::{Outcome, Stream, Summary};
use cadence_runtime::wire::{HEADER_LEN, Kind};
use zerocopy::IntoBytes;
use zerocopy::little_endian::U32;

use crate::link::{Connection, Incoming, Launcher, LinkError};
use crate::rig::{Rig, RigFileError};
use crate::streams::{StreamError, camera_header, lidar_payload};

/// The DUT's answers, one line each, in arrival order.
pub type Transcript = Vec<String>;

/// Why the script could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The rig file is unusable.
    #[error(transparent)]
    RigFile(#[from] RigFileError),
    /// The DUT cannot be started or talked to.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// A frame of the script cannot be built.
    #[error(transparent)]
    Frame(#[from] StreamError),
    /// The DUT did not give an answer the protocol promises.
    #[error(
        "no {awaited} from the DUT within {timeout:?} (step {step} of the script); the transcript so far:\n{transcript}"
    )]
    NoAnswer {
        /// The answer awaited.
        awaited: String,
        /// The step it answers.
        step: usize,
        /// How long the rig waited.
        timeout: Duration,
        /// What the DUT had answered.
        transcript: String,
    },
}

/// Side of the camera crops the script sends: the firmware's ROI classifier takes it
/// as it is, the host detector resizes it.
const CROP_SIDE: u16 = 32;
/// Points in the script's lidar sweeps: within the firmware's limit.
const SWEEP_POINTS: usize = 64;
/// The frames' deadline: so long that every frame run is in time on any DUT, though
/// the transcript does not tell `Met` from `Late` anyway.
const DEADLINE_US: u32 = 30_000_000;

/// What the rig does in one step.
enum Step {
    /// Sends a message intact.
    Send(Kind, Vec<u8>),
    /// Sends a message twice in a row: the repeat is the DUT's decoder's to drop.
    SendTwice(Kind, Vec<u8>),
    /// Sends a message with its last payload byte flipped: the DUT drops it.
    SendCorrupted(Kind, Vec<u8>),
    /// Uses up a sequence number without sending: the next message is out of order.
    Lose,
    /// Sends bytes that are no message.
    Noise(&'static [u8]),
}

/// The answer that ends a step, by the protocol.
enum Awaited {
    Ack(u32),
    Record(u32),
    Summary,
}

/// The script: every row of the session module's table that a DUT serving both
/// streams can be shown, in every state, and the link faults the `Summary` counts.
fn script() -> Result<Vec<Step>, StreamError> {
    let crop_len = usize::from(CROP_SIDE) * usize::from(CROP_SIDE) * 3;
    let crop = |pixels: usize| {
        let mut payload = camera_header(CROP_SIDE, CROP_SIDE, U32::new(DEADLINE_US))
            .as_bytes()
            .to_vec();
        payload.extend((0..pixels).map(|i| (i * 7 % 251) as u8));
        payload
    };
    let sweep: Vec<[f32; 4]> = (0..SWEEP_POINTS)
        .map(|i| {
            let i = i as f32;
            [4.0 + i * 0.3, -3.0 + i * 0.1, 0.5, 0.8]
        })
        .collect();
    let sweep = lidar_payload("script", &sweep, U32::new(DEADLINE_US))?;
    let camera = |payload: &[u8]| Step::Send(Kind::CameraFrame, payload.to_vec());
    let lidar = || Step::Send(Kind::LidarFrame, sweep.clone());
    let (whole, short) = (crop(crop_len), crop(crop_len / 2));
    Ok(vec![
        camera(&whole), // before Start: skipped
        lidar(),
        Step::Send(Kind::Start, Vec::new()),
        camera(&whole), // run
        lidar(),
        camera(&short),                      // pixels missing: refused
        Step::Send(Kind::Start, Vec::new()), // again: acknowledged, still running
        Step::Noise(b"line noise between messages"),
        Step::SendCorrupted(Kind::CameraFrame, whole.clone()),
        Step::SendTwice(Kind::LidarFrame, sweep.clone()),
        Step::Send(Kind::Hello, Vec::new()), // only a DUT sends it: ignored
        Step::Lose,
        Step::Send(Kind::Stop, Vec::new()),
        camera(&whole), // after Stop: skipped
        Step::Send(Kind::Stop, Vec::new()),
        Step::Send(Kind::Start, Vec::new()),
        Step::Send(Kind::Reset, Vec::new()),
        lidar(), // after Reset: skipped
        Step::Send(Kind::Start, Vec::new()),
        camera(&whole),
        Step::Send(Kind::Stop, Vec::new()),
    ])
}

/// Runs the script against the DUT of the rig file at `rig` (its streams and faults
/// are not used), waiting for each answer as long as the rig waits for outstanding
/// ones; `{bin}` and `{models}` in its command expand to `bin` and `models`.
pub fn run_rig_file(rig: &Path, bin: &Path, models: &Path) -> Result<Transcript, ScriptError> {
    let rig = Rig::load(rig)?;
    let mut launcher = Launcher::new(&rig.dut, bin, models, None);
    run(
        &mut launcher,
        Duration::from_secs_f64(rig.run.answer_timeout_s),
    )
}

/// Starts the DUT with `launcher`, runs the script against it, waiting up to
/// `timeout` for each answer, and returns its transcript (the DUT is stopped after).
pub fn run(launcher: &mut Launcher, timeout: Duration) -> Result<Transcript, ScriptError> {
    let steps = script()?;
    let mut conn = launcher.start()?;
    let mut transcript = Transcript::new();
    let hello = await_answer(&conn, &mut transcript, timeout, |m| {
        matches!(m, Incoming::Hello(_))
    });
    if !hello {
        return Err(no_answer("Hello".into(), 0, timeout, &transcript));
    }
    for (step, action) in steps.into_iter().enumerate() {
        let Some((awaited, what)) = send(&mut conn, action)? else {
            continue;
        };
        let answered = await_answer(&conn, &mut transcript, timeout, |m| match (&awaited, m) {
            (Awaited::Ack(seq), Incoming::Ack { seq: acked, .. }) => acked == seq,
            (Awaited::Record(seq), Incoming::Timing { record, .. }) => {
                record.frame_seq.get() == *seq
            }
            (Awaited::Summary, Incoming::Summary(_)) => true,
            _ => false,
        });
        if !answered {
            return Err(no_answer(what, step + 1, timeout, &transcript));
        }
    }
    transcript.extend(conn.close().into_iter().filter_map(|(_, m)| line(&m)));
    launcher.kill();
    Ok(transcript)
}

/// Does `step` on `conn`; returns the answer that ends it and its description, if the
/// DUT is to see the step at all.
fn send(conn: &mut Connection, step: Step) -> Result<Option<(Awaited, String)>, LinkError> {
    let (kind, seq) = match step {
        Step::Send(kind, payload) => (kind, conn.send(kind, &payload)?),
        Step::SendTwice(kind, payload) => {
            let (seq, _) = conn.encode(kind, &payload);
            conn.write_encoded_times(2)?;
            (kind, seq)
        }
        Step::SendCorrupted(kind, payload) => {
            let (_, message) = conn.encode(kind, &payload);
            if message.len() > HEADER_LEN {
                let last = message.len() - 1;
                message[last] ^= 0xff;
            }
            let message = message.to_vec();
            conn.write_raw(&message)?;
            return Ok(None);
        }
        Step::Lose => {
            conn.skip_seq();
            return Ok(None);
        }
        Step::Noise(bytes) => {
            conn.write_raw(bytes)?;
            return Ok(None);
        }
    };
    Ok(match kind {
        Kind::Start | Kind::Reset => Some((Awaited::Ack(seq), format!("Ack of {kind:?} {seq}"))),
        Kind::CameraFrame | Kind::LidarFrame => Some((
            Awaited::Record(seq),
            format!("TimingRecord of {kind:?} {seq}"),
        )),
        Kind::Stop => Some((Awaited::Summary, format!("Summary answering Stop {seq}"))),
        Kind::Detections | Kind::TimingRecord | Kind::Ack | Kind::Hello | Kind::Summary => None,
    })
}

/// Writes down what arrives until a message `ends` the wait (true) or `timeout`
/// passes (false).
fn await_answer(
    conn: &Connection,
    transcript: &mut Transcript,
    timeout: Duration,
    ends: impl Fn(&Incoming) -> bool,
) -> bool {
    let until = Instant::now() + timeout;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let Some((_, message)) = conn.next(left) else {
            return false;
        };
        transcript.extend(line(&message));
        if ends(&message) {
            return true;
        }
    }
}

fn no_answer(
    awaited: String,
    step: usize,
    timeout: Duration,
    transcript: &[String],
) -> ScriptError {
    ScriptError::NoAnswer {
        awaited,
        step,
        timeout,
        transcript: transcript.join("\n"),
    }
}

/// The transcript line of a message from the DUT: what any DUT serving the same
/// conversation sends alike (a frame run in time or late is `ran`).
fn line(message: &Incoming) -> Option<String> {
    Some(match message {
        Incoming::Hello(hello) => format!(
            "Hello serving {}",
            [Stream::Camera, Stream::Lidar]
                .into_iter()
                .filter(|stream| hello.serves(*stream))
                .map(|stream| format!("{stream:?}"))
                .collect::<Vec<_>>()
                .join("+")
        ),
        Incoming::Ack { kind, seq } => {
            let kind = Kind::from_code(*kind).map_or(format!("kind {kind}"), |k| format!("{k:?}"));
            format!("Ack of {kind} {seq}")
        }
        Incoming::Detections {
            frame_seq, stream, ..
        } => format!("Detections of {stream:?} {frame_seq}"),
        Incoming::Timing {
            record,
            stream,
            outcome,
        } => format!(
            "TimingRecord of {stream:?} {}: {}",
            record.frame_seq.get(),
            outcome_name(*outcome)
        ),
        Incoming::Summary(summary) => summary_line(summary),
        Incoming::Problem(problem) => format!("problem: {problem}"),
        Incoming::Closed(_) => return None,
    })
}

fn outcome_name(outcome: Outcome) -> String {
    match outcome {
        Outcome::Met | Outcome::Late => "ran".into(),
        other => format!("{other:?}"),
    }
}

fn summary_line(summary: &Summary) -> String {
    let link = &summary.link;
    format!(
        "Summary: {} frames received, {} records sent ({} ran, {} Skipped, {} Failed, {} Refused); link: {} messages, {} bytes skipped, garbage {}, header checksum {}, version {}, unknown kind {}, too long {}, payload checksum {}, truncated {}, duplicate {}, out of order {}",
        summary.frames_received.get(),
        summary.records_sent.get(),
        summary.count(Outcome::Met) + summary.count(Outcome::Late),
        summary.count(Outcome::Skipped),
        summary.count(Outcome::Failed),
        summary.count(Outcome::Refused),
        link.messages.get(),
        link.skipped_bytes.get(),
        link.garbage.get(),
        link.header_checksum.get(),
        link.unsupported_version.get(),
        link.unknown_kind.get(),
        link.too_long.get(),
        link.payload_checksum.get(),
        link.truncated.get(),
        link.duplicate.get(),
        link.out_of_order.get(),
    )
}
