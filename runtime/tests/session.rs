//! The DUT's side of the conversation: a byte stream through a decoder and a
//! `DutSession` gives the action the module docs' table names for every message, in
//! every state.

use cadence_runtime::wire::payload::{Hello, Outcome, Stream};
use cadence_runtime::wire::session::{DutAction, DutSession, DutState, FrameTask};
use cadence_runtime::wire::{Decoder, HEADER_LEN, Kind, WireError, encode};

/// A DUT serving the camera only, so a lidar frame is one it does not serve.
fn camera_session() -> DutSession {
    DutSession::new(Hello::new("camera-only", &[Stream::Camera], 1024))
}

fn message(kind: Kind, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN + payload.len()];
    encode(kind, seq, payload, &mut out).expect("buffer sized for the message");
    out
}

/// Feeds `bytes` through a decoder into `session` and checks each action it gives,
/// with the state after it, against `expected`, in order.
fn assert_actions(session: &mut DutSession, bytes: &[u8], expected: &[(DutAction<'_>, DutState)]) {
    let mut decoder: Decoder<1024> = Decoder::new();
    assert_eq!(decoder.push(bytes), bytes.len());
    decoder.finish();
    let mut given = 0;
    while let Some(received) = decoder.next_frame() {
        let action = session.receive(received);
        assert_eq!(
            Some(&(action, session.state())),
            expected.get(given),
            "action {given}"
        );
        given += 1;
    }
    assert_eq!(given, expected.len(), "actions given");
}

fn frame(stream: Stream, seq: u32, task: FrameTask<'_>) -> DutAction<'_> {
    DutAction::Frame { stream, seq, task }
}

#[test]
fn every_message_gets_the_answer_of_its_state() {
    use DutState::{Idle, Running};
    let mut session = camera_session();
    assert_eq!(session.greet().name(), "camera-only");
    assert_eq!(session.state(), Idle);

    let mut bytes = message(Kind::CameraFrame, 0, b"early");
    bytes.extend(message(Kind::Start, 1, &[]));
    bytes.extend(message(Kind::CameraFrame, 2, b"pixels"));
    bytes.extend(message(Kind::LidarFrame, 3, b"points"));
    bytes.extend(message(Kind::Start, 4, &[]));
    bytes.extend(message(Kind::TimingRecord, 5, &[]));
    bytes.extend(b"noise");
    bytes.extend(message(Kind::Stop, 6, &[]));
    bytes.extend(message(Kind::LidarFrame, 7, b"late"));
    bytes.extend(message(Kind::Stop, 8, &[]));
    bytes.extend(message(Kind::Start, 9, &[]));
    bytes.extend(message(Kind::Reset, 10, &[]));
    bytes.extend(message(Kind::CameraFrame, 11, b"after reset"));

    let skipped = FrameTask::Report(Outcome::Skipped);
    let refused = FrameTask::Report(Outcome::Refused);
    let ignored = DutAction::Ignore {
        kind: Kind::TimingRecord,
        seq: 5,
    };
    let garbage = DutAction::LinkProblem(WireError::Garbage { skipped: 5 });
    assert_actions(
        &mut session,
        &bytes,
        &[
            (frame(Stream::Camera, 0, skipped), Idle),
            (DutAction::AckStart { seq: 1 }, Running),
            (frame(Stream::Camera, 2, FrameTask::Run(b"pixels")), Running),
            (frame(Stream::Lidar, 3, refused), Running),
            (DutAction::AckStart { seq: 4 }, Running),
            (ignored, Running),
            (garbage, Running),
            (DutAction::SendSummary { seq: 6 }, Idle),
            (frame(Stream::Lidar, 7, skipped), Idle),
            (DutAction::SendSummary { seq: 8 }, Idle),
            (DutAction::AckStart { seq: 9 }, Running),
            (DutAction::ResetCounters { seq: 10 }, Idle),
            (frame(Stream::Camera, 11, skipped), Idle),
        ],
    );
}

#[test]
fn a_new_greeting_waits_for_start_again() {
    let mut session = camera_session();
    session.greet();
    let start = message(Kind::Start, 0, &[]);
    assert_actions(
        &mut session,
        &start,
        &[(DutAction::AckStart { seq: 0 }, DutState::Running)],
    );

    session.greet();
    assert_eq!(session.state(), DutState::Idle);
    assert_actions(
        &mut session,
        &message(Kind::CameraFrame, 0, b"frame"),
        &[(
            frame(Stream::Camera, 0, FrameTask::Report(Outcome::Skipped)),
            DutState::Idle,
        )],
    );
}
