//! Which arena bytes cross the bus each frame.
//!
//! The device arena mirrors the host arena byte for byte (same offsets), so a frame
//! needs only two sets of spans:
//!
//! - **in**: arena bytes some step reads before any step has written them: the model
//!   inputs the caller stored (and any reshaped alias of them);
//! - **out**: arena bytes a step writes that no later step overwrites: they hold the
//!   final value of every model output (and of surviving intermediates, a harmless
//!   superset: the plan does not say which tensors are outputs, and copying a few
//!   more bytes is cheaper than a format change).
//!
//! Copying exactly these leaves the host arena as the CPU backend would for every
//! byte a caller may read. Spans are merged where they touch, so each frame is a
//! handful of `memcpy`s.

use core::ops::Range;

use crate::plan::{NO_TENSOR, Plan, Storage};

/// Byte spans of the arena copied to the device before a frame and back after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferPlan {
    /// Host-to-device spans, sorted and disjoint.
    pub inputs: Vec<Range<usize>>,
    /// Device-to-host spans, sorted and disjoint.
    pub outputs: Vec<Range<usize>>,
}

impl TransferPlan {
    /// The spans for a validated `plan`.
    pub fn for_plan(plan: &Plan<'_>) -> Self {
        let step_writes = |index: usize| {
            let step = &plan.steps[index];
            let scratch =
                step.scratch_offset as usize..(step.scratch_offset + step.scratch_bytes) as usize;
            [plan.byte_range(step.output), scratch]
        };
        let mut written = Spans::default();
        let mut inputs = Spans::default();
        for (index, step) in plan.steps.iter().enumerate() {
            for id in step.inputs.iter().copied().filter(|&id| id != NO_TENSOR) {
                if plan.tensors[id as usize].storage() != Some(Storage::Arena) {
                    continue;
                }
                for unwritten in written.complement_within(plan.byte_range(id)) {
                    inputs.insert(unwritten);
                }
            }
            for range in step_writes(index) {
                written.insert(range);
            }
        }
        let mut overwritten_later = Spans::default();
        let mut outputs = Spans::default();
        for index in (0..plan.steps.len()).rev() {
            let [output, scratch] = step_writes(index);
            for surviving in overwritten_later.complement_within(output.clone()) {
                outputs.insert(surviving);
            }
            overwritten_later.insert(output);
            overwritten_later.insert(scratch);
        }
        Self {
            inputs: inputs.0,
            outputs: outputs.0,
        }
    }

    /// Bytes moved per frame, both directions.
    pub fn bytes_per_frame(&self) -> usize {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .map(|r| r.len())
            .sum()
    }
}

/// A set of byte ranges kept sorted, disjoint and merged where they touch.
#[derive(Clone, Debug, Default)]
struct Spans(Vec<Range<usize>>);

impl Spans {
    fn insert(&mut self, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        let (mut start, mut end) = (range.start, range.end);
        let first = self.0.partition_point(|r| r.end < start);
        let mut last = first;
        while last < self.0.len() && self.0[last].start <= end {
            start = start.min(self.0[last].start);
            end = end.max(self.0[last].end);
            last += 1;
        }
        self.0.splice(first..last, core::iter::once(start..end));
    }

    /// The parts of `range` no span covers, in order.
    fn complement_within(&self, range: Range<usize>) -> Vec<Range<usize>> {
        let mut gaps = Vec::new();
        let mut at = range.start;
        for span in self
            .0
            .iter()
            .filter(|s| s.end > range.start && s.start < range.end)
        {
            if span.start > at {
                gaps.push(at..span.start);
            }
            at = at.max(span.end);
        }
        if at < range.end {
            gaps.push(at..range.end);
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{Activation, Op};
    use crate::plan::{DType, StepRecord, TensorRecord};
    use crate::shape::Shape;

    fn arena_tensor(offset: u32, len: usize) -> TensorRecord {
        TensorRecord::new(
            Storage::Arena,
            DType::F32,
            offset,
            &Shape::new(&[len]).unwrap(),
        )
    }

    fn relu(input: u32, output: u32) -> StepRecord {
        Op::Unary(Activation::Relu).to_record(&[input], output)
    }

    fn plan_of<'a>(
        tensors: &'a [TensorRecord],
        steps: &'a [StepRecord],
        arena_bytes: usize,
    ) -> Plan<'a> {
        Plan {
            tensors,
            steps,
            names: &[],
            weights: &[],
            arena_bytes,
        }
    }

