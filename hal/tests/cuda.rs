//! The CUDA backend without and with a GPU.
//!
//! Everywhere: `no_driver` (loading reports the missing driver as an error, never a
//! panic), and the host-side planning (kernel per op, launch arguments and grids).
//! On a GPU (`cargo test ... -- --ignored`, run by tools/gpu-check.sh): every op and a
//! chain of ops against the CPU backend, frame after frame through the graph.
#![cfg(feature = "cuda")]

use cadence_hal::cpu::CpuBackend;
use cadence_hal::cuda::launch::{
    LaunchGeometry, SLOT_ABSENT, SLOT_ARENA, SLOT_WEIGHTS, THREADS_PER_BLOCK, plan_launches,
};
use cadence_hal::cuda::{CudaBackend, CudaError, probe};
use cadence_hal::op::{
    BinaryKind, CoordinateTransform, NearestRounding, ReduceKind, ResizeMode, Window,
};
use cadence_hal::plan::{MAX_STEP_INPUTS, TENSOR_ALIGN};
use cadence_hal::{
    Accelerator, Activation, BackendError, DType, Op, OpCode, Plan, Shape, StepRecord, Storage,
    TensorRecord,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

fn shape(dims: &[usize]) -> Shape {
    Shape::new(dims).unwrap()
}

use cadence_test_data::values as data;

/// A plan built step by step: arena tensors bump-allocated at [`TENSOR_ALIGN`],
/// constants appended to a weights section.
#[derive(Default)]
struct PlanBuilder {
    tensors: Vec<TensorRecord>,
    steps: Vec<StepRecord>,
    weights: Vec<f32>,
    arena_bytes: usize,
    inputs: Vec<(u32, Vec<f32>)>,
}

impl PlanBuilder {
    fn arena(&mut self, s: Shape) -> u32 {
        let offset = self.arena_bytes;
        self.arena_bytes = (offset + s.volume() * 4).next_multiple_of(TENSOR_ALIGN);
        self.tensors.push(TensorRecord::new(
            Storage::Arena,
            DType::F32,
            offset as u32,
            &s,
        ));
        (self.tensors.len() - 1) as u32
    }

    fn input(&mut self, s: Shape, seed: u64) -> u32 {
        let id = self.arena(s);
        self.inputs.push((id, data(seed, s.volume())));
        id
    }

    fn constant(&mut self, s: Shape, seed: u64) -> u32 {
        while !(self.weights.len() * 4).is_multiple_of(TENSOR_ALIGN) {
            self.weights.push(0.0);
        }
        let offset = self.weights.len() * 4;
        self.weights.extend(data(seed, s.volume()));
        self.tensors.push(TensorRecord::new(
            Storage::Weights,
            DType::F32,
            offset as u32,
            &s,
        ));
        (self.tensors.len() - 1) as u32
    }

    fn step(&mut self, op: Op, inputs: &[u32], out: Shape) -> u32 {
        let mut shapes = [shape(&[]); MAX_STEP_INPUTS];
        for (slot, &id) in shapes.iter_mut().zip(inputs) {
            *slot = self.tensors[id as usize].shape().unwrap();
        }
        let output = self.arena(out);
        let mut record = op.to_record(inputs, output);
        let scratch = op.scratch_bytes(&shapes[..], &out);
        if scratch > 0 {
            record.scratch_offset = self.arena_bytes as u32;
            record.scratch_bytes = scratch as u32;
            self.arena_bytes = (self.arena_bytes + scratch).next_multiple_of(TENSOR_ALIGN);
        }
        self.steps.push(record);
        output
    }

    fn plan(&self) -> Plan<'_> {
        Plan {
            tensors: &self.tensors,
            steps: &self.steps,
            names: &[],
            weights: self.weights.as_bytes(),
            arena_bytes: self.arena_bytes,
        }
    }

    /// A zeroed, aligned arena with the inputs written in.
    fn arena_with_inputs(&self) -> AlignedArena {
        let mut arena = AlignedArena::new(self.arena_bytes);
        let plan = self.plan();
        for (id, values) in &self.inputs {
            arena.bytes()[plan.byte_range(*id)].copy_from_slice(values.as_bytes());
        }
        arena
    }
}

