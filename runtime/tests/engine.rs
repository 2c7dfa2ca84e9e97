//! The engine: load-time checks, per-frame input checks, errors that leave it usable,
//! and the self-test.

mod common;

use cadence_hal::cpu::CpuBackend;
use cadence_hal::{BackendError, DType, StepTiming};
use cadence_runtime::engine::{Engine, EngineError, TensorView};
use cadence_runtime::package::{AlignedBytes, Package};
use common::{ARENA_BYTES, CopyBackend};

const X: [f32; 4] = [1.0, -2.0, 3.5, 0.25];
const AUX: [f32; 4] = [9.0, 8.0, 7.0, 6.0];

#[test]
fn a_frame_runs_and_outputs_are_read_by_name_index_and_iterator() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CopyBackend::default(), &mut arena).unwrap();

    assert_eq!(engine.output("y").unwrap_err(), EngineError::NoOutputs);
    engine.set_input_f32("x", &[1, 4], &X).unwrap();
    engine
        .set_input("aux", TensorView::f32(&[1, 4], &AUX))
        .unwrap();
    engine.run().unwrap();
    assert_eq!(engine.output("y").unwrap(), &X);
    assert_eq!(engine.output_at(1).unwrap(), &AUX);
    let all: Vec<_> = engine
        .outputs()
        .unwrap()
        .map(|(n, s, v)| (n, s.dims().to_vec(), v.to_vec()))
        .collect();
    assert_eq!(
        all,
        [
            ("y", vec![1, 4], X.to_vec()),
            ("z", vec![1, 4], AUX.to_vec())
        ]
    );
    assert_eq!(engine.input_index("aux"), Some(1));
    assert_eq!(engine.output_index("z"), Some(1));

    engine.input_mut(0).unwrap().copy_from_slice(&AUX);
    assert_eq!(
        engine.output("y").unwrap_err(),
        EngineError::NoOutputs,
        "inputs changed since the run"
    );
    engine.run().unwrap();
    assert_eq!(engine.output("y").unwrap(), &AUX);
}

#[test]
fn an_arena_too_small_names_the_size_needed() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES - 4);
    let e = Engine::load(&package, CopyBackend::default(), &mut arena).unwrap_err();
    assert_eq!(
        e,
        EngineError::ArenaTooSmall {
            needed: ARENA_BYTES,
            given: ARENA_BYTES - 4
        }
    );
    assert!(e.to_string().contains("needs 256 bytes"), "{e}");
    assert!(e.to_string().contains("cadence inspect"), "{e}");
}

#[test]
fn a_misaligned_arena_is_refused() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES + 64);
    let e = Engine::load(&package, CopyBackend::default(), &mut arena[8..]).unwrap_err();
    assert_eq!(e, EngineError::MisalignedArena);
}

#[test]
fn a_backend_that_cannot_prepare_fails_the_load() {
    let mut b = common::builder();
    b.steps[0] = cadence_hal::Op::Unary(cadence_hal::Activation::Relu).to_record(&[0], 2);
    let bytes = AlignedBytes::from_slice(&b.to_bytes().unwrap());
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let e = Engine::load(&package, CopyBackend::default(), &mut arena).unwrap_err();
    assert!(
        matches!(e, EngineError::Backend(BackendError::UnsupportedOp { .. })),
        "{e:?}"
    );
}

#[test]
fn an_invalid_plan_is_refused_at_load() {
    let mut b = common::builder();
    b.steps[1].inputs[0] = 2; // reads y while writing z: fine; now make it overlap itself
    b.steps[1].output = 2;
    let bytes = AlignedBytes::from_slice(&b.to_bytes().unwrap());
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let e = Engine::load(&package, CopyBackend::default(), &mut arena).unwrap_err();
    assert!(matches!(e, EngineError::InvalidPlan(_)), "{e:?}");
    assert!(e.to_string().contains("recompile"), "{e}");
}

fn with_engine(f: impl FnOnce(&mut Engine<'_, '_, CopyBackend>)) {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CopyBackend::default(), &mut arena).unwrap();
    f(&mut engine);
}

#[test]
fn wrong_inputs_are_refused_precisely() {
    with_engine(|engine| {
        let e = engine.set_input_f32("image", &[1, 4], &X).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the model has no input named `image`; `cadence inspect` lists its inputs"
        );

        let e = engine.set_input_f32("x", &[4], &X).unwrap_err();
        assert!(matches!(e, EngineError::ShapeMismatch { .. }));
        assert_eq!(
            e.to_string(),
            "input `x` takes shape [1,4], but [4] was given"
        );

        let e = engine
            .set_input_f32("x", &[1, 1, 1, 1, 1, 1, 4], &X)
            .unwrap_err();
        assert!(
            matches!(e, EngineError::RankTooHigh { rank: 7, .. }),
            "{e:?}"
        );

        let e = engine.set_input_f32("x", &[1, 4], &X[..3]).unwrap_err();
        assert!(
            matches!(
                e,
                EngineError::ByteLength {
                    expected: 16,
                    got: 12,
                    ..
                }
            ),
            "{e:?}"
        );

        let bytes = [0u8; 4];
        let e = engine
            .set_input(
                "x",
                TensorView {
                    dtype: DType::U8,
                    shape: &[1, 4],
                    bytes: &bytes,
                },
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `x` takes f32 elements, but u8 were given"
        );

        assert_eq!(
            engine.input_mut(2).unwrap_err(),
            EngineError::NoSuchInput { index: 2, count: 2 }
        );
        assert_eq!(
            engine.output_at(5).unwrap_err(),
            EngineError::NoSuchOutput { index: 5, count: 2 }
        );
        assert!(matches!(
            engine.output("w").unwrap_err(),
            EngineError::UnknownOutput { .. }
        ));

        let long = "n".repeat(500);
        let e = engine.set_input_f32(&long, &[1, 4], &X).unwrap_err();
        assert!(matches!(e, EngineError::UnknownInput { name } if name.len() == 64));
    });
}

