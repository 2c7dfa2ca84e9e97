//! Fixed-capacity tensor shapes: every shape in a plan fits in [`MAX_RANK`] dims, so
//! shape arithmetic never touches the heap.

use core::fmt;

/// Highest tensor rank a plan may use. Camera and lidar models need at most 5
/// (ShuffleNet's channel shuffle); one spare keeps reshapes of those legal.
pub const MAX_RANK: usize = 6;

/// A tensor shape of at most [`MAX_RANK`] dimensions, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    rank: usize,
    dims: [usize; MAX_RANK],
}

impl Shape {
    /// A shape from its dims, or `None` when there are more than [`MAX_RANK`].
    pub fn new(dims: &[usize]) -> Option<Self> {
        if dims.len() > MAX_RANK {
            return None;
        }
        let mut all = [1; MAX_RANK];
        all[..dims.len()].copy_from_slice(dims);
        Some(Self {
            rank: dims.len(),
            dims: all,
        })
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The dims, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// Dim `axis`, or 1 past the rank (handy for broadcasting).
    pub fn dim(&self, axis: usize) -> usize {
        if axis < self.rank { self.dims[axis] } else { 1 }
    }

    /// Element count, or `None` if it overflows `usize` (possible on 32-bit targets
    /// with a corrupted plan).
    pub fn checked_volume(&self) -> Option<usize> {
        self.dims()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Element count of a shape already known not to overflow.
    pub fn volume(&self) -> usize {
        self.dims().iter().product()
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> [usize; MAX_RANK] {
        let mut strides = [0; MAX_RANK];
        let mut acc = 1;
        for axis in (0..self.rank).rev() {
            strides[axis] = acc;
            acc *= self.dims[axis];
        }
        strides
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// The shape that two shapes broadcast to under NumPy/ONNX rules (aligned at the
/// innermost dim), or `None` when they do not broadcast.
pub fn broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
    let rank = a.rank().max(b.rank());
    let mut dims = [1; MAX_RANK];
    for (i, slot) in dims[..rank].iter_mut().enumerate() {
        let da = dim_from_end(a, rank - 1 - i);
        let db = dim_from_end(b, rank - 1 - i);
        *slot = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Shape::new(&dims[..rank])
}

fn dim_from_end(s: &Shape, from_end: usize) -> usize {
    if from_end < s.rank() {
        s.dims()[s.rank() - 1 - from_end]
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let a = Shape::new(&[2, 3, 4]).unwrap();
        let b = Shape::new(&[3, 1]).unwrap();
        assert_eq!(broadcast(&a, &b).unwrap().dims(), &[2, 3, 4]);
        let c = Shape::new(&[2]).unwrap();
        assert!(broadcast(&a, &c).is_none());
    }

    #[test]
    fn strides_are_row_major() {
        let s = Shape::new(&[2, 3, 4]).unwrap();
        assert_eq!(&s.strides()[..3], &[12, 4, 1]);
        assert_eq!(s.volume(), 24);
    }

    #[test]
    fn too_many_dims_is_refused() {
        assert!(Shape::new(&[1; MAX_RANK + 1]).is_none());
    }
}
