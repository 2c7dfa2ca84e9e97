//! The pillar grid, and a sweep into the PFN input ([`pillarise`]) and the PFN's
//! features onto the BEV grid ([`scatter`]).

use core::fmt;

/// Features per point in the PFN input: `x, y, z, intensity`, offsets from the
/// pillar's mean point (3), offsets from the pillar's cell centre (2).
pub const PILLAR_FEATURES: usize = 9;

/// The pillar grid: what is in range, how it is cut into cells, and the PFN input's
/// capacities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PillarGrid {
    /// `[min, max)` of x in metres.
    pub x_range: [f32; 2],
    /// `[min, max)` of y in metres.
    pub y_range: [f32; 2],
    /// `[min, max)` of z in metres.
    pub z_range: [f32; 2],
    /// Cell side in metres (cells are square).
    pub voxel: f32,
    /// Cells along x (columns).
    pub nx: usize,
    /// Cells along y (rows).
    pub ny: usize,
    /// Pillars in the PFN input (`P`).
    pub max_pillars: usize,
    /// Point slots per pillar (`N`).
    pub max_points: usize,
}

/// The grid the bundled PointPillars models were built for (`lidar/anchors.json`).
pub const POINTPILLARS_GRID: PillarGrid = PillarGrid {
    x_range: [-51.2, 51.2],
    y_range: [-51.2, 51.2],
    z_range: [-5.0, 3.0],
    voxel: 0.4,
    nx: 256,
    ny: 256,
    max_pillars: 12_000,
    max_points: 32,
};

/// A [`CellIndex`] entry packs the pillar number + 1 (0 = no pillar yet) in the low
/// bits and the pillar's kept point count in the top byte.
const PILLAR_BITS: u32 = 24;
const PILLAR_MASK: u32 = (1 << PILLAR_BITS) - 1;

impl PillarGrid {
    /// Cells in the grid (`nx · ny`): the size of the [`CellIndex`] table and of one
    /// BEV channel.
    pub const fn cells(&self) -> usize {
        self.nx * self.ny
    }

    /// Floats in the PFN input `[1, P, N, 9]`.
    pub const fn pillar_tensor_len(&self) -> usize {
        self.max_pillars * self.max_points * PILLAR_FEATURES
    }

    /// Integers in the coordinates array `[P, 2]`.
    pub const fn coords_len(&self) -> usize {
        self.max_pillars * 2
    }

    /// Cell centre offsets: `x_min + voxel/2` and `y_min + voxel/2`, in `f32` (−51.0
    /// for the bundled grid, as in the reference).
    fn centre_offsets(&self) -> [f32; 2] {
        [
            self.x_range[0] + self.voxel * 0.5,
            self.y_range[0] + self.voxel * 0.5,
        ]
    }

    /// Checks that the grid is usable: ordered finite ranges, cell counts that cover
    /// the ranges, and capacities that fit the [`CellIndex`] packing.
    pub fn validate(&self) -> Result<(), LidarError> {
        let bad = |reason| Err(LidarError::InvalidGrid { reason });
        let ordered = |r: [f32; 2]| r[0].is_finite() && r[1].is_finite() && r[0] < r[1];
        if !(ordered(self.x_range) && ordered(self.y_range) && ordered(self.z_range)) {
            return bad("every range must be finite with min < max");
        }
        if !(self.voxel.is_finite() && self.voxel > 0.0) {
            return bad("the voxel size must be positive");
        }
        let covers = |range: [f32; 2], n: usize| {
            let cells = (range[1] - range[0]) / self.voxel + 0.5;
            cells >= 1.0 && cells as usize == n
        };
        if !covers(self.x_range, self.nx) || !covers(self.y_range, self.ny) {
            return bad("nx and ny must equal the x and y extents divided by the voxel size");
        }
        if self.cells() > i32::MAX as usize {
            return bad("nx * ny must fit in an i32");
        }
        if self.max_pillars == 0 || self.max_pillars >= PILLAR_MASK as usize {
            return bad("max_pillars must be between 1 and 2^24 - 2");
        }
        if self.max_points == 0 || self.max_points > 255 {
            return bad("max_points must be between 1 and 255");
        }
        Ok(())
    }
}

