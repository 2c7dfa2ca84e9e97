//! Score threshold, top-k and class-wise non-maximum suppression, shared by the camera
//! ([`crate::ssd`]) and lidar ([`crate::lidar`]) post-processing.
//!
//! A decoder walks the head outputs, skips scores under the class's threshold (before
//! decoding, which costs an `exp`), decodes the rest and [`TopK::offer`]s them. The
//! [`TopK`] keeps the `N` best candidates sorted by score, counting what it drops. Then
//! [`nms`] keeps a candidate unless an already kept one of the same class overlaps it
//! by more than the IoU threshold, and writes the survivors, best first, into a
//! `heapless::Vec<_, K>`; survivors beyond `K` are counted, not lost silently.
//!
//! Ties are broken by offer order (the anchor order of the head), so results are the
//! same on every target. Nothing allocates: both capacities are const generics.

use core::fmt;

use heapless::Vec;

use crate::ObjectClass;

/// A decoded box that can take part in top-k and NMS.
pub trait Candidate: Copy {
    /// Confidence in `[0, 1]`; higher is better.
    fn score(&self) -> f32;
    /// What was detected; NMS only compares boxes of the same class.
    fn class(&self) -> ObjectClass;
    /// Whether every coordinate is finite. A NaN or infinite box (a backend fault or
    /// an exploding `exp`) is counted in [`PostStats::non_finite`] and never kept.
    fn is_finite(&self) -> bool;
}

/// Thresholds for turning head outputs into detections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PostConfig {
    /// Minimum score per class ([`ObjectClass::index`] order), in `[0, 1]`.
    pub score_threshold: [f32; ObjectClass::COUNT],
    /// A candidate is suppressed when its IoU with a kept box of the same class is
    /// strictly greater than this, in `[0, 1]` (1 disables suppression).
    pub iou_threshold: f32,
}

impl PostConfig {
    /// Checks that every threshold lies in `[0, 1]` (a NaN threshold would silently
    /// reject or keep everything).
    pub fn validate(&self) -> Result<(), PostError> {
        for class in ObjectClass::ALL {
            let value = self.score_threshold[class.index()];
            if !(0.0..=1.0).contains(&value) {
                return Err(PostError::ScoreThreshold { class, value });
            }
        }
        if !(0.0..=1.0).contains(&self.iou_threshold) {
            return Err(PostError::IouThreshold(self.iou_threshold));
        }
        Ok(())
    }

    /// Whether `score` reaches `class`'s threshold (false for a NaN score).
    #[inline]
    pub fn passes(&self, class: ObjectClass, score: f32) -> bool {
        score >= self.score_threshold[class.index()]
    }
}

/// Why head outputs cannot be post-processed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PostError {
    /// A head output does not have the size the model's spec gives it.
    OutputSize {
        /// Which output.
        output: &'static str,
        /// Floats expected.
        expected: usize,
        /// Floats given.
        got: usize,
    },
    /// A score threshold is outside `[0, 1]` or NaN.
    ScoreThreshold {
        /// The class it belongs to.
        class: ObjectClass,
        /// The value given.
        value: f32,
    },
    /// The IoU threshold is outside `[0, 1]` or NaN.
    IouThreshold(f32),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutputSize {
                output,
                expected,
                got,
            } => write!(
                f,
                "head output `{output}` holds {got} floats, the model spec needs {expected}: \
                 is the package the one this post-processing is for?"
            ),
            Self::ScoreThreshold { class, value } => write!(
                f,
                "score threshold for {class} is {value}, it must lie in [0, 1]"
            ),
            Self::IouThreshold(value) => {
                write!(f, "NMS IoU threshold is {value}, it must lie in [0, 1]")
            }
        }
    }
}

/// What happened to the candidates of one frame. Every score that reached its
/// threshold ends in exactly one of `topk_dropped`, `suppressed`, `overflow`,
/// `non_finite` or the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostStats {
    /// Finite candidates that reached their class's score threshold.
    pub candidates: usize,
    /// NaN scores, and candidates whose decoded box was not finite.
    pub non_finite: usize,
    /// Candidates pushed out of the top-k buffer by better ones.
    pub topk_dropped: usize,
    /// Candidates removed by NMS.
    pub suppressed: usize,
    /// Survivors of NMS that did not fit in the output (its capacity is too small).
    pub overflow: usize,
}

