//! The memory planner: one arena, buffers placed by lifetime.
//!
//! Every buffer (a model input, a computed value, a step's scratch) is live from the
//! step that first writes it to the last step that reads it (model inputs from the
//! start, model outputs to the end). Two buffers may share bytes when their lifetimes
//! do not overlap. Placement is greedy, as in TFLite Micro's planner: buffers in a
//! chosen order, each at the lowest aligned offset that clashes with no placed buffer
//! live at the same time. Three orders are tried (largest first, longest-lived first,
//! earliest first) and the smallest arena wins.
//!
//! The lower bound printed beside the arena is the largest sum of live (aligned) bytes
//! at any one step: no placement can beat it.

/// A buffer to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Bytes (any size; rounded up to the alignment when placed).
    pub size: usize,
    /// First step at which it is live.
    pub first: usize,
    /// Last step at which it is live (inclusive).
    pub last: usize,
}

/// Where each buffer went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Offset of each buffer, in input order.
    pub offsets: Vec<usize>,
    /// Total arena bytes.
    pub arena_bytes: usize,
    /// The liveness lower bound.
    pub lower_bound_bytes: usize,
}

fn round_up(x: usize, align: usize) -> usize {
    x.div_ceil(align) * align
}

/// A sort key deciding the order buffers are placed in.
type OrderKey = fn(&Buffer) -> (usize, usize);

/// Places `buffers` in one arena with every offset a multiple of `align`.
pub fn place(buffers: &[Buffer], align: usize) -> Placement {
    let orders: [OrderKey; 3] = [
        |b| (usize::MAX - b.size, b.first),
        |b| (usize::MAX - (b.last - b.first), usize::MAX - b.size),
        |b| (b.first, usize::MAX - b.size),
    ];
    let best = orders
        .iter()
        .map(|key| place_in_order(buffers, align, *key))
        .min_by_key(|(_, size)| *size)
        .unwrap_or_default();
    Placement {
        offsets: best.0,
        arena_bytes: best.1,
        lower_bound_bytes: lower_bound(buffers, align),
    }
}

fn place_in_order(
    buffers: &[Buffer],
    align: usize,
    key: fn(&Buffer) -> (usize, usize),
) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (key(&buffers[i]), i));
    let mut offsets = vec![0; buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    let mut arena = 0;
    for i in order {
        let b = &buffers[i];
        let size = round_up(b.size, align);
        let mut clashes: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].first <= b.last && b.first <= buffers[j].last)
            .map(|&j| (offsets[j], offsets[j] + round_up(buffers[j].size, align)))
            .collect();
        clashes.sort_unstable();
        let mut offset = 0;
        for (start, end) in clashes {
            if offset + size <= start {
                break;
            }
            offset = offset.max(end);
        }
        offsets[i] = offset;
        arena = arena.max(offset + size);
        placed.push(i);
    }
    (offsets, arena)
}

fn lower_bound(buffers: &[Buffer], align: usize) -> usize {
    let steps = buffers.iter().map(|b| b.last + 1).max().unwrap_or(0);
    let mut live = vec![0usize; steps];
    for b in buffers {
        for slot in &mut live[b.first..=b.last] {
            *slot += round_up(b.size, align);
        }
    }
    live.into_iter().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn buf(size: usize, first: usize, last: usize) -> Buffer {
        Buffer { size, first, last }
    }

    #[test]
    fn a_chain_ping_pongs_between_two_buffers() {
        let chain: Vec<Buffer> = (0..6).map(|i| buf(1000, i, i + 1)).collect();
        let p = place(&chain, 64);
        assert_eq!(p.lower_bound_bytes, 2 * 1024);
        assert_eq!(p.arena_bytes, p.lower_bound_bytes);
    }

    #[test]
    fn a_skip_connection_keeps_its_buffer() {
        let bufs = vec![buf(64, 0, 3), buf(64, 1, 1), buf(64, 2, 2), buf(64, 3, 3)];
        let p = place(&bufs, 64);
        assert_eq!(p.lower_bound_bytes, 128);
        assert_eq!(p.arena_bytes, 128);
    }

    proptest! {
        #[test]
        fn live_buffers_never_share_bytes(
            spec in prop::collection::vec((1usize..5000, 0usize..20, 0usize..6), 1..40)
        ) {
            let bufs: Vec<Buffer> = spec.iter().map(|&(s, f, len)| buf(s, f, f + len)).collect();
            let p = place(&bufs, 64);
            prop_assert!(p.arena_bytes >= p.lower_bound_bytes);
            for i in 0..bufs.len() {
                prop_assert_eq!(p.offsets[i] % 64, 0);
                for j in 0..i {
                    let time = bufs[i].first <= bufs[j].last && bufs[j].first <= bufs[i].last;
                    let space = p.offsets[i] < p.offsets[j] + bufs[j].size
                        && p.offsets[j] < p.offsets[i] + bufs[i].size;
                    prop_assert!(!(time && space), "buffers {} and {} overlap", i, j);
                }
            }
        }
    }
}