/// Why a lidar frame cannot be pre-processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LidarError {
    /// A caller-provided buffer has the wrong length for the grid.
    BufferSize {
        /// Which buffer.
        buffer: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// The grid configuration is inconsistent.
    InvalidGrid {
        /// What is wrong.
        reason: &'static str,
    },
    /// A coordinates row handed to [`scatter`] lies outside the grid.
    CoordOutOfGrid {
        /// The pillar.
        pillar: usize,
        /// Its row.
        row: i32,
        /// Its column.
        col: i32,
    },
}

impl fmt::Display for LidarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferSize {
                buffer,
                expected,
                got,
            } => write!(
                f,
                "{buffer} holds {got} elements, the pillar grid needs {expected}: \
                 size it from the same PillarGrid"
            ),
            Self::InvalidGrid { reason } => write!(f, "invalid pillar grid: {reason}"),
            Self::CoordOutOfGrid { pillar, row, col } => write!(
                f,
                "pillar {pillar} has coordinates (row {row}, col {col}) outside the grid: \
                 pass the coordinates pillarise wrote for the same grid"
            ),
        }
    }
}

/// The key → pillar table [`pillarise`] uses instead of a hash map: one `u32` per grid
/// cell ([`PillarGrid::cells`], 65,536 for the bundled grid, so 256 KB: give it a
/// `static` on firmware).
///
/// It is all zeros between frames: [`CellIndex::new`] zeroes it once, and
/// [`pillarise`] clears exactly the cells it set (their keys are in the coordinates it
/// writes), so per-frame cost follows the number of pillars, not the grid size.
pub struct CellIndex<'a> {
    slots: &'a mut [u32],
}

impl<'a> CellIndex<'a> {
    /// Takes the table's storage and zeroes it.
    pub fn new(slots: &'a mut [u32]) -> Self {
        slots.fill(0);
        Self { slots }
    }
}

/// What [`pillarise`] did with a sweep's points. Every point is counted exactly once
/// in `points_kept`, `points_out_of_range`, `points_non_finite`, `dropped_pillar_full`
/// or `dropped_too_many_pillars`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PillarStats {
    /// Finite points inside the grid's x, y and z ranges.
    pub points_in_range: usize,
    /// Points written to the PFN input.
    pub points_kept: usize,
    /// Finite points outside the ranges.
    pub points_out_of_range: usize,
    /// Points with a NaN or infinite coordinate or intensity: dropped.
    pub points_non_finite: usize,
    /// In-range points dropped because their pillar already held `max_points`.
    pub dropped_pillar_full: usize,
    /// In-range points dropped because their cell had no pillar and `max_pillars` were
    /// already open (the oversize-input policy: a dense scene keeps the pillars that
    /// appear first in the sweep, and the count tells the caller how much was lost).
    pub dropped_too_many_pillars: usize,
    /// Pillars used.
    pub pillars: usize,
    /// Most points kept in one pillar.
    pub max_points_in_pillar: usize,
}

