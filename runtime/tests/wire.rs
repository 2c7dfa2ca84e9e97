//! The HIL wire protocol: encoding, and decoding of damaged, cut, repeated and
//! reordered streams delivered in arbitrary chunks.

use cadence_runtime::wire::{
    Decoder, DecoderStats, HEADER_LEN, Header, Kind, MAX_CAMERA_FRAME_LEN, MAX_PAYLOAD_LEN,
    VERSION, WireError, encode,
};
use proptest::prelude::*;

/// Receive buffer of the decoders under test: small, so streams overflow it.
const CAPACITY: usize = 1024;

/// One outcome of `Decoder::next_frame`, owned.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Frame {
        kind: Kind,
        seq: u32,
        payload: Vec<u8>,
    },
    Error(WireError),
}

fn frame(kind: Kind, seq: u32, payload: &[u8]) -> Outcome {
    Outcome::Frame {
        kind,
        seq,
        payload: payload.to_vec(),
    }
}

fn message(kind: Kind, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN + payload.len()];
    let written = encode(kind, seq, payload, &mut out).expect("buffer sized for the message");
    assert_eq!(written, out.len());
    out
}

/// A payload whose bytes stay below `'C'`, so it never contains the magic.
fn payload(seq: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + seq as usize) % 64) as u8)
        .collect()
}

/// `count` messages of every kind in turn, sequence numbers from 0, payloads of
/// assorted lengths including empty ones.
fn messages(count: u32) -> Vec<(Kind, u32, Vec<u8>)> {
    (0..count)
        .map(|seq| {
            let kind = Kind::ALL[seq as usize % Kind::ALL.len()];
            (kind, seq, payload(seq, (seq as usize * 37) % 150))
        })
        .collect()
}

fn drain<const N: usize>(decoder: &mut Decoder<N>, outcomes: &mut Vec<Outcome>) -> usize {
    let before = outcomes.len();
    while let Some(outcome) = decoder.next_frame() {
        outcomes.push(match outcome {
            Ok(received) => frame(received.kind, received.seq, received.payload),
            Err(error) => Outcome::Error(error),
        });
    }
    outcomes.len() - before
}

/// Decodes `stream` delivered in chunks ending at `chunk_ends` (ascending), then ends it.
fn decode_chunked<const N: usize>(
    stream: &[u8],
    chunk_ends: &[usize],
) -> (Vec<Outcome>, DecoderStats) {
    let mut decoder = Box::new(Decoder::<N>::new());
    let mut outcomes = Vec::new();
    let mut start = 0;
    for &end in chunk_ends.iter().chain([&stream.len()]) {
        let mut rest = &stream[start..end];
        loop {
            let taken = decoder.push(rest);
            rest = &rest[taken..];
            let produced = drain(&mut decoder, &mut outcomes);
            if rest.is_empty() {
                break;
            }
            assert!(
                taken > 0 || produced > 0,
                "decoder stalled with a full buffer"
            );
        }
        start = end;
    }
    decoder.finish();
    drain(&mut decoder, &mut outcomes);
    (outcomes, decoder.stats())
}

fn decode(stream: &[u8]) -> (Vec<Outcome>, DecoderStats) {
    decode_chunked::<CAPACITY>(stream, &[])
}

#[test]
fn every_kind_round_trips() {
    for kind in Kind::ALL {
        assert_eq!(Kind::from_code(kind.code()), Some(kind));
        for len in [0, 1, 100] {
            let body = payload(7, len);
            let (outcomes, stats) = decode(&message(kind, 7, &body));
            assert_eq!(outcomes, [frame(kind, 7, &body)]);
            assert_eq!(stats.frames, 1);
        }
    }
}

#[test]
fn largest_camera_frame_round_trips() {
    let body = payload(0, MAX_CAMERA_FRAME_LEN);
    let stream = message(Kind::CameraFrame, 0, &body);
    let (outcomes, _) = decode_chunked::<{ HEADER_LEN + MAX_PAYLOAD_LEN }>(&stream, &[1000]);
    assert_eq!(outcomes, [frame(Kind::CameraFrame, 0, &body)]);
}

/// Messages with garbage before, between and after them, and what decoding it yields.
fn garbled_stream() -> (Vec<u8>, Vec<Outcome>) {
    let mut stream = b"noise".to_vec();
    let mut expected = vec![Outcome::Error(WireError::Garbage { skipped: 5 })];
    for (kind, seq, body) in messages(12) {
        if seq == 4 {
            stream.extend_from_slice(b"CD!CDN");
            expected.push(Outcome::Error(WireError::Garbage { skipped: 6 }));
        }
        stream.extend(message(kind, seq, &body));
        expected.push(frame(kind, seq, &body));
    }
    stream.extend_from_slice(b"tail");
    expected.push(Outcome::Error(WireError::Garbage { skipped: 4 }));
    (stream, expected)
}

