//! The host DUT against a scripted rig: every kind of bad input is counted where the
//! wire protocol says, answered where it says, and the DUT keeps serving.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use cadence_host::dut::{Dut, DutModels};
use cadence_runtime::wire::payload::{
    self, CameraFrameHeader, Hello, LidarFrameHeader, Outcome, Stream, Summary,
};
use cadence_runtime::wire::{self, Decoder, HEADER_LEN, Kind};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32};

/// A writer the test reads back after the DUT is done.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn message(kind: Kind, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN + body.len()];
    let len = wire::encode(kind, seq, body, &mut out).unwrap();
    out.truncate(len);
    out
}

fn camera_frame(width: u16, height: u16, pixels: usize) -> Vec<u8> {
    let header = CameraFrameHeader {
        width: U16::new(width),
        height: U16::new(height),
        channels: U16::new(3),
        reserved: U16::ZERO,
        deadline_us: U32::new(10_000_000),
    };
    let mut body = header.as_bytes().to_vec();
    body.extend((0..pixels).map(|i| (i * 7 % 251) as u8));
    body
}

#[test]
fn bad_messages_are_counted_answered_and_survived() {
    let models = DutModels {
        camera: Some(common::packages().get("camera_det_pruned")),
        lidar: None,
    };
    let mut dut = Dut::load("test-dut", &models).unwrap();
    let (w, h) = (64, 48);
    let good = camera_frame(w, h, usize::from(w) * usize::from(h) * 3);
    let short = camera_frame(w, h, 100);
    let lidar = LidarFrameHeader {
        points: U32::new(0),
        deadline_us: U32::new(1000),
    };

    let mut input = b"line noise before any message".to_vec();
    input.extend(message(Kind::Start, 0, &[]));
    input.extend(message(Kind::CameraFrame, 1, &good));
    input.extend(message(Kind::CameraFrame, 2, &short)); // pixels missing: refused
    let lidar_frame = message(Kind::LidarFrame, 3, lidar.as_bytes()); // not served: refused
    input.extend(&lidar_frame);
    input.extend(&lidar_frame); // a repeat: dropped
    let mut corrupt = message(Kind::CameraFrame, 4, &good);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff; // payload damaged: dropped
    input.extend(corrupt);
    let mut damaged_header = message(Kind::Start, 5, &[]);
    damaged_header[8] ^= 0x01; // header damaged: resynchronised past it
    input.extend(damaged_header);
    input.extend(message(Kind::Start, 9, &[])); // 4 to 8 never arrived: a gap
    input.extend(message(Kind::Stop, 10, &[]));
    let cut = message(Kind::CameraFrame, 11, &good);
    input.extend(&cut[..cut.len() / 2]); // the stream ends inside a message

    let output = Captured::default();
    dut.serve(input.as_slice(), Box::new(output.clone()))
        .unwrap();

    let bytes = output.0.lock().unwrap().clone();
    let mut decoder: Box<Decoder<{ 1 << 16 }>> = Box::new(Decoder::new());
    assert_eq!(decoder.push(&bytes), bytes.len());
    decoder.finish();
    let mut hello = None;
    let mut acks = 0;
    let mut records = Vec::new();
    let mut detections = Vec::new();
    let mut summary = None;
    while let Some(next) = decoder.next_frame() {
        let frame = next.expect("the DUT's own messages are intact and in order");
        match frame.kind {
            Kind::Hello => {
                hello = Some(*payload::read_fixed::<Hello>(frame.kind, frame.payload).unwrap())
            }
            Kind::Ack => acks += 1,
            Kind::TimingRecord => {
                let (record, stream, outcome) = payload::read_timing_record(frame.payload).unwrap();
                records.push((record.frame_seq.get(), stream, outcome));
            }
            Kind::Detections => {
                let (header, stream, _) = payload::read_detections(frame.payload).unwrap();
                detections.push((header.frame_seq.get(), stream));
            }
            Kind::Summary => {
                summary = Some(*payload::read_fixed::<Summary>(frame.kind, frame.payload).unwrap())
            }
            other => panic!("the DUT sent a {other:?}"),
        }
    }
    let hello = hello.expect("Hello first");
    assert_eq!(hello.name(), "test-dut");
    assert!(hello.serves(Stream::Camera) && !hello.serves(Stream::Lidar));
    assert_eq!(acks, 2, "both intact Starts acknowledged");
    records.sort_by_key(|r| r.0);
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(matches!(
        records[0],
        (1, Stream::Camera, Outcome::Met | Outcome::Late)
    ));
    assert_eq!(records[1], (2, Stream::Camera, Outcome::Refused));
    assert_eq!(records[2], (3, Stream::Lidar, Outcome::Refused));
    assert_eq!(
        detections,
        [(1, Stream::Camera)],
        "only the frame that ran has detections"
    );

    let summary = summary.expect("Stop answered with a Summary");
    assert_eq!(summary.frames_received.get(), 3);
    assert_eq!(summary.records_sent.get(), 3);
    assert_eq!(summary.count(Outcome::Refused), 2);
    assert_eq!(
        summary.count(Outcome::Met) + summary.count(Outcome::Late),
        1
    );
    let link = summary.link;
    assert_eq!(link.garbage.get(), 1);
    assert_eq!(link.duplicate.get(), 1);
    assert_eq!(link.payload_checksum.get(), 1);
    assert_eq!(link.header_checksum.get(), 1);
    assert_eq!(link.out_of_order.get(), 1);
    assert_eq!(link.truncated.get(), 0, "the cut message comes after Stop");
    assert_eq!(
        dut.summary().link.truncated.get(),
        1,
        "the cut message is counted when the stream ends"
    );
}

#[test]
fn a_dut_without_models_is_refused_with_the_fix() {
    let error = Dut::load("none", &DutModels::default()).err().unwrap();
    assert!(error.to_string().contains("--camera PKG"), "{error}");
}
