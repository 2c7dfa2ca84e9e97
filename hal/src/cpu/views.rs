//! Splitting the arena into one step's output, scratch and input views without
//! `unsafe`: the two mutable regions are cut out with `split_at_mut`, and every input
//! is then found whole in one of the shared pieces left between them.

use core::ops::Range;

use crate::plan::MAX_STEP_INPUTS;

/// Where a step input lives, in `f32` elements.
#[derive(Clone, Debug, Default)]
pub enum Source {
    /// Unbound slot.
    #[default]
    None,
    /// In the arena.
    Arena(Range<usize>),
    /// In the weights section.
    Weights(Range<usize>),
}

/// One step's buffers.
pub struct StepIo<'a> {
    /// The output tensor.
    pub out: &'a mut [f32],
    /// The scratch region (empty when the op needs none).
    pub scratch: &'a mut [f32],
    /// Input tensors; unbound slots are empty.
    pub inputs: [&'a [f32]; MAX_STEP_INPUTS],
}

/// Carves `arena` into the step's views. Regions must satisfy the plan's validation
/// (output and scratch disjoint from each other and from arena inputs).
pub fn carve<'a>(
    arena: &'a mut [f32],
    weights: &'a [f32],
    out: Range<usize>,
    scratch: Range<usize>,
    inputs: &[Source; MAX_STEP_INPUTS],
) -> StepIo<'a> {
    let scratch_first = !scratch.is_empty() && scratch.start < out.start;
    let (first, second) = if scratch_first {
        (scratch.clone(), out.clone())
    } else {
        (out.clone(), scratch.clone())
    };
    let second = if second.is_empty() {
        first.end..first.end
    } else {
        second
    };

    let (before, rest) = arena.split_at_mut(first.start);
    let (first_view, rest) = rest.split_at_mut(first.end - first.start);
    let (between, rest) = rest.split_at_mut(second.start - first.end);
    let (second_view, after) = rest.split_at_mut(second.end - second.start);

    let pieces: [(usize, &'a [f32]); 3] = [(0, before), (first.end, between), (second.end, after)];
    let mut views: [&'a [f32]; MAX_STEP_INPUTS] = [&[]; MAX_STEP_INPUTS];
    for (view, source) in views.iter_mut().zip(inputs) {
        *view = match source {
            Source::None => &[],
            Source::Weights(r) => &weights[r.clone()],
            Source::Arena(r) => pieces
                .iter()
                .find(|(start, piece)| r.start >= *start && r.end <= start + piece.len())
                .map_or(&[][..], |(start, piece)| {
                    &piece[r.start - start..r.end - start]
                }),
        };
    }
    let (out_view, scratch_view) = if scratch_first {
        (second_view, first_view)
    } else {
        (first_view, second_view)
    };
    StepIo {
        out: out_view,
        scratch: scratch_view,
        inputs: views,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_come_from_either_side_of_the_output() {
        let mut arena: [f32; 10] = core::array::from_fn(|i| i as f32);
        let weights = [100.0, 101.0];
        let io = carve(
            &mut arena,
            &weights,
            4..6,
            8..9,
            &[
                Source::Arena(0..2),
                Source::Arena(6..8),
                Source::Weights(1..2),
            ],
        );
        assert_eq!(io.inputs[0], &[0.0, 1.0]);
        assert_eq!(io.inputs[1], &[6.0, 7.0]);
        assert_eq!(io.inputs[2], &[101.0]);
        assert_eq!(io.out, &[4.0, 5.0]);
        assert_eq!(io.scratch, &[8.0]);
    }

    #[test]
    fn scratch_before_output_works() {
        let mut arena = [0.0f32; 8];
        let io = carve(
            &mut arena,
            &[],
            6..8,
            0..3,
            &[Source::Arena(3..6), Source::None, Source::None],
        );
        assert_eq!(io.out.len(), 2);
        assert_eq!(io.scratch.len(), 3);
        assert_eq!(io.inputs[0].len(), 3);
    }
}
