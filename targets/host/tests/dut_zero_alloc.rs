//! Contract 1 for the host DUT: after each stream's first frame, serving a frame —
//! reading it off the link, handing it to its worker, running the chain, sending the
//! detections and the timing record — allocates nothing anywhere in the process.
//!
//! The count is process-wide (the DUT's reader and workers are threads of their own),
//! so this file holds one test and the rig side of it allocates nothing while counting.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use cadence_alloc_count::{CountingAllocator, allocations};
use cadence_host::dut::{Dut, DutModels};
use cadence_host::pipeline::samples::{camera_frames, lidar_sweeps};
use cadence_runtime::wire::payload::{self, CameraFrameHeader, LidarFrameHeader, Outcome};
use cadence_runtime::wire::{self, Decoder, HEADER_LEN, Kind};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{F32, U16, U32};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The rig side: numbered sends from a fixed buffer, answers read into a fixed decoder.
struct Rig {
    link: TcpStream,
    seq: u32,
    out: Vec<u8>,
    chunk: Vec<u8>,
    decoder: Box<Decoder<{ 1 << 16 }>>,
}

impl Rig {
    fn send(&mut self, kind: Kind, body: &[u8]) -> u32 {
        let seq = self.seq;
        self.seq += 1;
        let len = wire::encode(kind, seq, body, &mut self.out).unwrap();
        self.link.write_all(&self.out[..len]).unwrap();
        seq
    }

    /// Reads until a message of `kind` arrives; returns the outcome of a timing record.
    fn wait_for(&mut self, kind: Kind) -> Option<Outcome> {
        loop {
            while let Some(next) = self.decoder.next_frame() {
                let frame = next.unwrap();
                if frame.kind == kind {
                    return payload::read_timing_record(frame.payload)
                        .ok()
                        .map(|(_, _, outcome)| outcome);
                }
            }
            let read = self.link.read(&mut self.chunk).unwrap();
            assert!(read > 0, "the DUT hung up");
            assert_eq!(self.decoder.push(&self.chunk[..read]), read);
        }
    }
}

#[test]
fn serving_frames_does_not_allocate() {
    let before = allocations();
    drop(std::hint::black_box(Box::new(0u8)));
    assert_eq!(allocations() - before, 1, "the counter counts");
    let packages = common::packages();
    let models = DutModels {
        camera: Some(packages.get("camera_det_pruned")),
        lidar: Some((packages.get("pfn"), packages.get("backbone_pruned"))),
    };
    let mut dut = Dut::load("alloc-dut", &models).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (link, _) = listener.accept().unwrap();
        dut.serve(link.try_clone().unwrap(), Box::new(link))
            .unwrap();
    });

    // Frame 1 (451 x 300) fits one message; frame 0 (512 x 512) does not.
    let frame = &camera_frames(&common::camera_frames()).unwrap()[1];
    let rgb = frame.rgb();
    let camera_header = CameraFrameHeader {
        width: U16::new(rgb.width as u16),
        height: U16::new(rgb.height as u16),
        channels: U16::new(3),
        reserved: U16::ZERO,
        deadline_us: U32::new(u32::MAX),
    };
    let camera: Vec<u8> = [camera_header.as_bytes(), rgb.pixels].concat();
    let sweep = &lidar_sweeps(&common::lidar_sweeps()).unwrap()[1];
    let lidar_header = LidarFrameHeader {
        points: U32::new(sweep.len() as u32),
        deadline_us: U32::new(u32::MAX),
    };
    let points: Vec<[F32; 4]> = sweep.iter().map(|p| p.map(F32::new)).collect();
    let lidar: Vec<u8> = [lidar_header.as_bytes(), points.as_bytes()].concat();
    assert!(camera.len() <= wire::MAX_PAYLOAD_LEN && lidar.len() <= wire::MAX_PAYLOAD_LEN);

    let mut rig = Rig {
        link: TcpStream::connect(address).unwrap(),
        seq: 0,
        out: vec![0; HEADER_LEN + wire::MAX_PAYLOAD_LEN],
        chunk: vec![0; 1 << 16],
        decoder: Box::new(Decoder::new()),
    };
    rig.wait_for(Kind::Hello);
    rig.send(Kind::Start, &[]);
    rig.wait_for(Kind::Ack);
    let serve_both = |rig: &mut Rig| {
        for (kind, body) in [(Kind::CameraFrame, &camera), (Kind::LidarFrame, &lidar)] {
            rig.send(kind, body);
            let outcome = rig.wait_for(Kind::TimingRecord);
            assert_eq!(outcome, Some(Outcome::Met), "{kind:?}");
        }
    };
    serve_both(&mut rig);
    let frames = 3;
    let before = allocations();
    for _ in 0..frames {
        serve_both(&mut rig);
    }
    let allocated = allocations() - before;
    assert_eq!(
        allocated, 0,
        "allocations while serving {frames} camera and {frames} lidar frames after warm-up"
    );

    rig.send(Kind::Stop, &[]);
    rig.wait_for(Kind::Summary);
    drop(rig);
    server.join().unwrap();
}
