//! The CPU backend: Cadence's own portable kernels, `no_std` and allocation-free.
//!
//! Each step borrows its output and scratch regions mutably and its inputs shared from
//! the one arena (see the `views` module); the plan's validation guarantees those regions are
//! disjoint, so the borrows are proven safe by `split_at_mut`, not by `unsafe`.

mod kernels;
mod views;

use zerocopy::FromBytes;

use crate::accelerator::{Accelerator, BackendError, StepTiming};
use crate::backends::BackendKind;
use crate::clock::Clock;
use crate::op::Op;
use crate::plan::{MAX_STEP_INPUTS, Plan, PlanError, Storage};
use crate::shape::Shape;

pub use kernels::simd_level;

const NAME: &str = BackendKind::Cpu.name();

/// The portable CPU backend. Holds no state between frames: it is `Copy`, costs nothing
/// to create, and one instance can serve several engines.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    /// Runs step `index` of `plan` over `arena`. [`Accelerator::run`] and
    /// [`Accelerator::run_timed`] call it for every step in order.
    fn run_step(plan: &Plan<'_>, index: usize, arena: &mut [u8]) -> Result<(), BackendError> {
        let step = plan
            .steps
            .get(index)
            .ok_or_else(|| BackendError::fault(NAME, &"step index past the end of the plan"))?;
        let op = Op::decode(step).map_err(|error| PlanError::BadStep { step: index, error })?;
        let arena = <[f32]>::mut_from_bytes(arena)
            .map_err(|_| BackendError::Plan(PlanError::MisalignedArena))?;
        let weights = <[f32]>::ref_from_bytes(plan.weights)
            .map_err(|_| BackendError::Plan(PlanError::MisalignedWeights))?;

        let elems = |r: core::ops::Range<usize>| r.start / 4..r.end / 4;
        let out_range = elems(plan.byte_range(step.output));
        let scratch_start = step.scratch_offset as usize / 4;
        let scratch_range = scratch_start..scratch_start + step.scratch_bytes as usize / 4;

        let mut in_ranges = [const { views::Source::None }; MAX_STEP_INPUTS];
        let mut in_shapes = [Shape::new(&[]).expect("rank 0 fits"); MAX_STEP_INPUTS];
        for (slot, &id) in step.inputs.iter().enumerate() {
            if id == crate::plan::NO_TENSOR {
                continue;
            }
            let range = elems(plan.byte_range(id));
            in_ranges[slot] = match plan.tensors[id as usize].storage() {
                Some(Storage::Weights) => views::Source::Weights(range),
                _ => views::Source::Arena(range),
            };
            in_shapes[slot] = plan.shape(id);
        }
        let io = views::carve(arena, weights, out_range, scratch_range, &in_ranges);
        kernels::run(&op, io, &in_shapes, &plan.shape(step.output));
        Ok(())
    }
}

impl Accelerator for CpuBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        plan.validate()?;
        Ok(())
    }

    fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
        for index in 0..plan.steps.len() {
            Self::run_step(plan, index, arena)?;
        }
        Ok(())
    }

    /// Times every step: the clock is read between steps, nothing else is added.
    fn run_timed(
        &mut self,
        plan: &Plan<'_>,
        arena: &mut [u8],
        clock: &dyn Clock,
        step_ns: &mut [u64],
    ) -> Result<StepTiming, BackendError> {
        if step_ns.len() != plan.steps.len() {
            return Err(BackendError::fault(
                NAME,
                &"one step time per plan step is needed",
            ));
        }
        let mut before = clock.now_ns();
        for (index, slot) in step_ns.iter_mut().enumerate() {
            Self::run_step(plan, index, arena)?;
            let after = clock.now_ns();
            *slot = after.saturating_sub(before);
            before = after;
        }
        Ok(StepTiming::PerStep)
    }
}