    #[test]
    fn a_chain_copies_its_input_in_and_its_last_output_out() {
        // in [0, 64) -> a [64, 128) -> out [128, 192)
        let tensors = [
            arena_tensor(0, 16),
            arena_tensor(64, 16),
            arena_tensor(128, 16),
        ];
        let steps = [relu(0, 1), relu(1, 2)];
        let t = TransferPlan::for_plan(&plan_of(&tensors, &steps, 192));
        assert_eq!(t.inputs, vec![0..64]);
        // The intermediate survives too (nothing overwrites it); touching spans merge.
        assert_eq!(t.outputs, vec![64..192]);
        assert_eq!(t.bytes_per_frame(), 64 + 128);
    }

    #[test]
    fn a_reused_buffer_is_copied_out_only_with_its_final_value() {
        // in [0, 64) -> a [64, 128) -> b [0, 64) (reuses the input's memory) -> c [64, 128)
        let tensors = [
            arena_tensor(0, 16),
            arena_tensor(64, 16),
            arena_tensor(0, 16),
            arena_tensor(64, 16),
        ];
        let steps = [relu(0, 1), relu(1, 2), relu(2, 3)];
        let t = TransferPlan::for_plan(&plan_of(&tensors, &steps, 128));
        assert_eq!(t.inputs, vec![0..64]);
        assert_eq!(t.outputs, vec![0..128]);
    }

    #[test]
    fn an_alias_of_a_written_tensor_is_not_an_input() {
        // in [0, 64) -> a [64, 128); a reshaped alias of `a` (same bytes) -> out [128, 192)
        let tensors = [
            arena_tensor(0, 16),
            arena_tensor(64, 16),
            TensorRecord::new(
                Storage::Arena,
                DType::F32,
                64,
                &Shape::new(&[4, 4]).unwrap(),
            ),
            TensorRecord::new(
                Storage::Arena,
                DType::F32,
                128,
                &Shape::new(&[4, 4]).unwrap(),
            ),
        ];
        let steps = [relu(0, 1), relu(2, 3)];
        let t = TransferPlan::for_plan(&plan_of(&tensors, &steps, 192));
        assert_eq!(t.inputs, vec![0..64]);
    }

    #[test]
    fn weights_never_cross_the_bus_per_frame() {
        let weights = [0u8; 64];
        let tensors = [
            arena_tensor(0, 16),
            TensorRecord::new(Storage::Weights, DType::F32, 0, &Shape::new(&[16]).unwrap()),
            arena_tensor(64, 16),
        ];
        let steps = [Op::Binary(crate::op::BinaryKind::Add).to_record(&[0, 1], 2)];
        let mut plan = plan_of(&tensors, &steps, 128);
        plan.weights = &weights;
        let t = TransferPlan::for_plan(&plan);
        assert_eq!(t.inputs, vec![0..64]);
        assert_eq!(t.outputs, vec![64..128]);
    }

    #[test]
    fn spans_merge_and_report_gaps() {
        let mut s = Spans::default();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(20..25);
        s.insert(0..0);
        assert_eq!(s.0, vec![10..25, 30..40]);
        assert_eq!(s.complement_within(0..50), vec![0..10, 25..30, 40..50]);
        assert_eq!(s.complement_within(12..22), Vec::<Range<usize>>::new());
        s.insert(5..35);
        assert_eq!(s.0, vec![5..40]);
    }
}