/// The `N` best candidates offered so far, best first, and the frame's counters.
pub struct TopK<T, const N: usize> {
    items: Vec<T, N>,
    stats: PostStats,
}

impl<T: Candidate, const N: usize> Default for TopK<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Candidate, const N: usize> TopK<T, N> {
    /// An empty buffer. `const`, so it can live in a `static`.
    pub const fn new() -> Self {
        Self {
            items: Vec::new(),
            stats: PostStats {
                candidates: 0,
                non_finite: 0,
                topk_dropped: 0,
                suppressed: 0,
                overflow: 0,
            },
        }
    }

    /// Empties the buffer and zeroes the counters, for a new frame.
    pub fn clear(&mut self) {
        self.items.clear();
        self.stats = PostStats::default();
    }

    /// Offers a candidate that reached its score threshold. It is kept if it is
    /// finite and among the `N` best so far; an equal score ranks after the earlier
    /// offer. O(log N) to find its place, O(N) to shift; once the buffer is full, a
    /// candidate no better than the worst is rejected in O(1).
    pub fn offer(&mut self, candidate: T) {
        if !candidate.is_finite() {
            self.stats.non_finite += 1;
            return;
        }
        self.stats.candidates += 1;
        let score = candidate.score();
        if self.items.is_full() && self.items.last().is_none_or(|worst| worst.score() >= score) {
            self.stats.topk_dropped += 1;
            return;
        }
        let at = self.items.partition_point(|kept| kept.score() >= score);
        if self.items.is_full() {
            self.items.pop();
            self.stats.topk_dropped += 1;
        }
        // Cannot fail: there is room now. Counted rather than unwrapped all the same.
        if self.items.insert(at, candidate).is_err() {
            self.stats.topk_dropped += 1;
        }
    }

    /// Counts a score that was NaN (so it could not be compared with a threshold).
    pub fn count_non_finite_score(&mut self) {
        self.stats.non_finite += 1;
    }

    /// The kept candidates, best first.
    pub fn as_slice(&self) -> &[T] {
        &self.items
    }

    /// The counters so far (`suppressed` and `overflow` are filled in by [`nms`]).
    pub fn stats(&self) -> PostStats {
        self.stats
    }
}