/// A zeroed arena at [`TENSOR_ALIGN`], as the engine hands backends.
struct AlignedArena(Vec<Align>, usize);

#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(64))]
struct Align([u8; 64]);

impl AlignedArena {
    fn new(bytes: usize) -> Self {
        Self(vec![Align([0; 64]); bytes.div_ceil(64)], bytes)
    }

    fn bytes(&mut self) -> &mut [u8] {
        &mut self.0.as_mut_bytes()[..self.1]
    }
}

fn conv(groups: usize, stride: usize, pads: usize, activation: Activation) -> Op {
    Op::Conv2d {
        groups,
        window: Window {
            kernel: [0, 0],
            stride: [stride; 2],
            dilation: [1, 1],
            pads: [pads; 4],
        },
        activation,
    }
}

/// One plan per op family, each a small model the CPU backend runs as reference.
fn op_plans() -> Vec<(&'static str, PlanBuilder)> {
    let mut plans = Vec::new();
    let mut add = |name, build: &dyn Fn(&mut PlanBuilder)| {
        let mut b = PlanBuilder::default();
        build(&mut b);
        plans.push((name, b));
    };
    add("conv 3x3 relu", &|b| {
        let x = b.input(shape(&[1, 3, 9, 9]), 1);
        let w = b.constant(shape(&[8, 3, 3, 3]), 2);
        let bias = b.constant(shape(&[8]), 3);
        b.step(
            conv(1, 2, 1, Activation::Relu),
            &[x, w, bias],
            shape(&[1, 8, 5, 5]),
        );
    });
    add("depthwise hardswish", &|b| {
        let x = b.input(shape(&[1, 4, 7, 7]), 4);
        let w = b.constant(shape(&[4, 1, 3, 3]), 5);
        b.step(
            conv(4, 1, 1, Activation::HardSwish),
            &[x, w],
            shape(&[1, 4, 7, 7]),
        );
    });
    add("pointwise sigmoid", &|b| {
        let x = b.input(shape(&[1, 6, 5, 5]), 6);
        let w = b.constant(shape(&[3, 6, 1, 1]), 7);
        b.step(
            conv(1, 1, 0, Activation::Sigmoid),
            &[x, w],
            shape(&[1, 3, 5, 5]),
        );
    });
    add("conv transpose", &|b| {
        let x = b.input(shape(&[1, 4, 4, 4]), 8);
        let w = b.constant(shape(&[4, 2, 3, 3]), 9);
        let op = Op::ConvTranspose2d {
            groups: 2,
            window: Window {
                kernel: [0, 0],
                stride: [2, 2],
                dilation: [1, 1],
                pads: [1, 1, 1, 1],
            },
            output_padding: [1, 1],
            activation: Activation::LeakyRelu { alpha: 0.1 },
        };
        b.step(op, &[x, w], shape(&[1, 4, 8, 8]));
    });
    add("matmul batched and shared", &|b| {
        let a = b.input(shape(&[2, 3, 5]), 10);
        let w = b.constant(shape(&[5, 4]), 11);
        let bias = b.constant(shape(&[4]), 12);
        let y = b.step(
            Op::MatMul {
                activation: Activation::Tanh,
            },
            &[a, w, bias],
            shape(&[2, 3, 4]),
        );
        let c = b.input(shape(&[2, 4, 2]), 13);
        b.step(
            Op::MatMul {
                activation: Activation::Identity,
            },
            &[y, c],
            shape(&[2, 3, 2]),
        );
    });
    add("binary broadcast", &|b| {
        let x = b.input(shape(&[2, 3, 4]), 14);
        let c = b.constant(shape(&[3, 1]), 15);
        for kind in [
            BinaryKind::Add,
            BinaryKind::Sub,
            BinaryKind::Mul,
            BinaryKind::Div,
            BinaryKind::Max,
            BinaryKind::Min,
        ] {
            b.step(Op::Binary(kind), &[x, c], shape(&[2, 3, 4]));
        }
    });
    add("pooling", &|b| {
        let x = b.input(shape(&[1, 2, 7, 7]), 16);
        let win = Window {
            kernel: [3, 3],
            stride: [2, 2],
            dilation: [1, 1],
            pads: [1, 1, 1, 1],
        };
        b.step(Op::MaxPool2d(win), &[x], shape(&[1, 2, 4, 4]));
        b.step(
            Op::AvgPool2d {
                window: win,
                count_include_pad: false,
            },
            &[x],
            shape(&[1, 2, 4, 4]),
        );
        b.step(
            Op::AvgPool2d {
                window: win,
                count_include_pad: true,
            },
            &[x],
            shape(&[1, 2, 4, 4]),
        );
        b.step(Op::GlobalAvgPool, &[x], shape(&[1, 2, 1, 1]));
    });
    add("layout", &|b| {
        let x = b.input(shape(&[1, 2, 3, 4]), 17);
        let y = b.input(shape(&[1, 3, 3, 4]), 18);
        let cat = b.arena(shape(&[1, 5, 3, 4]));
        for (input, offset) in [(x, 0), (y, 2)] {
            b.steps
                .push(Op::CopyInto { axis: 1, offset }.to_record(&[input], cat));
        }
        b.step(
            Op::Transpose {
                perm: [0, 2, 3, 1, 0, 0],
            },
            &[cat],
            shape(&[1, 3, 4, 5]),
        );
        b.step(
            Op::Slice {
                axis: 3,
                start: 1,
                step: 2,
            },
            &[cat],
            shape(&[1, 5, 3, 2]),
        );
        b.step(Op::Copy, &[cat], shape(&[60]));
    });
    add("resize", &|b| {
        let x = b.input(shape(&[1, 2, 5, 6]), 19);
        let modes = [
            ResizeMode::Linear,
            ResizeMode::Nearest(NearestRounding::RoundPreferFloor),
            ResizeMode::Nearest(NearestRounding::Ceil),
        ];
        let transforms = [
            CoordinateTransform::HalfPixel,
            CoordinateTransform::Asymmetric,
            CoordinateTransform::AlignCorners,
            CoordinateTransform::PytorchHalfPixel,
        ];
        for mode in modes {
            for transform in transforms {
                b.step(
                    Op::Resize {
                        mode,
                        transform,
                        scale: [2.0, 1.5],
                    },
                    &[x],
                    shape(&[1, 2, 10, 9]),
                );
            }
        }
    });
    add("softmax and reductions", &|b| {
        let x = b.input(shape(&[2, 5, 3]), 20);
        b.step(Op::Softmax { axis: 1 }, &[x], shape(&[2, 5, 3]));
        b.step(Op::Softmax { axis: 2 }, &[x], shape(&[2, 5, 3]));
        for kind in [ReduceKind::Max, ReduceKind::Mean, ReduceKind::Sum] {
            b.step(Op::Reduce { kind, axis: 1 }, &[x], shape(&[2, 1, 3]));
        }
    });
    add("pointwise conv max", &|b| {
        let x = b.input(shape(&[1, 9, 12, 8]), 21);
        let w = b.constant(shape(&[16, 9, 1, 1]), 22);
        let bias = b.constant(shape(&[16]), 23);
        b.step(
            Op::PointwiseConvMax {
                activation: Activation::Relu,
            },
            &[x, w, bias],
            shape(&[1, 16, 12, 1]),
        );
    });
    add("activations", &|b| {
        let x = b.input(shape(&[3, 40]), 24);
        for activation in [
            Activation::Identity,
            Activation::Relu,
            Activation::Clip {
                min: -0.25,
                max: 0.5,
            },
            Activation::Sigmoid,
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Activation::HardSwish,
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::Tanh,
        ] {
            b.step(Op::Unary(activation), &[x], shape(&[3, 40]));
        }
    });
    plans
}