/// Builds the PFN input from a sweep.
///
/// - `points`: `[x, y, z, intensity]` per point (metres; the layout of the float32
///   `[N, 4]` sweeps), in sensor order (the order decides which points are kept);
/// - `cells`: the lookup table, `grid.cells()` entries, all zero (left all zero);
/// - `out_pillars`: the PFN input `[1, P, N, 9]`, fully overwritten (unused slots and
///   pillars are zero);
/// - `out_coords`: `[P, 2]` `(row, col)` per pillar, `(-1, -1)` for unused pillars.
///
/// Points are dropped, never an error: out of range, non-finite (the reference would
/// pass a NaN intensity through to the network; here it is dropped and counted), in a
/// full pillar, or in a new cell once all pillars are open. See [`PillarStats`].
pub fn pillarise(
    points: &[[f32; 4]],
    grid: &PillarGrid,
    cells: &mut CellIndex<'_>,
    out_pillars: &mut [f32],
    out_coords: &mut [i32],
) -> Result<PillarStats, LidarError> {
    grid.validate()?;
    check_len("cell index table", grid.cells(), cells.slots.len())?;
    check_len("pillar tensor", grid.pillar_tensor_len(), out_pillars.len())?;
    check_len("pillar coordinates", grid.coords_len(), out_coords.len())?;

    let slots = &mut *cells.slots;
    let slot_len = PILLAR_FEATURES;
    let pillar_len = grid.max_points * slot_len;
    let [x_min, x_max] = grid.x_range;
    let [y_min, y_max] = grid.y_range;
    let [z_min, z_max] = grid.z_range;
    let mut stats = PillarStats::default();

    // Pass 1: assign points to pillars, copy the raw values into their slots.
    for point in points {
        let [x, y, z, intensity] = *point;
        if !(x.is_finite() && y.is_finite() && z.is_finite() && intensity.is_finite()) {
            stats.points_non_finite += 1;
            continue;
        }
        if !(x >= x_min && x < x_max && y >= y_min && y < y_max && z >= z_min && z < z_max) {
            stats.points_out_of_range += 1;
            continue;
        }
        stats.points_in_range += 1;
        // Non-negative here, so truncation is the reference's floor.
        let ix = (((x - x_min) / grid.voxel) as usize).min(grid.nx - 1);
        let iy = (((y - y_min) / grid.voxel) as usize).min(grid.ny - 1);
        let key = iy * grid.nx + ix;
        let entry = slots[key];
        let (pillar, count) = if entry == 0 {
            if stats.pillars == grid.max_pillars {
                stats.dropped_too_many_pillars += 1;
                continue;
            }
            let pillar = stats.pillars;
            stats.pillars += 1;
            // Fits: validate() bounds nx·ny by i32::MAX.
            out_coords[2 * pillar] = iy as i32;
            out_coords[2 * pillar + 1] = ix as i32;
            (pillar, 0)
        } else {
            (
                ((entry & PILLAR_MASK) - 1) as usize,
                (entry >> PILLAR_BITS) as usize,
            )
        };
        if count == grid.max_points {
            stats.dropped_pillar_full += 1;
            continue;
        }
        let at = pillar * pillar_len + count * slot_len;
        out_pillars[at..at + 4].copy_from_slice(point);
        // validate() bounds the pillar number below 2^24 - 1 and the count by 255.
        slots[key] = (pillar as u32 + 1) | ((count as u32 + 1) << PILLAR_BITS);
        stats.points_kept += 1;
    }

    // Pass 2: derived features, zero padding, and clearing the used cells.
    let [cx0, cy0] = grid.centre_offsets();
    for pillar in 0..stats.pillars {
        let (row, col) = (
            out_coords[2 * pillar] as usize,
            out_coords[2 * pillar + 1] as usize,
        );
        let key = row * grid.nx + col;
        let count = (slots[key] >> PILLAR_BITS) as usize;
        slots[key] = 0;
        stats.max_points_in_pillar = stats.max_points_in_pillar.max(count);

        let block = &mut out_pillars[pillar * pillar_len..(pillar + 1) * pillar_len];
        let (kept, padding) = block.split_at_mut(count * slot_len);
        // Mean of the kept points, summed sequentially in slot order from 0 in f32.
        let mut sum = [0.0f32; 3];
        for slot in kept.chunks_exact(slot_len) {
            for c in 0..3 {
                sum[c] += slot[c];
            }
        }
        let n = count as f32;
        let mean = sum.map(|s| s / n);
        let cx = col as f32 * grid.voxel + cx0;
        let cy = row as f32 * grid.voxel + cy0;
        for slot in kept.chunks_exact_mut(slot_len) {
            slot[4] = slot[0] - mean[0];
            slot[5] = slot[1] - mean[1];
            slot[6] = slot[2] - mean[2];
            slot[7] = slot[0] - cx;
            slot[8] = slot[1] - cy;
        }
        padding.fill(0.0);
    }
    out_pillars[stats.pillars * pillar_len..].fill(0.0);
    out_coords[stats.pillars * 2..].fill(-1);
    Ok(stats)
}

