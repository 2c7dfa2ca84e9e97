//! What running out of process costs per frame: the same tiny model in-process and in a
//! worker, interleaved in one process, p50/p99 of each and of the difference.
//!
//! `cargo bench -p cadence-isolated --bench overhead [-- FRAMES]`
//!
//! Three spin settings: none (the default: every frame pays a futex wake-up on each
//! side, as a worker idle between 30 Hz frames does anyway), and two spins long enough
//! that back-to-back frames find the other side spinning (the hand-over is then a few
//! cache-line transfers, unless the machine has more runnable threads than cores).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cadence_hal::cpu::CpuBackend;
use cadence_isolated::{IsolatedEngine, IsolatedOptions};
use cadence_runtime::Engine;
use cadence_runtime::package::{AlignedBytes, Package};
use common::{FRAME_TIMEOUT, conv_stack, options, values, write_package};

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, samples: &mut [u64]) -> (u64, u64) {
    samples.sort_unstable();
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    println!(
        "{name:<34} p50 {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs",
        p50 as f64 / 1e3,
        p99 as f64 / 1e3,
        samples[samples.len() - 1] as f64 / 1e3
    );
    (p50, p99)
}

fn main() {
    let frames: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5000);
    let (_dir, path) = write_package(&conv_stack(4, 8, 1));
    let bytes = AlignedBytes::read(&path).unwrap();
    let package = Package::parse(bytes.as_slice()).unwrap();
    let mut arena = AlignedBytes::zeroed(package.arena_bytes());
    let mut local = Engine::load(&package, CpuBackend, arena.as_mut_slice()).unwrap();
    let x = values(1, 4 * 8 * 8);
    println!(
        "model: one 3x3 conv, 4 channels, 8x8 ({} bytes in, {} out); {frames} frames each",
        x.len() * 4,
        x.len() * 4
    );

    for (setting, spin) in [
        (
            "default (no spin: a futex wake-up per frame)",
            IsolatedOptions::default().spin,
        ),
        ("spin 10 µs", Duration::from_micros(10)),
        ("spin 100 µs", Duration::from_micros(100)),
    ] {
        let mut remote = IsolatedEngine::spawn(&path, IsolatedOptions { spin, ..options() })
            .expect("the worker starts");
        let mut in_process = Vec::with_capacity(frames);
        let mut out_of_process = Vec::with_capacity(frames);
        for _ in 0..frames / 10 {
            remote.set_input("x", &x).unwrap();
            remote.run(FRAME_TIMEOUT).unwrap();
        }
        // Interleaved, so both see the same machine load.
        for _ in 0..frames {
            let start = Instant::now();
            local.input_mut(0).unwrap().copy_from_slice(&x);
            local.run().unwrap();
            std::hint::black_box(local.output("y").unwrap());
            in_process.push(start.elapsed().as_nanos() as u64);

            let start = Instant::now();
            remote.input_mut(0).unwrap().copy_from_slice(&x);
            remote.run(FRAME_TIMEOUT).unwrap();
            std::hint::black_box(remote.output("y").unwrap());
            out_of_process.push(start.elapsed().as_nanos() as u64);
        }
        println!("\n{setting}:");
        let (local_p50, local_p99) = summary("in-process frame", &mut in_process);
        let (remote_p50, remote_p99) = summary("out-of-process frame", &mut out_of_process);
        println!(
            "{:<34} p50 {:>8.1} µs   p99 {:>8.1} µs",
            "overhead (difference)",
            remote_p50.saturating_sub(local_p50) as f64 / 1e3,
            remote_p99.saturating_sub(local_p99) as f64 / 1e3
        );
    }
}