#[test]
fn nan_is_rejected_where_the_policy_says_and_allowed_elsewhere() {
    with_engine(|engine| {
        let mut bad = X;
        bad[2] = f32::NAN;
        engine.set_input_f32("x", &[1, 4], &bad).unwrap();
        engine.set_input_f32("aux", &[1, 4], &AUX).unwrap();
        let e = engine.run().unwrap_err();
        assert!(
            matches!(&e, EngineError::NonFiniteInput { input, index: 2, .. } if input == "x"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("input `x` holds NaN at element 2"),
            "{e}"
        );
        assert_eq!(engine.output("y").unwrap_err(), EngineError::NoOutputs);

        let mut inf = X;
        inf[0] = f32::NEG_INFINITY;
        engine.set_input_f32("x", &[1, 4], &inf).unwrap();
        assert!(matches!(
            engine.run().unwrap_err(),
            EngineError::NonFiniteInput { index: 0, .. }
        ));

        // `aux` allows NaN: it flows through.
        engine.set_input_f32("x", &[1, 4], &X).unwrap();
        engine
            .set_input_f32("aux", &[1, 4], &[f32::NAN, 1.0, 2.0, 3.0])
            .unwrap();
        engine.run().unwrap();
        assert!(engine.output("z").unwrap()[0].is_nan());
    });
}

#[test]
fn a_backend_error_surfaces_and_the_next_frame_runs() {
    with_engine(|engine| {
        engine.set_input_f32("x", &[1, 4], &X).unwrap();
        engine.set_input_f32("aux", &[1, 4], &AUX).unwrap();
        engine.run().unwrap();
        engine.backend_mut().fail_next = true;
        let e = engine.run().unwrap_err();
        assert!(
            matches!(
                &e,
                EngineError::Backend(BackendError::Fault {
                    backend: "copy",
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "backend `copy` failed: injected fault");
        assert_eq!(
            engine.output("y").unwrap_err(),
            EngineError::NoOutputs,
            "a failed frame has no outputs"
        );
        engine.run().unwrap();
        assert_eq!(engine.output("y").unwrap(), &X);
    });
}

#[test]
fn selftest_passes_with_a_correct_backend() {
    with_engine(|engine| {
        let report = engine.selftest().unwrap();
        assert!(report.passed(), "{report:?}");
        assert_eq!(report.cases, 2);
        assert_eq!(report.outputs.len(), 2);
        assert_eq!(report.outputs[0].name, "y");
        assert_eq!(report.outputs[0].max_abs_error, 0.0);
    });
}

#[test]
fn selftest_reports_a_wrong_backend_without_failing() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let backend = CopyBackend {
        bias: 0.01,
        ..Default::default()
    };
    let mut engine = Engine::load(&package, backend, &mut arena).unwrap();
    let report = engine.selftest().unwrap();
    assert!(!report.passed());
    let y = &report.outputs[0];
    assert!(!y.passed());
    assert!((y.max_abs_error - 0.01).abs() < 1e-4, "{y:?}");
    // Case 1 holds 1e6, where 0.01 is inside the relative tolerance.
    assert_eq!(y.mismatches, 7);
    let first = y.first_mismatch.unwrap();
    assert_eq!((first.case, first.index, first.expected), (0, 0, 1.0));
}

#[test]
fn selftest_without_vectors_is_an_error() {
    let mut b = common::builder();
    b.test_cases.clear();
    let bytes = AlignedBytes::from_slice(&b.to_bytes().unwrap());
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CopyBackend::default(), &mut arena).unwrap();
    assert_eq!(engine.selftest().unwrap_err(), EngineError::NoTestVectors);
}

/// Passes once the CPU kernels implement `Op::Copy`; until then the dispatcher is a
/// placeholder and the outputs stay zero.
#[test]
fn cpu_backend_passes_the_selftest_on_a_copy_plan() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CpuBackend, &mut arena).unwrap();
    let report = engine.selftest().unwrap();
    assert!(report.passed(), "{report:?}");
}

/// A clock that moves one nanosecond per reading, so every step reads as exactly 1 ns.
struct Ticks(std::cell::Cell<u64>);