/// Loading without a driver is an error value, never a panic: through the trait it is
/// `BackendError::NoDriver`, and `last_error` keeps the detailed `CudaError::NoDriver`
/// whose message says what to do. On a machine with a driver, the same test checks
/// that `prepare` agrees with `probe` (and succeeds where the probe does).
#[test]
fn no_driver() {
    let builder = &op_plans()[0].1;
    let plan = builder.plan();
    let mut backend = CudaBackend::new(0);
    let prepared = backend.prepare(&plan);
    match probe(0) {
        Err(CudaError::NoDriver) => {
            assert_eq!(prepared, Err(BackendError::NoDriver { backend: "cuda" }));
            assert_eq!(backend.last_error(), Some(&CudaError::NoDriver));
            let message = CudaError::NoDriver.to_string();
            for advice in ["libcuda", "nvidia-smi", "LD_LIBRARY_PATH", "--backend cpu"] {
                assert!(message.contains(advice), "{message}");
            }
            assert!(
                BackendError::NoDriver { backend: "cuda" }
                    .to_string()
                    .contains("no driver")
            );
            // The detailed load reports the same, and running unloaded is refused.
            assert_eq!(CudaBackend::load(&plan, 0).err(), Some(CudaError::NoDriver));
            let mut arena = builder.arena_with_inputs();
            assert_eq!(
                backend.run(&plan, arena.bytes()),
                Err(BackendError::NotPrepared { backend: "cuda" })
            );
        }
        Err(other) => {
            assert_eq!(prepared, Err(BackendError::from(&other)));
            assert_eq!(backend.last_error(), Some(&other));
        }
        Ok(_) => assert_eq!(prepared, Ok(())),
    }
}

