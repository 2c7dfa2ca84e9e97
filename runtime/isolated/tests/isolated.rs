//! Out-of-process execution against in-process execution, and the worker's failure
//! modes: killed mid-frame, killed between frames, hung, refusing a frame, missing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cadence_hal::cpu::CpuBackend;
use cadence_isolated::{IsolatedEngine, IsolatedError, IsolatedOptions, PackageFileError};
use cadence_runtime::Engine;
use cadence_runtime::package::{AlignedBytes, Package};
use common::{FRAME_TIMEOUT, conv_stack, options, values, write_package};
use rustix::process::{Pid, Signal, kill_process};

/// Runs `frames` through the in-process engine: one output vector per frame.
fn in_process(path: &Path, frames: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let bytes = AlignedBytes::read(path).unwrap();
    let package = Package::parse(bytes.as_slice()).unwrap();
    let mut arena = AlignedBytes::zeroed(package.arena_bytes());
    let mut engine = Engine::load(&package, CpuBackend, arena.as_mut_slice()).unwrap();
    frames
        .iter()
        .map(|x| {
            engine.input_mut(0).unwrap().copy_from_slice(x);
            engine.run().unwrap();
            engine.output("y").unwrap().to_vec()
        })
        .collect()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn frames(count: usize, len: usize) -> Vec<Vec<f32>> {
    (0..count).map(|i| values(i as u64 + 7, len)).collect()
}

/// A model slow enough (tens of milliseconds) that a kill lands mid-frame.
fn slow_model() -> (tempfile::TempDir, PathBuf, usize) {
    let (dir, path) = write_package(&conv_stack(32, 96, 8));
    (dir, path, 32 * 96 * 96)
}

#[test]
fn results_equal_in_process_results_bit_for_bit() {
    let (_dir, path) = write_package(&conv_stack(8, 24, 3));
    let inputs = frames(6, 8 * 24 * 24);
    let expected = in_process(&path, &inputs);
    // Both hand-overs: futex only (the default), and spinning first.
    for spin in [Duration::ZERO, Duration::from_millis(1)] {
        let mut engine =
            IsolatedEngine::spawn(&path, IsolatedOptions { spin, ..options() }).unwrap();
        assert_eq!(engine.input_names().collect::<Vec<_>>(), ["x"]);
        assert_eq!(engine.output_names().collect::<Vec<_>>(), ["y"]);
        for (i, (x, want)) in inputs.iter().zip(&expected).enumerate() {
            if i.is_multiple_of(2) {
                engine.set_input("x", x).unwrap();
            } else {
                engine.input_mut(0).unwrap().copy_from_slice(x);
            }
            engine.run(FRAME_TIMEOUT).unwrap();
            assert_eq!(
                bits(engine.output("y").unwrap()),
                bits(want),
                "{spin:?}, frame {i}"
            );
            assert_eq!(
                bits(engine.output_at(0).unwrap()),
                bits(want),
                "{spin:?}, frame {i}"
            );
        }
    }
}

#[test]
fn a_worker_killed_mid_frame_fails_that_frame_and_the_next_frame_runs_after_restart() {
    let (_dir, path, len) = slow_model();
    let inputs = frames(1, len);
    let expected = in_process(&path, &inputs);
    let mut engine = IsolatedEngine::spawn(&path, options()).unwrap();
    engine.set_input("x", &inputs[0]).unwrap();
    engine.run(FRAME_TIMEOUT).unwrap();
    let first_pid = engine.pid().unwrap();

    // The killer waits a little into the frame (tens of milliseconds long). Should a
    // loaded machine let the frame beat it, the kill lands between frames and the next
    // frame is the one that fails: the same path, one frame later.
    let pid = Pid::from_raw(first_pid as i32).unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        kill_process(pid, Signal::KILL).unwrap();
    });
    engine.set_input("x", &inputs[0]).unwrap();
    let mut outcome = engine.run(FRAME_TIMEOUT);
    killer.join().unwrap();
    if outcome.is_ok() {
        engine.set_input("x", &inputs[0]).unwrap();
        outcome = engine.run(FRAME_TIMEOUT);
    }
    let status = match outcome {
        Err(IsolatedError::WorkerDied(status)) => status,
        other => panic!("expected WorkerDied, got {other:?}"),
    };
    assert!(!status.success(), "killed, not exited: {status}");
    assert!(matches!(engine.output("y"), Err(IsolatedError::NoOutputs)));
    assert_eq!(engine.pid(), None, "the dead worker is reaped");

    engine.set_input("x", &inputs[0]).unwrap();
    engine.run(FRAME_TIMEOUT).unwrap();
    assert_ne!(
        engine.pid(),
        Some(first_pid),
        "a new worker runs the next frame"
    );
    assert_eq!(bits(engine.output("y").unwrap()), bits(&expected[0]));
}

