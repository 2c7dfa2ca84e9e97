//! From plan steps to kernel launches: the arguments each op's kernel (its
//! [`OpCode::kernel_entry`], one per op) is handed, and the grid it is launched on. Pure host code, so it is tested without a
//! GPU; the device module only replays what this produces.

use core::fmt;

use crate::op::{Op, OpCode};
use crate::plan::{MAX_STEP_INPUTS, NO_TENSOR, PARAM_WORDS, Plan, PlanError, Storage};
use crate::shape::{MAX_RANK, Shape};

/// [`StepArgs::in_space`] of an input read from the device arena.
pub const SLOT_ARENA: u32 = 0;
/// [`StepArgs::in_space`] of an input read from the device copy of the weights.
pub const SLOT_WEIGHTS: u32 = 1;
/// [`StepArgs::in_space`] of an unused input slot (e.g. a conv without bias).
pub const SLOT_ABSENT: u32 = 2;

/// Threads per block of every plan kernel: a multiple of the warp size, small enough
/// that a kernel's registers never limit occupancy below a few blocks per SM.
pub const THREADS_PER_BLOCK: u32 = 256;

/// What one kernel receives by value, laid out exactly as `struct StepArgs` in
/// `kernels.cu` (the generated prelude makes NVRTC check the size). Offsets and
/// dims are in `f32` elements.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepArgs {
    /// Work items: threads the kernel's grid-stride loop covers.
    pub total: u32,
    /// Output's element offset in the arena.
    pub out_offset: u32,
    /// Inputs' element offsets in their space.
    pub in_offset: [u32; MAX_STEP_INPUTS],
    /// Where each input lives: [`SLOT_ARENA`], [`SLOT_WEIGHTS`] or [`SLOT_ABSENT`].
    pub in_space: [u32; MAX_STEP_INPUTS],
    /// Inputs' ranks.
    pub in_rank: [u32; MAX_STEP_INPUTS],
    /// Inputs' dims, outermost first.
    pub in_dims: [[u32; MAX_RANK]; MAX_STEP_INPUTS],
    /// Output's rank.
    pub out_rank: u32,
    /// Output's dims, outermost first.
    pub out_dims: [u32; MAX_RANK],
    /// The step's parameter words as stored: kernels decode them as [`Op::decode`] does.
    pub params: [u32; PARAM_WORDS],
}

/// Threads an op's kernel needs: one per output element, except for softmax (one per
/// line along its axis) and concat pieces (one per input element).
fn work_items(op: &Op, inputs: &[Shape; MAX_STEP_INPUTS], out: &Shape) -> usize {
    match *op {
        Op::CopyInto { .. } => inputs[0].volume(),
        Op::Softmax { axis } => match inputs[0].dim(axis) {
            0 => 0,
            len => inputs[0].volume() / len,
        },
        _ => out.volume(),
    }
}

/// Grid of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchGeometry {
    /// Blocks in the (one-dimensional) grid.
    pub blocks: u32,
    /// Threads per block.
    pub threads_per_block: u32,
}

impl LaunchGeometry {
    /// The grid for `items` work items: one thread per item up to `max_blocks` blocks,
    /// beyond which the kernels' grid-stride loops take several items per thread.
    /// `None` when there is no work (the step launches nothing).
    pub fn for_items(items: u32, max_blocks: u32) -> Option<Self> {
        if items == 0 {
            return None;
        }
        Some(Self {
            blocks: items
                .div_ceil(THREADS_PER_BLOCK)
                .clamp(1, max_blocks.max(1)),
            threads_per_block: THREADS_PER_BLOCK,
        })
    }
}

/// One kernel launch of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLaunch {
    /// Index of the plan step it runs.
    pub step: usize,
    /// The op, whose [`OpCode::kernel_entry`] is the kernel launched.
    pub kernel: OpCode,
    /// Its argument block.
    pub args: StepArgs,
    /// Its grid.
    pub geometry: LaunchGeometry,
}

/// Why a plan cannot be turned into launches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LaunchPlanError {
    /// The plan failed validation.
    Plan(PlanError),
    /// A step has more work items than a 32-bit grid-stride counter covers.
    TooManyItems {
        /// Index of the step.
        step: usize,
        /// Items it needs.
        items: usize,
    },
}

impl fmt::Display for LaunchPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plan(e) => write!(f, "invalid plan: {e}"),
            Self::TooManyItems { step, items } => write!(
                f,
                "step {step} needs {items} threads, more than the CUDA kernels index (2^32 - 1); run this model on the cpu backend"
            ),
        }
    }
}

impl From<PlanError> for LaunchPlanError {
    fn from(e: PlanError) -> Self {
        Self::Plan(e)
    }
}

/// The launches of one frame, in plan order (steps with no work launch nothing).
/// `plan` must have passed [`Plan::validate`]; it is re-validated here because the
/// kernels index without bounds checks.
pub fn plan_launches(
    plan: &Plan<'_>,
    max_blocks: u32,
) -> Result<Vec<KernelLaunch>, LaunchPlanError> {
    plan.validate()?;
    let mut launches = Vec::with_capacity(plan.steps.len());
    for (index, step) in plan.steps.iter().enumerate() {
        let op = Op::decode(step).map_err(|error| PlanError::BadStep { step: index, error })?;
        let kernel = op.op_code();
        let mut shapes = [Shape::new(&[]).expect("rank 0 fits"); MAX_STEP_INPUTS];
        let mut args = StepArgs {
            total: 0,
            out_offset: plan.tensors[step.output as usize].offset / 4,
            in_offset: [0; MAX_STEP_INPUTS],
            in_space: [SLOT_ABSENT; MAX_STEP_INPUTS],
            in_rank: [0; MAX_STEP_INPUTS],
            in_dims: [[0; MAX_RANK]; MAX_STEP_INPUTS],
            out_rank: 0,
            out_dims: [0; MAX_RANK],
            params: step.params,
        };
        for (slot, &id) in step.inputs.iter().enumerate() {
            if id == NO_TENSOR {
                continue;
            }
            let record = &plan.tensors[id as usize];
            shapes[slot] = plan.shape(id);
            args.in_offset[slot] = record.offset / 4;
            args.in_space[slot] = match record.storage() {
                Some(Storage::Weights) => SLOT_WEIGHTS,
                _ => SLOT_ARENA,
            };
            (args.in_rank[slot], args.in_dims[slot]) = dims(&shapes[slot]);
        }
        let out = plan.shape(step.output);
        (args.out_rank, args.out_dims) = dims(&out);
        let items = work_items(&op, &shapes, &out);
        args.total = u32::try_from(items)
            .map_err(|_| LaunchPlanError::TooManyItems { step: index, items })?;
        if let Some(geometry) = LaunchGeometry::for_items(args.total, max_blocks) {
            launches.push(KernelLaunch {
                step: index,
                kernel,
                args,
                geometry,
            });
        }
    }
    Ok(launches)
}

fn dims(shape: &Shape) -> (u32, [u32; MAX_RANK]) {
    let mut out = [0; MAX_RANK];
    for (slot, &d) in out.iter_mut().zip(shape.dims()) {
        *slot = d as u32;
    }
    (shape.rank() as u32, out)
}