/// Workers own their backend: it must move to their thread.
#[test]
fn the_backend_can_move_to_a_worker_thread() {
    fn is_send<T: Send>(_: &T) {}
    is_send(&CudaBackend::new(0));
    let moved = std::thread::spawn(|| CudaBackend::new(1)).join().unwrap();
    assert_eq!(moved.launches(), None);
}

#[test]
fn every_op_maps_to_its_own_kernel() {
    let mut seen = Vec::new();
    for (name, builder) in op_plans() {
        let plan = builder.plan();
        let launches = plan_launches(&plan, 1024).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            launches.len(),
            plan.steps.len(),
            "{name}: one launch per step"
        );
        for (launch, step) in launches.iter().zip(plan.steps) {
            let op = Op::decode(step).unwrap();
            assert_eq!(launch.kernel, op.op_code(), "{name}");
            assert_eq!(
                launch.args.params, step.params,
                "{name}: parameters pass through as stored"
            );
            seen.push(launch.kernel);
        }
    }
    for kernel in OpCode::ALL {
        assert!(seen.contains(kernel), "no test plan exercises {kernel:?}");
    }
}

#[test]
fn launch_arguments_locate_every_tensor() {
    let builder = &op_plans()[0].1;
    let plan = builder.plan();
    let launch = plan_launches(&plan, 1024).unwrap()[0];
    let (x, w, bias, y) = (
        &plan.tensors[0],
        &plan.tensors[1],
        &plan.tensors[2],
        &plan.tensors[3],
    );
    assert_eq!(
        launch.args.in_offset,
        [x.offset / 4, w.offset / 4, bias.offset / 4]
    );
    assert_eq!(
        launch.args.in_space,
        [SLOT_ARENA, SLOT_WEIGHTS, SLOT_WEIGHTS]
    );
    assert_eq!(launch.args.out_offset, y.offset / 4);
    assert_eq!(launch.args.in_rank, [4, 4, 1]);
    assert_eq!(launch.args.in_dims[1][..4], [8, 3, 3, 3]);
    assert_eq!(
        (launch.args.out_rank, launch.args.out_dims),
        (4, [1, 8, 5, 5, 0, 0])
    );
    assert_eq!(launch.args.total, 8 * 5 * 5);
    let no_bias = &op_plans()[1].1;
    assert_eq!(
        plan_launches(&no_bias.plan(), 1024).unwrap()[0]
            .args
            .in_space[2],
        SLOT_ABSENT
    );
}