#[test]
fn a_worker_killed_between_frames_is_restarted_by_the_next_run() {
    let (_dir, path) = write_package(&conv_stack(4, 8, 1));
    let x = values(3, 4 * 8 * 8);
    let expected = in_process(&path, std::slice::from_ref(&x));
    let mut engine = IsolatedEngine::spawn(&path, options()).unwrap();
    let first_pid = engine.pid();
    engine.kill().unwrap();
    assert_eq!(engine.pid(), None);
    engine.set_input("x", &x).unwrap();
    engine.run(FRAME_TIMEOUT).unwrap();
    assert!(engine.pid().is_some() && engine.pid() != first_pid);
    assert_eq!(bits(engine.output("y").unwrap()), bits(&expected[0]));

    engine.restart().unwrap();
    assert!(matches!(engine.output("y"), Err(IsolatedError::NoOutputs)));
    engine.set_input("x", &x).unwrap();
    engine.run(FRAME_TIMEOUT).unwrap();
    assert_eq!(bits(engine.output("y").unwrap()), bits(&expected[0]));
}

#[test]
fn a_frame_past_its_timeout_kills_the_worker_and_the_next_frame_runs() {
    let (_dir, path, len) = slow_model();
    let x = values(5, len);
    let expected = in_process(&path, std::slice::from_ref(&x));
    let mut engine = IsolatedEngine::spawn(&path, options()).unwrap();
    engine.set_input("x", &x).unwrap();
    let timeout = Duration::from_micros(200);
    match engine.run(timeout) {
        Err(IsolatedError::Timeout(t)) => assert_eq!(t, timeout),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(engine.pid(), None, "the hung worker is killed and reaped");
    engine.set_input("x", &x).unwrap();
    engine.run(FRAME_TIMEOUT).unwrap();
    assert_eq!(bits(engine.output("y").unwrap()), bits(&expected[0]));
}

#[test]
fn a_frame_the_worker_refuses_is_reported_and_the_worker_stays_up() {
    let (_dir, path) = write_package(&conv_stack(4, 8, 1));
    let mut engine = IsolatedEngine::spawn(&path, options()).unwrap();
    let pid = engine.pid();
    let mut x = values(9, 4 * 8 * 8);
    x[17] = f32::NAN;
    engine.set_input("x", &x).unwrap();
    match engine.run(FRAME_TIMEOUT) {
        Err(IsolatedError::Frame(message)) => {
            let text = message.to_string();
            assert!(
                text.contains("`x`") && text.contains("element 17"),
                "{text}"
            );
        }
        other => panic!("expected the worker to refuse the frame, got {other:?}"),
    }
    assert!(matches!(engine.output("y"), Err(IsolatedError::NoOutputs)));
    x[17] = 0.5;
    engine.set_input("x", &x).unwrap();
    engine.run(FRAME_TIMEOUT).unwrap();
    assert_eq!(engine.pid(), pid, "a refused frame does not cost a restart");
}

#[test]
fn an_engine_moves_to_the_thread_that_drives_it() {
    fn assert_send<T: Send>() {}
    assert_send::<IsolatedEngine>();
    let (_dir, path) = write_package(&conv_stack(4, 8, 1));
    let mut engine = IsolatedEngine::spawn(&path, options()).unwrap();
    let x = values(4, 4 * 8 * 8);
    let expected = in_process(&path, std::slice::from_ref(&x));
    let output = std::thread::spawn(move || {
        engine.set_input("x", &x).unwrap();
        engine.run(FRAME_TIMEOUT).unwrap();
        engine.output("y").unwrap().to_vec()
    })
    .join()
    .unwrap();
    assert_eq!(bits(&output), bits(&expected[0]));
}

#[test]
fn misuse_is_reported_precisely() {
    let (_dir, path) = write_package(&conv_stack(4, 8, 1));
    let mut engine = IsolatedEngine::spawn(&path, options()).unwrap();
    assert!(matches!(engine.output("y"), Err(IsolatedError::NoOutputs)));
    assert!(matches!(
        engine.set_input("image", &[0.0]),
        Err(IsolatedError::UnknownInput(name)) if name == "image"
    ));
    assert!(matches!(
        engine.set_input("x", &[0.0; 3]),
        Err(IsolatedError::InputLength {
            expected: 256,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        engine.input_mut(1),
        Err(IsolatedError::NoSuchTensor { index: 1, count: 1 })
    ));
    assert!(matches!(
        engine.output("boxes"),
        Err(IsolatedError::UnknownOutput(name)) if name == "boxes"
    ));
}

#[test]
fn start_up_failures_are_reported() {
    let (dir, path) = write_package(&conv_stack(4, 8, 1));
    let missing = dir.path().join("no-such-worker");
    let with_worker = |worker: PathBuf| IsolatedOptions {
        worker: Some(worker),
        ..options()
    };
    assert!(matches!(
        IsolatedEngine::spawn(&path, with_worker(missing.clone())),
        Err(IsolatedError::WorkerNotFound { path }) if path == missing
    ));
    assert!(matches!(
        IsolatedEngine::spawn(&path, with_worker(PathBuf::from("/bin/false"))),
        Err(IsolatedError::WorkerExitedAtStartup(status)) if !status.success()
    ));
    let truncated = dir.path().join("truncated.cpk");
    std::fs::write(&truncated, &std::fs::read(&path).unwrap()[..100]).unwrap();
    assert!(matches!(
        IsolatedEngine::spawn(&truncated, options()),
        Err(IsolatedError::Package(PackageFileError::Invalid { .. }))
    ));
}