#[test]
fn garbage_is_skipped_reported_once_per_run_and_counted() {
    let (stream, expected) = garbled_stream();
    let (outcomes, stats) = decode(&stream);
    assert_eq!(outcomes, expected);
    assert_eq!(stats.garbage, 3);
    assert_eq!(stats.skipped_bytes, 5 + 6 + 4);
    assert_eq!(stats.frames, 12);
}

#[test]
fn any_split_point_decodes_identically() {
    let (stream, expected) = garbled_stream();
    assert!(
        stream.len() > CAPACITY,
        "the stream must overflow the buffer"
    );
    for split in 0..=stream.len() {
        let (outcomes, _) = decode_chunked::<CAPACITY>(&stream, &[split]);
        assert_eq!(outcomes, expected, "split at byte {split}");
    }
    for chunk in 1..=64 {
        let ends: Vec<usize> = (chunk..stream.len()).step_by(chunk).collect();
        let (outcomes, _) = decode_chunked::<CAPACITY>(&stream, &ends);
        assert_eq!(outcomes, expected, "chunks of {chunk} bytes");
    }
}

#[test]
fn a_flipped_bit_costs_one_message_and_one_report() {
    let bodies = [payload(0, 20), payload(1, 30), payload(2, 10)];
    let parts: Vec<Vec<u8>> = (0..3)
        .map(|seq| message(Kind::Detections, seq, &bodies[seq as usize]))
        .collect();
    let damaged_len = parts[1].len();
    for bit in 0..damaged_len * 8 {
        let mut damaged = parts[1].clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let stream = [parts[0].as_slice(), &damaged, &parts[2]].concat();
        let report = match bit / 8 {
            0..4 => WireError::Garbage {
                skipped: damaged_len,
            },
            4..HEADER_LEN => WireError::HeaderChecksum,
            _ => WireError::PayloadChecksum { seq: 1 },
        };
        let (outcomes, _) = decode(&stream);
        assert_eq!(
            outcomes,
            [
                frame(Kind::Detections, 0, &bodies[0]),
                Outcome::Error(report),
                Outcome::Error(WireError::OutOfOrder {
                    expected: 1,
                    found: 2
                }),
                frame(Kind::Detections, 2, &bodies[2]),
            ],
            "bit {bit} flipped"
        );
    }
}

#[test]
fn a_stream_cut_anywhere_reports_the_cut_message() {
    let parts: Vec<Vec<u8>> = messages(3)
        .iter()
        .map(|(kind, seq, body)| message(*kind, *seq, body))
        .collect();
    let stream = parts.concat();
    for cut in 0..=stream.len() {
        let (outcomes, stats) = decode(&stream[..cut]);
        let mut expected = Vec::new();
        let mut start = 0;
        for ((kind, seq, body), part) in messages(3).into_iter().zip(&parts) {
            let have = cut.saturating_sub(start).min(part.len());
            if have == part.len() {
                expected.push(frame(kind, seq, &body));
            } else if have > 0 {
                let header_arrived = have >= HEADER_LEN;
                expected.push(Outcome::Error(WireError::Truncated {
                    seq: header_arrived.then_some(seq),
                    have,
                    need: if header_arrived {
                        part.len()
                    } else {
                        HEADER_LEN
                    },
                }));
            }
            start += part.len();
        }
        assert_eq!(outcomes, expected, "cut at byte {cut}");
        assert_eq!(stats.skipped_bytes, 0, "cut at byte {cut}");
    }
}

#[test]
fn repeated_and_reordered_messages_are_reported_with_their_numbers() {
    let order = [0, 1, 1, 2, 4, 3, 5];
    let stream: Vec<u8> = order
        .iter()
        .flat_map(|&seq| message(Kind::TimingRecord, seq, &payload(seq, 8)))
        .collect();
    let timing = |seq| frame(Kind::TimingRecord, seq, &payload(seq, 8));
    let out_of_order = |expected, found| Outcome::Error(WireError::OutOfOrder { expected, found });
    let (outcomes, stats) = decode(&stream);
    assert_eq!(
        outcomes,
        [
            timing(0),
            timing(1),
            Outcome::Error(WireError::Duplicate { seq: 1 }),
            timing(2),
            out_of_order(3, 4),
            timing(4),
            out_of_order(5, 3),
            timing(3),
            out_of_order(4, 5),
            timing(5),
        ]
    );
    assert_eq!(
        (stats.frames, stats.duplicate, stats.out_of_order),
        (6, 1, 3)
    );
}

#[test]
fn sequence_numbers_wrap_and_restart_with_each_stream() {
    let stream = [
        message(Kind::Ack, u32::MAX, &[]),
        message(Kind::Ack, 0, &[]),
    ]
    .concat();
    let (outcomes, _) = decode(&stream);
    assert_eq!(
        outcomes,
        [frame(Kind::Ack, u32::MAX, &[]), frame(Kind::Ack, 0, &[])]
    );

    let mut decoder = Decoder::<CAPACITY>::new();
    let mut outcomes = Vec::new();
    for seq in [5, 9] {
        decoder.push(&message(Kind::Start, seq, &[]));
        decoder.finish();
        drain(&mut decoder, &mut outcomes);
    }
    assert_eq!(
        outcomes,
        [frame(Kind::Start, 5, &[]), frame(Kind::Start, 9, &[])]
    );
}