#[test]
fn work_items_follow_each_kernel_s_thread_mapping() {
    let totals = |index: usize| -> Vec<u32> {
        let plans = op_plans();
        plan_launches(&plans[index].1.plan(), 1024)
            .unwrap()
            .iter()
            .map(|l| l.args.total)
            .collect()
    };
    // Concat pieces: one thread per input element; the rest per output element.
    assert_eq!(totals(7), vec![24, 36, 60, 30, 60]);
    // Softmax: one thread per line along the axis; reductions: per output element.
    assert_eq!(totals(9), vec![6, 10, 6, 6, 6]);
}

#[test]
fn grids_cover_the_work_and_respect_the_block_cap() {
    assert_eq!(LaunchGeometry::for_items(0, 64), None);
    let one = LaunchGeometry::for_items(1, 64).unwrap();
    assert_eq!((one.blocks, one.threads_per_block), (1, THREADS_PER_BLOCK));
    let exact = LaunchGeometry::for_items(THREADS_PER_BLOCK * 3, 64).unwrap();
    assert_eq!(exact.blocks, 3);
    let over = LaunchGeometry::for_items(THREADS_PER_BLOCK * 3 + 1, 64).unwrap();
    assert_eq!(over.blocks, 4);
    // Past the cap the grid-stride loops take the rest.
    let capped = LaunchGeometry::for_items(u32::MAX, 64).unwrap();
    assert_eq!(capped.blocks, 64);
}

#[test]
fn an_empty_output_launches_nothing() {
    let mut b = PlanBuilder::default();
    let x = b.input(shape(&[1, 0, 4]), 1);
    b.step(Op::Unary(Activation::Relu), &[x], shape(&[1, 0, 4]));
    assert!(plan_launches(&b.plan(), 1024).unwrap().is_empty());
}

#[test]
fn an_invalid_plan_is_refused_before_any_launch() {
    let mut b = PlanBuilder::default();
    let x = b.input(shape(&[4]), 1);
    b.step(Op::Unary(Activation::Relu), &[x], shape(&[5]));
    assert!(plan_launches(&b.plan(), 1024).is_err());
}

fn assert_close(name: &str, got: &[u8], want: &[u8]) {
    let floats = |b: &[u8]| {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    for (i, (g, w)) in floats(got).iter().zip(floats(want)).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == &w || (g - w).abs() <= 1e-4 * (1.0 + w.abs());
        assert!(ok, "{name}: byte {}: cuda {g}, cpu {w}", i * 4);
    }
}

/// Every op family on the GPU against the CPU backend, three frames each with new
/// inputs, so the graph replays and the copies move fresh data every frame.
#[test]
#[ignore = "needs an NVIDIA GPU with driver and NVRTC; tools/gpu-check.sh runs it"]
fn ops_match_the_cpu_backend_on_a_gpu() {
    let info = probe(0).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "device: {} (sm_{}{})",
        info.name, info.compute_capability.0, info.compute_capability.1
    );
    for (name, mut builder) in op_plans() {
        let mut cuda = CudaBackend::new(0);
        cuda.prepare(&builder.plan())
            .unwrap_or_else(|e| panic!("{name}: {e}; {:?}", cuda.last_error()));
        for frame in 0..3u64 {
            for (i, (_, values)) in builder.inputs.iter_mut().enumerate() {
                *values = data(100 * frame + i as u64, values.len());
            }
            let plan = builder.plan();
            let (mut on_gpu, mut on_cpu) =
                (builder.arena_with_inputs(), builder.arena_with_inputs());
            cuda.run(&plan, on_gpu.bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            CpuBackend.run(&plan, on_cpu.bytes()).unwrap();
            // The builder never reuses memory, so every step's output is copied back.
            for step in plan.steps {
                let range = plan.byte_range(step.output);
                let outputs = &cuda.transfers().unwrap().outputs;
                assert!(
                    outputs
                        .iter()
                        .any(|s| s.start <= range.start && range.end <= s.end),
                    "{name}"
                );
                assert_close(name, &on_gpu.bytes()[range.clone()], &on_cpu.bytes()[range]);
            }
        }
    }
}
