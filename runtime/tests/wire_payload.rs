//! Payload layouts of the HIL wire protocol: what is written reads back the same, and
//! every malformed payload is refused with the error that names its problem.

use cadence_runtime::wire::Kind;
use cadence_runtime::wire::payload::{
    CameraFrameHeader, Detection, Hello, LidarFrameHeader, LidarPoint, MAX_DETECTIONS, Outcome,
    PayloadError, Stream, Summary, TimingRecord, read_camera_frame, read_detections, read_fixed,
    read_lidar_frame, read_timing_record, write_detections, write_parts,
};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{F32, U16, U32, U64};

fn detection(class: u32, score: f32) -> Detection {
    Detection {
        class: U32::new(class),
        score: F32::new(score),
        bbox: [F32::new(1.5); 7],
    }
}

#[test]
fn detections_round_trip_and_refuse_bad_counts() {
    let detections = [detection(1, 0.9), detection(3, 0.25)];
    let mut buf = [0u8; 256];
    let len = write_detections(42, Stream::Lidar, &detections, &mut buf).unwrap();
    let (header, stream, read) = read_detections(&buf[..len]).unwrap();
    assert_eq!((header.frame_seq.get(), stream), (42, Stream::Lidar));
    assert_eq!(read, detections);

    assert_eq!(
        read_detections(&buf[..len - 1]),
        Err(PayloadError::WrongLength {
            kind: Kind::Detections,
            expected: len,
            found: len - 1
        })
    );
    assert!(matches!(
        read_detections(&buf[..3]),
        Err(PayloadError::TooShort {
            need: 8,
            have: 3,
            ..
        })
    ));
    buf[6..8].copy_from_slice(&u16::try_from(MAX_DETECTIONS + 1).unwrap().to_le_bytes());
    assert_eq!(
        read_detections(&buf[..len]),
        Err(PayloadError::TooManyDetections {
            count: MAX_DETECTIONS + 1
        })
    );
    buf[4..6].copy_from_slice(&9u16.to_le_bytes());
    assert_eq!(
        read_detections(&buf[..len]),
        Err(PayloadError::UnknownStream(9))
    );
    let too_many = [detection(0, 0.0); MAX_DETECTIONS + 1];
    assert_eq!(
        write_detections(0, Stream::Camera, &too_many, &mut [0; 16_384]),
        None
    );
    assert_eq!(
        write_detections(0, Stream::Camera, &detections, &mut [0; 20]),
        None
    );
}

#[test]
fn frames_read_their_records_in_place() {
    let header = CameraFrameHeader {
        width: U16::new(4),
        height: U16::new(2),
        channels: U16::new(3),
        reserved: U16::ZERO,
        deadline_us: U32::new(33_000),
    };
    let pixels: Vec<u8> = (0..24).collect();
    let mut buf = [0u8; 64];
    let len = write_parts(&mut buf, &[header.as_bytes(), &pixels]).unwrap();
    let (read_header, read_pixels) = read_camera_frame(&buf[..len]).unwrap();
    assert_eq!((*read_header, read_pixels), (header, &pixels[..]));
    assert!(matches!(
        read_camera_frame(&buf[..len + 1]),
        Err(PayloadError::WrongLength { expected, .. }) if expected == len
    ));

    let points = [LidarPoint {
        xyzi: [F32::new(1.0), F32::new(-2.0), F32::new(0.5), F32::new(0.1)],
    }; 3];
    let header = LidarFrameHeader {
        points: U32::new(3),
        deadline_us: U32::new(100_000),
    };
    let mut buf = [0u8; 128];
    let len = write_parts(&mut buf, &[header.as_bytes(), points.as_bytes()]).unwrap();
    let (_, read) = read_lidar_frame(&buf[..len]).unwrap();
    assert_eq!(read, points);
    buf[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        read_lidar_frame(&buf[..len]),
        Err(PayloadError::WrongLength { .. })
    ));
    assert_eq!(write_parts(&mut [0; 4], &[&[1; 5]]), None);
}

#[test]
fn fixed_payloads_check_their_length_and_codes() {
    let hello = Hello::new("qemu-m7-firmware-long-name", &[Stream::Camera], 4096);
    assert_eq!(hello.name(), "qemu-m7-firmware");
    assert!(hello.serves(Stream::Camera) && !hello.serves(Stream::Lidar));
    let read = read_fixed::<Hello>(Kind::Hello, hello.as_bytes()).unwrap();
    assert_eq!(*read, hello);
    let mut longer = hello.as_bytes().to_vec();
    longer.push(0);
    assert!(read_fixed::<Hello>(Kind::Hello, &longer).is_err());

    let mut record = TimingRecord {
        frame_seq: U32::new(7),
        stream: U16::new(Stream::Camera.code()),
        outcome: U16::new(Outcome::Late.code()),
        received_ns: U64::new(1_000),
        started_ns: U64::new(1_500),
        finished_ns: U64::new(40_000),
        deadline_ns: U64::new(33_000),
        cycles: U64::ZERO,
    };
    let (read, stream, outcome) = read_timing_record(record.as_bytes()).unwrap();
    assert_eq!(
        (read.response_ns(), stream, outcome),
        (39_000, Stream::Camera, Outcome::Late)
    );
    record.outcome = U16::new(99);
    assert_eq!(
        read_timing_record(record.as_bytes()).map(|_| ()),
        Err(PayloadError::UnknownOutcome(99))
    );

    let mut summary = Summary::default();
    for outcome in Outcome::ALL {
        summary.record(outcome);
    }
    summary.record(Outcome::Met);
    assert_eq!(
        (summary.count(Outcome::Met), summary.records_sent.get()),
        (2, 6)
    );
    for code in 0..8 {
        assert_eq!(
            Outcome::from_code(code).map(Outcome::code),
            (code < 5).then_some(code)
        );
        assert_eq!(
            Stream::from_code(code).map(Stream::code),
            (1..=2).contains(&code).then_some(code)
        );
    }
}

#[test]
fn a_camera_header_announcing_the_largest_image_is_refused_by_length() {
    let header = CameraFrameHeader {
        width: U16::new(u16::MAX),
        height: U16::new(u16::MAX),
        channels: U16::new(u16::MAX),
        reserved: U16::ZERO,
        deadline_us: U32::ZERO,
    };
    let mut buf = [0u8; 64];
    let len = write_parts(&mut buf, &[header.as_bytes(), &[7; 16]]).unwrap();
    assert!(matches!(
        read_camera_frame(&buf[..len]),
        Err(PayloadError::WrongLength { found, .. }) if found == len
    ));
}