#[test]
fn rejected_headers_are_reported_and_the_next_message_still_decodes() {
    let body = payload(0, 40);
    let with_header = |edit: &dyn Fn(&mut Header)| {
        let mut header = Header::new(Kind::LidarFrame, 0, &body);
        edit(&mut header);
        header.seal();
        let mut bytes = zerocopy::IntoBytes::as_bytes(&header).to_vec();
        bytes.extend_from_slice(&body);
        bytes
    };
    let max = Decoder::<CAPACITY>::MAX_PAYLOAD;
    assert_eq!(max, CAPACITY - HEADER_LEN);
    let cases = [
        (
            with_header(&|h| h.version.set(VERSION + 1)),
            WireError::UnsupportedVersion {
                found: VERSION + 1,
                supported: VERSION,
            },
        ),
        (with_header(&|h| h.kind.set(99)), WireError::UnknownKind(99)),
        (
            with_header(&|h| h.payload_len.set(max as u32 + 1)),
            WireError::TooLong {
                length: max + 1,
                max,
            },
        ),
    ];
    for (rejected, report) in cases {
        let stream = [rejected, message(Kind::Stop, 1, &[])].concat();
        let (outcomes, stats) = decode(&stream);
        assert_eq!(
            outcomes,
            [Outcome::Error(report), frame(Kind::Stop, 1, &[])]
        );
        assert_eq!(stats.garbage, 0, "{report}");
        assert_eq!(stats.skipped_bytes, (HEADER_LEN + body.len()) as u64);
    }
}

#[test]
fn encoder_refuses_a_small_buffer_and_a_long_payload() {
    let body = payload(0, 10);
    let mut out = vec![0; HEADER_LEN + body.len() - 1];
    assert_eq!(
        encode(Kind::Detections, 0, &body, &mut out),
        Err(WireError::BufferTooSmall {
            need: HEADER_LEN + body.len(),
            have: out.len()
        })
    );
    let long = vec![0; MAX_PAYLOAD_LEN + 1];
    let mut out = vec![0; HEADER_LEN + long.len()];
    let refusal = encode(Kind::LidarFrame, 0, &long, &mut out);
    assert_eq!(
        refusal,
        Err(WireError::TooLong {
            length: MAX_PAYLOAD_LEN + 1,
            max: MAX_PAYLOAD_LEN
        })
    );
    let message = refusal.unwrap_err().to_string();
    assert!(
        message.contains(&(MAX_PAYLOAD_LEN + 1).to_string()),
        "{message}"
    );
}

/// Sorted, deduplicated chunk ends inside a stream of `len` bytes.
fn chunk_ends(len: usize, mut cuts: Vec<usize>) -> Vec<usize> {
    cuts.iter_mut().for_each(|cut| *cut %= len + 1);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

proptest! {
    #[test]
    fn random_messages_in_random_chunks_decode_in_order(
        specs in prop::collection::vec((0..Kind::ALL.len(), 0..600usize), 1..12),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (seq, (kind, len)) in specs.into_iter().enumerate() {
            let (kind, seq, body) = (Kind::ALL[kind], seq as u32, payload(seq as u32, len));
            stream.extend(message(kind, seq, &body));
            expected.push(frame(kind, seq, &body));
        }
        let ends = chunk_ends(stream.len(), cuts);
        let (outcomes, _) = decode_chunked::<CAPACITY>(&stream, &ends);
        prop_assert_eq!(outcomes, expected);
    }

    #[test]
    fn byte_soup_never_stops_the_messages_after_it(
        soup in prop::collection::vec(any::<u8>(), 0..3000),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let tail = [message(Kind::Reset, 0, &[]), message(Kind::Ack, 1, &payload(1, 5))];
        let stream = [soup, tail.concat()].concat();
        let ends = chunk_ends(stream.len(), cuts);
        let (outcomes, _) = decode_chunked::<CAPACITY>(&stream, &ends);
        prop_assert_eq!(
            &outcomes[outcomes.len() - 2..],
            [frame(Kind::Reset, 0, &[]), frame(Kind::Ack, 1, &payload(1, 5))]
        );
    }
}

#[test]
fn counts_since_a_snapshot_leave_out_what_came_before_it() {
    let mut decoder = Decoder::<CAPACITY>::new();
    let mut outcomes = Vec::new();
    decoder.push(b"noise");
    decoder.push(&message(Kind::Start, 0, &[]));
    drain(&mut decoder, &mut outcomes);
    let snapshot = decoder.stats();
    decoder.push(&message(Kind::CameraFrame, 1, &payload(1, 10)));
    decoder.push(&message(Kind::CameraFrame, 1, &payload(1, 10)));
    drain(&mut decoder, &mut outcomes);
    assert_eq!(
        decoder.stats().since(&snapshot),
        DecoderStats {
            frames: 1,
            duplicate: 1,
            ..DecoderStats::default()
        }
    );
    assert_eq!(snapshot.since(&snapshot), DecoderStats::default());
}
