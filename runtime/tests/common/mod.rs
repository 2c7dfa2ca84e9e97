//! Shared fixtures: a small two-input, two-output package and backends that run it
//! without the CPU kernels.
// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use cadence_hal::plan::StepRecord;
use cadence_hal::{Accelerator, BackendError, DType, Op, Plan, Shape, Storage, TensorRecord};
use cadence_runtime::package::builder::{
    DimDecl, IoDecl, MetadataDecl, PackageBuilder, ProvenanceDecl, TestCase,
};
use cadence_runtime::package::{AlignedBytes, ModelFamily, NanPolicy, Preprocess, Tolerance};

/// Arena bytes the fixture plan needs.
pub const ARENA_BYTES: usize = 256;

fn tensor(storage: Storage, offset: u32, dims: &[usize]) -> TensorRecord {
    TensorRecord::new(storage, DType::F32, offset, &Shape::new(dims).unwrap())
}

fn io(name: &str, tensor: u32, nan_policy: NanPolicy) -> IoDecl {
    IoDecl {
        name: name.into(),
        dtype: DType::F32,
        dims: vec![
            DimDecl::Symbolic {
                name: "N".into(),
                value: 1,
            },
            DimDecl::Fixed(4),
        ],
        tensor,
        nan_policy,
    }
}

/// `y = copy(x)`, `z = copy(aux)`; `x` rejects NaN, `aux` allows it.
pub fn builder() -> PackageBuilder {
    let copy = |from, to| Op::Copy.to_record(&[from], to);
    let cases = [[1.0, 2.0, 3.0, 4.0], [-0.5, 0.0, 1e-3, 1e6]];
    PackageBuilder {
        inputs: vec![
            io("x", 0, NanPolicy::Reject),
            io("aux", 1, NanPolicy::Allow),
        ],
        outputs: vec![io("y", 2, NanPolicy::Reject), io("z", 3, NanPolicy::Reject)],
        tensors: vec![
            tensor(Storage::Arena, 0, &[1, 4]),
            tensor(Storage::Arena, 64, &[1, 4]),
            tensor(Storage::Arena, 128, &[1, 4]),
            tensor(Storage::Arena, 192, &[1, 4]),
            tensor(Storage::Weights, 0, &[4]),
        ],
        steps: vec![copy(0, 2), copy(1, 3)],
        step_names: vec!["/copy_x".into(), "/copy_aux".into()],
        arena_bytes: ARENA_BYTES as u32,
        arena_lower_bound_bytes: 128,
        weights: [0.5f32, 1.5, 2.5, 3.5]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect(),
        test_cases: cases
            .iter()
            .map(|c| TestCase {
                inputs: vec![c.to_vec(), c.iter().map(|v| v * 2.0).collect()],
                outputs: vec![c.to_vec(), c.iter().map(|v| v * 2.0).collect()],
            })
            .collect(),
        tolerance: Tolerance {
            abs: 1e-5,
            rel: 1e-4,
        },
        provenance: ProvenanceDecl {
            source_sha256: [7; 32],
            source_name: "copy.onnx".into(),
            compiler_version: "0.1.0".into(),
            git_commit: "0123abcd".into(),
            created_unix: 1_700_000_000,
            macs: 0,
            parameters: 4,
        },
        metadata: MetadataDecl {
            family: ModelFamily::Camera,
            preprocess: Preprocess::CameraImagenet {
                height: 320,
                width: 320,
            },
            pairs: vec![
                ("description".into(), "two copies — a test fixture".into()),
                ("dataset".into(), "none".into()),
            ],
        },
        source_onnx: Some(b"not really onnx".to_vec()),
    }
}

/// The fixture package, in an aligned buffer.
pub fn package_bytes() -> AlignedBytes {
    AlignedBytes::from_slice(&builder().to_bytes().expect("fixture builds"))
}

/// Runs `Op::Copy` steps by moving bytes, and can be told to misbehave.
#[derive(Debug, Default)]
pub struct CopyBackend {
    /// Fail the next frame with a fault.
    pub fail_next: bool,
    /// Added to every output element: a wrong backend for the self-test.
    pub bias: f32,
}

impl Accelerator for CopyBackend {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        match plan.steps.iter().find(|s| s.op != Op::Copy.code()) {
            None => Ok(()),
            Some(_) => Err(BackendError::UnsupportedOp {
                backend: "copy",
                op: "non-copy",
            }),
        }
    }

    fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
        if std::mem::take(&mut self.fail_next) {
            return Err(BackendError::fault("copy", &"injected fault"));
        }
        for step in plan.steps {
            copy_step(plan, step, arena, self.bias);
        }
        Ok(())
    }
}

fn copy_step(plan: &Plan<'_>, step: &StepRecord, arena: &mut [u8], bias: f32) {
    let from = plan.byte_range(step.inputs[0]);
    let to = plan.byte_range(step.output);
    arena.copy_within(from, to.start);
    if bias != 0.0 {
        for chunk in arena[to].chunks_exact_mut(4) {
            let v = f32::from_ne_bytes(chunk.try_into().unwrap()) + bias;
            chunk.copy_from_slice(&v.to_ne_bytes());
        }
    }
}