impl cadence_hal::Clock for Ticks {
    fn now_ns(&self) -> u64 {
        let t = self.0.get() + 1;
        self.0.set(t);
        t
    }
}

#[test]
fn a_timed_frame_matches_a_plain_one_bit_for_bit_and_times_every_step() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let inputs = [[1.5f32, -0.0, f32::MIN_POSITIVE, 7e30], AUX];
    let run_with = |timed: bool| {
        let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
        let mut engine = Engine::load(&package, CpuBackend, &mut arena).unwrap();
        engine.set_input_f32("x", &[1, 4], &inputs[0]).unwrap();
        engine.set_input_f32("aux", &[1, 4], &inputs[1]).unwrap();
        let mut step_ns = vec![0; engine.step_count()];
        if timed {
            let timing = engine
                .run_timed(&Ticks(std::cell::Cell::new(0)), &mut step_ns)
                .unwrap();
            assert_eq!(timing, StepTiming::PerStep);
        } else {
            engine.run().unwrap();
        }
        let outputs: Vec<Vec<u32>> = engine
            .outputs()
            .unwrap()
            .map(|(_, _, v)| v.iter().map(|x| x.to_bits()).collect())
            .collect();
        (outputs, step_ns)
    };
    let (plain, _) = run_with(false);
    let (timed, step_ns) = run_with(true);
    assert_eq!(timed, plain);
    assert_eq!(step_ns, vec![1; package.plan().steps.len()]);
}

#[test]
fn a_timed_frame_refuses_a_wrong_sized_slice_and_bad_inputs() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CpuBackend, &mut arena).unwrap();
    let clock = Ticks(std::cell::Cell::new(0));
    engine.set_input_f32("x", &[1, 4], &X).unwrap();
    engine.set_input_f32("aux", &[1, 4], &AUX).unwrap();
    let steps = engine.step_count();
    let e = engine
        .run_timed(&clock, &mut vec![0; steps + 1])
        .unwrap_err();
    assert_eq!(
        e,
        EngineError::StepTimesLength {
            steps,
            given: steps + 1
        }
    );
    assert!(e.to_string().contains("step_count"), "{e}");
    engine.set_input_f32("x", &[1, 4], &[f32::NAN; 4]).unwrap();
    let e = engine.run_timed(&clock, &mut vec![0; steps]).unwrap_err();
    assert!(matches!(e, EngineError::NonFiniteInput { .. }), "{e:?}");
    assert_eq!(engine.output("y").unwrap_err(), EngineError::NoOutputs);
}

/// Records where the plan it was prepared with lives, and checks every frame gets that
/// same plan: a device backend runs what it built at load without reading the plan.
struct SamePlan {
    prepared: Option<(*const u8, usize)>,
    frames: usize,
}

impl SamePlan {
    fn identity(plan: &cadence_hal::Plan<'_>) -> (*const u8, usize) {
        (plan.weights.as_ptr(), plan.steps.len())
    }
}

impl cadence_hal::Accelerator for SamePlan {
    fn name(&self) -> &'static str {
        "same-plan"
    }
    fn prepare(&mut self, plan: &cadence_hal::Plan<'_>) -> Result<(), BackendError> {
        self.prepared = Some(Self::identity(plan));
        Ok(())
    }
    fn run(&mut self, plan: &cadence_hal::Plan<'_>, _: &mut [u8]) -> Result<(), BackendError> {
        assert_eq!(self.prepared, Some(Self::identity(plan)));
        self.frames += 1;
        Ok(())
    }
}

#[test]
fn every_frame_runs_the_plan_the_backend_was_prepared_with() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let backend = SamePlan {
        prepared: None,
        frames: 0,
    };
    let mut engine = Engine::load(&package, backend, &mut arena).unwrap();
    engine.set_input_f32("x", &[1, 4], &X).unwrap();
    engine.set_input_f32("aux", &[1, 4], &AUX).unwrap();
    engine.run().unwrap();
    let mut step_ns = vec![0; engine.step_count()];
    engine
        .run_timed(&cadence_hal::SimClock::new(), &mut step_ns)
        .unwrap();
    engine.selftest().unwrap();
    assert!(engine.backend().frames >= 3);
}

/// A backend that runs the plan as one unit still profiles: the frame runs through
/// the trait's default `run_timed`, which says the steps were not timed apart.
#[test]
fn a_backend_without_step_timing_runs_timed_frames_whole() {
    let bytes = common::package_bytes();
    let package = Package::parse(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(ARENA_BYTES);
    let mut engine = Engine::load(&package, CopyBackend::default(), &mut arena).unwrap();
    engine.set_input_f32("x", &[1, 4], &X).unwrap();
    engine.set_input_f32("aux", &[1, 4], &AUX).unwrap();
    let mut step_ns = vec![7; engine.step_count()];
    let timing = engine
        .run_timed(&Ticks(std::cell::Cell::new(0)), &mut step_ns)
        .unwrap();
    assert_eq!(timing, StepTiming::WholeFrame);
    assert!(step_ns.iter().all(|&ns| ns == 0), "{step_ns:?}");
    assert_eq!(engine.output("y").unwrap(), &X);
}
