//! The HIL wire protocol: a byte stream cut into chunks and pushed through
//! `wire::Decoder`, then every delivered payload through the `wire::payload` readers.
//!
//! Contract: the decoder never stalls (a full buffer always frees up when drained);
//! every delivered message re-encodes to bytes that were sent contiguously; its stats
//! count exactly the outcomes it reported; a payload either fails with a
//! `PayloadError` or reads as records whose count and length agree with its header.
#![no_main]

use cadence_runtime::wire::payload::{self, Ack, Hello, Summary};
use cadence_runtime::wire::{self, Decoder, DecoderStats, Kind, WireError};
use libfuzzer_sys::fuzz_target;
use zerocopy::IntoBytes;

/// Small, so that oversize headers and a full buffer are met often.
const CAPACITY: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_seed, stream)) = data.split_first() else {
        return;
    };
    let chunk_len = usize::from(chunk_seed % 64) + 1;
    let mut decoder = Decoder::<CAPACITY>::new();
    let mut seen = Tally::default();
    for chunk in stream.chunks(chunk_len) {
        let mut rest = chunk;
        // Draining may free the buffer without an outcome (a run of garbage waiting
        // for its magic), so only a second idle round in a row is a stall.
        let mut idle_rounds = 0;
        while !rest.is_empty() {
            let taken = decoder.push(rest);
            rest = &rest[taken..];
            let drained = drain(&mut decoder, stream, &mut seen);
            idle_rounds = if taken == 0 && drained == 0 {
                idle_rounds + 1
            } else {
                0
            };
            assert!(idle_rounds < 2, "the decoder stalled with a full buffer");
        }
    }
    decoder.finish();
    drain(&mut decoder, stream, &mut seen);

    let stats = decoder.stats();
    assert_eq!(
        stats,
        DecoderStats {
            skipped_bytes: stats.skipped_bytes,
            ..seen.stats
        },
        "the stats count what was reported"
    );
    assert!(seen.garbage_bytes <= stats.skipped_bytes);
    assert!(seen.delivered_bytes + stats.skipped_bytes <= stream.len() as u64);

    // The readers on raw bytes too, not only on payloads that passed the CRC.
    for kind in Kind::ALL {
        read_payload(kind, stream);
    }
});

#[derive(Default)]
struct Tally {
    stats: DecoderStats,
    garbage_bytes: u64,
    delivered_bytes: u64,
}

/// Drains every outcome available now and returns how many there were.
fn drain(decoder: &mut Decoder<CAPACITY>, stream: &[u8], seen: &mut Tally) -> usize {
    let mut outcomes = 0;
    while let Some(outcome) = decoder.next_frame() {
        outcomes += 1;
        let counter = match outcome {
            Ok(frame) => {
                let mut encoded = vec![0; wire::HEADER_LEN + frame.payload.len()];
                let len = wire::encode(frame.kind, frame.seq, frame.payload, &mut encoded)
                    .expect("a delivered message re-encodes");
                assert!(
                    stream.windows(len).any(|w| w == encoded),
                    "a delivered message was sent as it re-encodes"
                );
                seen.delivered_bytes += len as u64;
                read_payload(frame.kind, frame.payload);
                &mut seen.stats.frames
            }
            Err(WireError::Garbage { skipped }) => {
                assert!(skipped > 0);
                seen.garbage_bytes += skipped as u64;
                &mut seen.stats.garbage
            }
            Err(WireError::HeaderChecksum) => &mut seen.stats.header_checksum,
            Err(WireError::UnsupportedVersion { .. }) => &mut seen.stats.unsupported_version,
            Err(WireError::UnknownKind(_)) => &mut seen.stats.unknown_kind,
            Err(WireError::TooLong { length, max }) => {
                assert!(length > max && max == Decoder::<CAPACITY>::MAX_PAYLOAD);
                &mut seen.stats.too_long
            }
            Err(WireError::PayloadChecksum { .. }) => &mut seen.stats.payload_checksum,
            Err(WireError::Truncated { have, need, .. }) => {
                assert!(have < need, "a cut message has fewer bytes than it needs");
                &mut seen.stats.truncated
            }
            Err(WireError::Duplicate { .. }) => &mut seen.stats.duplicate,
            Err(WireError::OutOfOrder { expected, found }) => {
                assert_ne!(expected, found);
                &mut seen.stats.out_of_order
            }
            Err(error @ WireError::BufferTooSmall { .. }) => {
                panic!("the decoder reported an encoder error: {error}")
            }
        };
        *counter += 1;
    }
    outcomes
}

/// Reads `bytes` as a `kind` payload and checks what a successful read yields.
fn read_payload(kind: Kind, bytes: &[u8]) {
    match kind {
        Kind::CameraFrame => {
            if let Ok((header, pixels)) = payload::read_camera_frame(bytes) {
                let volume = usize::from(header.width.get())
                    * usize::from(header.height.get())
                    * usize::from(header.channels.get());
                assert_eq!(pixels.len(), volume);
                assert_eq!(size_of_val(header) + pixels.len(), bytes.len());
            }
        }
        Kind::LidarFrame => {
            if let Ok((header, points)) = payload::read_lidar_frame(bytes) {
                assert_eq!(points.len() as u64, u64::from(header.points.get()));
                assert_eq!(size_of_val(header) + points.as_bytes().len(), bytes.len());
            }
        }
        Kind::Detections => {
            if let Ok((header, stream, detections)) = payload::read_detections(bytes) {
                assert!(detections.len() <= payload::MAX_DETECTIONS);
                let mut rewritten = vec![0; bytes.len()];
                let len = payload::write_detections(
                    header.frame_seq.get(),
                    stream,
                    detections,
                    &mut rewritten,
                )
                .expect("read detections write back");
                assert_eq!(&rewritten[..len], bytes, "detections round-trip");
            }
        }
        Kind::TimingRecord => {
            if let Ok((record, stream, outcome)) = payload::read_timing_record(bytes) {
                assert_eq!(record.stream.get(), stream.code());
                assert_eq!(record.outcome.get(), outcome.code());
                let _ = record.response_ns();
            }
        }
        Kind::Hello => {
            if let Ok(hello) = payload::read_fixed::<Hello>(kind, bytes) {
                assert!(hello.name().len() <= hello.name.len());
            }
        }
        Kind::Ack => {
            if let Ok(ack) = payload::read_fixed::<Ack>(kind, bytes) {
                assert_eq!(ack.as_bytes(), bytes);
            }
        }
        Kind::Summary => {
            if let Ok(summary) = payload::read_fixed::<Summary>(kind, bytes) {
                assert_eq!(summary.as_bytes(), bytes);
            }
        }
        Kind::Start | Kind::Stop | Kind::Reset => {}
    }
}