fn check_len(buffer: &'static str, expected: usize, got: usize) -> Result<(), LidarError> {
    if expected == got {
        Ok(())
    } else {
        Err(LidarError::BufferSize {
            buffer,
            expected,
            got,
        })
    }
}

/// Scatters the PFN output onto the backbone's BEV input.
///
/// `pillar_features` is `[C, P]` (the PFN's `[1, C, P, 1]`, flat); `coords` is what
/// [`pillarise`] wrote (`[P, 2]`, rows of `-1` skipped); `out_bev` is `[C, ny, nx]`,
/// cleared, then `bev[c, row, col] = features[c, p]` for every used pillar `p`.
pub fn scatter(
    grid: &PillarGrid,
    pillar_features: &[f32],
    coords: &[i32],
    channels: usize,
    out_bev: &mut [f32],
) -> Result<(), LidarError> {
    let pillars = coords.len() / 2;
    check_len("pillar coordinates", pillars * 2, coords.len())?;
    check_len("pillar features", channels * pillars, pillar_features.len())?;
    check_len("BEV tensor", channels * grid.cells(), out_bev.len())?;
    let cell_of = |pillar: usize| -> Result<Option<usize>, LidarError> {
        let (row, col) = (coords[2 * pillar], coords[2 * pillar + 1]);
        if row < 0 && col < 0 {
            return Ok(None);
        }
        match (usize::try_from(row), usize::try_from(col)) {
            (Ok(r), Ok(c)) if r < grid.ny && c < grid.nx => Ok(Some(r * grid.nx + c)),
            _ => Err(LidarError::CoordOutOfGrid { pillar, row, col }),
        }
    };
    // Check every row before writing, so a bad input leaves the BEV untouched.
    for pillar in 0..pillars {
        cell_of(pillar)?;
    }
    out_bev.fill(0.0);
    for pillar in 0..pillars {
        if let Ok(Some(cell)) = cell_of(pillar) {
            for c in 0..channels {
                out_bev[c * grid.cells() + cell] = pillar_features[c * pillars + pillar];
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/lidar")
            .join(name)
    }

    fn read_npy<T: npyz::Deserialize>(name: &str) -> (std::vec::Vec<u64>, std::vec::Vec<T>) {
        let file = std::fs::File::open(data(name))
            .unwrap_or_else(|e| panic!("{name}: {e} (run models/generate.py)"));
        let npy = npyz::NpyFile::new(std::io::BufReader::new(file)).unwrap();
        let shape = npy.shape().to_vec();
        (shape, npy.into_vec().unwrap())
    }

    fn reference_pillars() -> std::vec::Vec<f32> {
        let mut npz = npyz::npz::NpzArchive::open(data("sweep_000_pillars.npz")).unwrap();
        let npy = npz
            .by_name("pillars")
            .unwrap()
            .expect("array `pillars` in the .npz");
        assert_eq!(npy.shape(), &[1, 12_000, 32, 9]);
        npy.into_vec().unwrap()
    }

    fn sweep(name: &str) -> std::vec::Vec<[f32; 4]> {
        let (shape, flat) = read_npy::<f32>(name);
        assert_eq!(shape[1], 4);
        flat.chunks_exact(4)
            .map(|p| [p[0], p[1], p[2], p[3]])
            .collect()
    }

    struct Buffers {
        table: std::vec::Vec<u32>,
        pillars: std::vec::Vec<f32>,
        coords: std::vec::Vec<i32>,
    }

    impl Buffers {
        fn new(grid: &PillarGrid) -> Self {
            Self {
                table: vec![0; grid.cells()],
                pillars: vec![f32::NAN; grid.pillar_tensor_len()],
                coords: vec![7; grid.coords_len()],
            }
        }
    }

    #[test]
    fn sweep_0_matches_the_numpy_reference_bit_for_bit() {
        let grid = POINTPILLARS_GRID;
        let points = sweep("sweep_000.npy");
        let mut b = Buffers::new(&grid);
        let mut cells = CellIndex::new(&mut b.table);
        // Run twice with a different sweep in between: stale state must not leak.
        for frame in ["sweep_000.npy", "sweep_001.npy", "sweep_000.npy"] {
            let stats = pillarise(
                &sweep(frame),
                &grid,
                &mut cells,
                &mut b.pillars,
                &mut b.coords,
            )
            .unwrap();
            if frame == "sweep_001.npy" {
                continue;
            }
            assert_eq!(stats.points_in_range, 34_641);
            assert_eq!(stats.pillars, 12_000);
            assert_eq!(stats.points_kept, 15_637);
            assert_eq!(stats.max_points_in_pillar, 32);
            assert!(stats.dropped_pillar_full > 0 && stats.dropped_too_many_pillars > 0);
            assert_eq!(
                stats.points_kept
                    + stats.points_out_of_range
                    + stats.points_non_finite
                    + stats.dropped_pillar_full
                    + stats.dropped_too_many_pillars,
                points.len()
            );
        }
        assert!(
            cells.slots.iter().all(|&e| e == 0),
            "the cell table is left clear"
        );

        let (shape, coords) = read_npy::<i32>("sweep_000_coords.npy");
        assert_eq!(shape, [12_000, 2]);
        assert_eq!(b.coords, coords);

        let reference = reference_pillars();
        assert_eq!(reference.len(), b.pillars.len());
        let mismatches = b
            .pillars
            .iter()
            .zip(&reference)
            .filter(|(a, r)| a.to_bits() != r.to_bits())
            .count();
        assert_eq!(
            mismatches, 0,
            "pillar floats differing from the reference (bitwise)"
        );
    }

    #[test]
    fn sparse_sweeps_pad_with_zeros_and_minus_one() {
        let grid = POINTPILLARS_GRID;
        let mut b = Buffers::new(&grid);
        let mut cells = CellIndex::new(&mut b.table);
        let points = [
            [0.1, 0.1, 0.0, 0.5],
            [0.3, 0.2, 1.0, 0.25],
            [f32::NAN, 0.0, 0.0, 0.0],
            [1.0, 1.0, 0.0, f32::INFINITY],
            [60.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 3.0, 0.0], // z max is exclusive
            [-51.2, -51.2, -5.0, 1.0],
        ];
        let stats = pillarise(&points, &grid, &mut cells, &mut b.pillars, &mut b.coords).unwrap();
        assert_eq!(
            stats,
            PillarStats {
                points_in_range: 3,
                points_kept: 3,
                points_out_of_range: 2,
                points_non_finite: 2,
                pillars: 2,
                max_points_in_pillar: 2,
                ..PillarStats::default()
            }
        );
        assert_eq!(&b.coords[..6], &[128, 128, 0, 0, -1, -1]);
        let p0 = &b.pillars[..2 * 9];
        let (mx, my, mz) = ((0.1f32 + 0.3) / 2.0, (0.1f32 + 0.2) / 2.0, 0.5f32);
        assert_eq!(p0[..4], [0.1, 0.1, 0.0, 0.5]);
        let centre = 128.0f32 * 0.4 + -51.0;
        assert_eq!(
            p0[4..9],
            [0.1 - mx, 0.1 - my, 0.0 - mz, 0.1 - centre, 0.1 - centre]
        );
        assert_eq!(p0[9 + 6], 1.0 - mz);
        let used = 2 * 32 * 9;
        assert!(b.pillars[2 * 9..32 * 9].iter().all(|&v| v == 0.0));
        assert!(b.pillars[32 * 9 + 9..used].iter().all(|&v| v == 0.0));
        assert!(b.pillars[used..].iter().all(|&v| v == 0.0));
        assert!(b.coords[4..].iter().all(|&v| v == -1));
    }

    #[test]
    fn capacities_drop_and_count() {
        let grid = PillarGrid {
            max_pillars: 2,
            max_points: 3,
            ..POINTPILLARS_GRID
        };
        let mut b = Buffers::new(&grid);
        let mut cells = CellIndex::new(&mut b.table);
        let mut points = std::vec::Vec::new();
        for i in 0..5 {
            points.push([0.1, 0.1, 0.0, i as f32]); // cell A: 3 kept, 2 dropped
        }
        points.push([10.1, 0.1, 0.0, 0.0]); // cell B
        points.push([20.1, 0.1, 0.0, 0.0]); // cell C: no pillar left
        points.push([10.2, 0.1, 0.0, 0.0]); // cell B again: kept
        let stats = pillarise(&points, &grid, &mut cells, &mut b.pillars, &mut b.coords).unwrap();
        assert_eq!(stats.points_kept, 5);
        assert_eq!(stats.dropped_pillar_full, 2);
        assert_eq!(stats.dropped_too_many_pillars, 1);
        assert_eq!(stats.pillars, 2);
        // Slot j holds the j-th kept point.
        assert_eq!(
            [b.pillars[3], b.pillars[9 + 3], b.pillars[18 + 3]],
            [0.0, 1.0, 2.0]
        );
    }

    #[test]
    fn bad_buffers_and_grids_are_refused() {
        let grid = POINTPILLARS_GRID;
        let mut b = Buffers::new(&grid);
        let mut short = vec![0u32; 10];
        let mut cells = CellIndex::new(&mut short);
        let err = pillarise(&[], &grid, &mut cells, &mut b.pillars, &mut b.coords).unwrap_err();
        assert_eq!(
            err,
            LidarError::BufferSize {
                buffer: "cell index table",
                expected: 65_536,
                got: 10
            }
        );
        assert!(
            err.to_string()
                .contains("cell index table holds 10 elements")
        );
        let mut cells = CellIndex::new(&mut b.table);
        assert!(matches!(
            pillarise(&[], &grid, &mut cells, &mut b.pillars[1..], &mut b.coords),
            Err(LidarError::BufferSize {
                buffer: "pillar tensor",
                ..
            })
        ));
        let wrong_nx = PillarGrid { nx: 200, ..grid };
        assert!(matches!(
            wrong_nx.validate(),
            Err(LidarError::InvalidGrid { .. })
        ));
        let too_many_points = PillarGrid {
            max_points: 256,
            ..grid
        };
        assert!(matches!(
            too_many_points.validate(),
            Err(LidarError::InvalidGrid { .. })
        ));
        assert_eq!(grid.validate(), Ok(()));
    }

    #[test]
    fn scatter_places_features_and_clears_the_rest() {
        let grid = PillarGrid {
            x_range: [0.0, 1.6],
            y_range: [0.0, 1.2],
            nx: 4,
            ny: 3,
            max_pillars: 3,
            ..POINTPILLARS_GRID
        };
        // C = 2, P = 3: [C, P]
        let features = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
        let coords = [2, 1, 0, 3, -1, -1];
        let mut bev = [9.0f32; 2 * 12];
        scatter(&grid, &features, &coords, 2, &mut bev).unwrap();
        let mut want = [0.0f32; 24];
        want[2 * 4 + 1] = 1.0;
        want[3] = 2.0;
        want[12 + 2 * 4 + 1] = 10.0;
        want[12 + 3] = 20.0;
        assert_eq!(bev, want);

        let bad = [2, 1, 3, 0, -1, -1];
        assert_eq!(
            scatter(&grid, &features, &bad, 2, &mut bev),
            Err(LidarError::CoordOutOfGrid {
                pillar: 1,
                row: 3,
                col: 0
            })
        );
        assert_eq!(bev, want, "a refused input leaves the BEV as it was");
        assert!(matches!(
            scatter(&grid, &features[1..], &coords, 2, &mut bev),
            Err(LidarError::BufferSize {
                buffer: "pillar features",
                ..
            })
        ));
    }
}