/// Greedy class-wise non-maximum suppression over `candidates` (already best first),
/// into `out` (cleared first, best first). `iou` measures the overlap of two boxes;
/// a candidate is dropped when `iou(kept, candidate) > iou_threshold` for a kept box
/// of its class. Returns the frame's counters.
pub fn nms<T: Candidate, const N: usize, const K: usize>(
    candidates: &TopK<T, N>,
    iou_threshold: f32,
    iou: impl Fn(&T, &T) -> f32,
    out: &mut Vec<T, K>,
) -> PostStats {
    out.clear();
    let mut stats = candidates.stats;
    for candidate in candidates.as_slice() {
        let overlapped = out
            .iter()
            .any(|kept| kept.class() == candidate.class() && iou(kept, candidate) > iou_threshold);
        if overlapped {
            stats.suppressed += 1;
        } else if out.push(*candidate).is_err() {
            stats.overflow += 1;
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1-D "box" `[lo, hi)` is enough to exercise the bookkeeping.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Span {
        class: ObjectClass,
        score: f32,
        lo: f32,
        hi: f32,
    }

    impl Candidate for Span {
        fn score(&self) -> f32 {
            self.score
        }
        fn class(&self) -> ObjectClass {
            self.class
        }
        fn is_finite(&self) -> bool {
            self.lo.is_finite() && self.hi.is_finite()
        }
    }

    fn span(class: ObjectClass, score: f32, lo: f32) -> Span {
        Span {
            class,
            score,
            lo,
            hi: lo + 1.0,
        }
    }

    fn iou(a: &Span, b: &Span) -> f32 {
        let inter = (a.hi.min(b.hi) - a.lo.max(b.lo)).max(0.0);
        inter / ((a.hi - a.lo) + (b.hi - b.lo) - inter)
    }

    #[test]
    fn top_k_keeps_the_best_in_order_and_counts_the_rest() {
        let mut top = TopK::<Span, 3>::new();
        for (i, score) in [0.2, 0.9, 0.5, 0.9, 0.1, 0.7].into_iter().enumerate() {
            top.offer(span(ObjectClass::Car, score, i as f32 * 10.0));
        }
        let kept: std::vec::Vec<(f32, f32)> =
            top.as_slice().iter().map(|s| (s.score, s.lo)).collect();
        // Equal scores keep offer order.
        assert_eq!(kept, [(0.9, 10.0), (0.9, 30.0), (0.7, 50.0)]);
        assert_eq!(top.stats().candidates, 6);
        assert_eq!(top.stats().topk_dropped, 3);
        top.clear();
        assert!(top.as_slice().is_empty());
        assert_eq!(top.stats(), PostStats::default());
    }

    #[test]
    fn non_finite_candidates_are_counted_not_kept() {
        let mut top = TopK::<Span, 4>::new();
        top.offer(span(ObjectClass::Car, 0.5, f32::NAN));
        top.count_non_finite_score();
        top.offer(span(ObjectClass::Car, 0.4, 0.0));
        assert_eq!(top.as_slice().len(), 1);
        assert_eq!(top.stats().non_finite, 2);
        assert_eq!(top.stats().candidates, 1);
    }

    #[test]
    fn overlapping_boxes_of_one_class_are_suppressed_other_classes_kept() {
        let mut top = TopK::<Span, 8>::new();
        top.offer(span(ObjectClass::Car, 0.9, 0.0));
        top.offer(span(ObjectClass::Car, 0.8, 0.1)); // IoU 0.82 with the first: suppressed
        top.offer(span(ObjectClass::Pedestrian, 0.7, 0.1)); // same place, other class: kept
        top.offer(span(ObjectClass::Car, 0.6, 0.6)); // IoU 0.25: kept
        top.offer(span(ObjectClass::Car, 0.5, 5.0)); // far away: kept
        let mut out = Vec::<Span, 8>::new();
        let stats = nms(&top, 0.5, iou, &mut out);
        let kept: std::vec::Vec<f32> = out.iter().map(|s| s.score).collect();
        assert_eq!(kept, [0.9, 0.7, 0.6, 0.5]);
        assert_eq!(stats.suppressed, 1);
        assert_eq!(stats.overflow, 0);
        assert_eq!(stats.candidates, 5);
    }

    #[test]
    fn output_capacity_is_respected_and_overflow_counted() {
        let mut top = TopK::<Span, 8>::new();
        for (i, score) in [0.9, 0.8, 0.7, 0.6, 0.5, 0.4].into_iter().enumerate() {
            top.offer(span(ObjectClass::Cyclist, score, i as f32 * 3.0));
        }
        // A duplicate of the best: suppressed even though the output is full.
        top.offer(span(ObjectClass::Cyclist, 0.85, 0.0));
        let mut out = Vec::<Span, 2>::from_slice(&[span(ObjectClass::Car, 1.0, 99.0)]).unwrap();
        let stats = nms(&top, 0.5, iou, &mut out);
        assert_eq!(
            out.len(),
            2,
            "output is cleared first, then filled to capacity"
        );
        assert_eq!((out[0].score, out[1].score), (0.9, 0.8));
        assert_eq!(stats.suppressed, 1);
        assert_eq!(stats.overflow, 4);
    }

    #[test]
    fn thresholds_are_validated() {
        let ok = PostConfig {
            score_threshold: [0.5, 0.3, 0.3],
            iou_threshold: 0.5,
        };
        assert_eq!(ok.validate(), Ok(()));
        let nan = PostConfig {
            score_threshold: [0.5, f32::NAN, 0.3],
            ..ok
        };
        assert!(matches!(
            nan.validate(),
            Err(PostError::ScoreThreshold {
                class: ObjectClass::Pedestrian,
                ..
            })
        ));
        let iou = PostConfig {
            iou_threshold: 1.5,
            ..ok
        };
        assert_eq!(iou.validate(), Err(PostError::IouThreshold(1.5)));
        assert!(!ok.passes(ObjectClass::Car, f32::NAN));
        assert!(ok.passes(ObjectClass::Car, 0.5));
    }
}
