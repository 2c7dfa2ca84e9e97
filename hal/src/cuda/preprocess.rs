//! Host side of the GPU pre-processing kernels (`preprocess.cu`): camera resize and
//! normalise, lidar pillarise and scatter. Every argument is checked here before a
//! launch, because the kernels index without bounds checks.
//!
//! The argument structs mirror `cadence-models`' `RgbFrame`/`Normalisation` and
//! `PillarGrid` (the HAL cannot depend on the models crate: dependencies point the
//! other way), so a caller converts with a field-by-field copy.

use cudarc::driver::{
    CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};

use super::error::CudaError;
use super::launch::LaunchGeometry;

/// Entry points of `preprocess.cu`, in the order [`PreprocessKernels`] loads them.
pub const PREPROCESS_ENTRIES: [&str; 6] = [
    "cadence_camera_preprocess",
    "cadence_lidar_cells",
    "cadence_lidar_assign",
    "cadence_lidar_features",
    "cadence_fill_zero",
    "cadence_lidar_scatter",
];

/// Floats per lidar point in the input (`x, y, z, intensity`).
pub const POINT_FLOATS: usize = 4;
/// Features per point slot in the PFN input.
pub const PILLAR_FEATURES: usize = 9;
/// Counters `cadence_lidar_assign` writes (`PillarStats` order).
pub const LIDAR_STATS: usize = 8;

/// Why a pre-processing launch was refused or failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    /// A dimension is zero or a statistic is not finite or positive.
    #[error("bad {what}: {why}")]
    BadArgument {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A device buffer has the wrong length for the arguments.
    #[error("{buffer} holds {got} elements, the arguments need {expected}")]
    BufferSize {
        /// Which buffer.
        buffer: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// The launch itself failed.
    #[error(transparent)]
    Device(#[from] CudaError),
}

/// Camera resize and normalisation: `(v / 255 - mean[c]) / std[c]` after a half-pixel
/// bilinear resize, as `cadence_models::camera::preprocess`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraArgs {
    /// Source width in pixels.
    pub src_width: u32,
    /// Source height in pixels.
    pub src_height: u32,
    /// Model input width.
    pub dst_width: u32,
    /// Model input height.
    pub dst_height: u32,
    /// Per-channel mean on the `[0, 1]` scale (zeros for plain `v / 255`).
    pub mean: [f32; 3],
    /// Per-channel standard deviation (ones for plain `v / 255`).
    pub std: [f32; 3],
}

// SAFETY: `CameraArgs` is `#[repr(C)]` plain data (u32 and f32 only), laid out as
// `struct CameraArgs` in preprocess.cu; the kernel reads it by value.
unsafe impl DeviceRepr for CameraArgs {}

impl CameraArgs {
    /// Checks the arguments against the buffers' lengths (`pixels` bytes, `out`
    /// floats) and returns the launch grid.
    pub fn check(&self, pixels: usize, out: usize) -> Result<LaunchGeometry, PreprocessError> {
        let bad = |what, why| Err(PreprocessError::BadArgument { what, why });
        if self.src_width == 0 || self.src_height == 0 {
            return bad("camera frame", "it has no pixels");
        }
        if self.dst_width == 0 || self.dst_height == 0 {
            return bad("model input", "its width and height must be at least 1");
        }
        if !self.std.iter().all(|s| s.is_finite() && *s > 0.0)
            || !self.mean.iter().all(|m| m.is_finite())
        {
            return bad(
                "normalisation",
                "means must be finite and deviations positive",
            );
        }
        let src = self.src_width as usize * self.src_height as usize;
        let dst = self.dst_width as usize * self.dst_height as usize;
        buffer("camera frame", src * 3, pixels)?;
        buffer("model input", dst * 3, out)?;
        geometry(dst)
    }
}

/// The pillar grid, as `cadence_models::lidar::PillarGrid` (ranges split into min
/// and max), laid out as `struct LidarGridArgs` in preprocess.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LidarGridArgs {
    /// Minimum x in metres.
    pub x_min: f32,
    /// Maximum x (exclusive).
    pub x_max: f32,
    /// Minimum y.
    pub y_min: f32,
    /// Maximum y (exclusive).
    pub y_max: f32,
    /// Minimum z.
    pub z_min: f32,
    /// Maximum z (exclusive).
    pub z_max: f32,
    /// Cell side in metres.
    pub voxel: f32,
    /// Cells along x.
    pub nx: u32,
    /// Cells along y.
    pub ny: u32,
    /// Pillars in the PFN input.
    pub max_pillars: u32,
    /// Point slots per pillar.
    pub max_points: u32,
}

// SAFETY: `LidarGridArgs` is `#[repr(C)]` plain data (f32 and u32 only), laid out as
// `struct LidarGridArgs` in preprocess.cu; the kernels read it by value.
unsafe impl DeviceRepr for LidarGridArgs {}

impl LidarGridArgs {
    /// Cells in the grid.
    pub fn cells(&self) -> usize {
        self.nx as usize * self.ny as usize
    }

    /// Floats in the PFN input `[1, P, N, 9]`.
    pub fn pillar_tensor_len(&self) -> usize {
        self.max_pillars as usize * self.max_points as usize * PILLAR_FEATURES
    }

    /// Checks the grid as `PillarGrid::validate` does.
    pub fn check(&self) -> Result<(), PreprocessError> {
        let bad = |why| {
            Err(PreprocessError::BadArgument {
                what: "pillar grid",
                why,
            })
        };
        let ordered = |lo: f32, hi: f32| lo.is_finite() && hi.is_finite() && lo < hi;
        if !(ordered(self.x_min, self.x_max)
            && ordered(self.y_min, self.y_max)
            && ordered(self.z_min, self.z_max))
        {
            return bad("every range must be finite with min < max");
        }
        if !(self.voxel.is_finite() && self.voxel > 0.0) {
            return bad("the voxel size must be positive");
        }
        let covers = |lo: f32, hi: f32, n: u32| {
            let cells = (hi - lo) / self.voxel + 0.5;
            cells >= 1.0 && cells as u32 == n
        };
        if !covers(self.x_min, self.x_max, self.nx) || !covers(self.y_min, self.y_max, self.ny) {
            return bad("nx and ny must equal the x and y extents divided by the voxel size");
        }
        if self.cells() > i32::MAX as usize {
            return bad("nx * ny must fit in an i32");
        }
        if self.max_pillars == 0 || self.max_pillars >= (1 << 24) - 1 {
            return bad("max_pillars must be between 1 and 2^24 - 2");
        }
        if self.max_points == 0 || self.max_points > 255 {
            return bad("max_points must be between 1 and 255");
        }
        Ok(())
    }
}

/// Device buffers one pillarisation needs besides its input and outputs, allocated
/// once (per frame nothing is allocated).
#[derive(Debug)]
pub struct LidarScratch {
    keys: CudaSlice<i32>,
    cells: CudaSlice<u32>,
    stats: CudaSlice<u32>,
}

impl LidarScratch {
    /// Scratch for sweeps of up to `max_points_per_sweep` points on `grid`; the cell
    /// table starts zeroed, and the kernels leave it zeroed.
    pub fn new(
        stream: &std::sync::Arc<CudaStream>,
        grid: &LidarGridArgs,
        max_points_per_sweep: usize,
    ) -> Result<Self, PreprocessError> {
        grid.check()?;
        let alloc = |what: &'static str, elems: usize| CudaError::from_alloc(what, elems * 4);
        Ok(Self {
            keys: stream
                .alloc_zeros(max_points_per_sweep.max(1))
                .map_err(alloc("lidar point keys", max_points_per_sweep))?,
            cells: stream
                .alloc_zeros(grid.cells())
                .map_err(alloc("lidar cell table", grid.cells()))?,
            stats: stream
                .alloc_zeros(LIDAR_STATS)
                .map_err(alloc("lidar counters", LIDAR_STATS))?,
        })
    }

    /// The counters of the last pillarisation, in `PillarStats` order; reading them
    /// waits for the stream.
    pub fn stats(
        &self,
        stream: &std::sync::Arc<CudaStream>,
    ) -> Result<[u32; LIDAR_STATS], PreprocessError> {
        let mut out = [0u32; LIDAR_STATS];
        stream
            .memcpy_dtoh(&self.stats, &mut out)
            .and_then(|()| stream.synchronize())
            .map_err(|e| CudaError::driver("reading the lidar counters", e))?;
        Ok(out)
    }
}

/// The loaded pre-processing kernels; see [`super::CudaBackend::preprocess`].
#[derive(Debug)]
pub struct PreprocessKernels {
    functions: Vec<CudaFunction>,
}

impl PreprocessKernels {
    pub(super) fn load(module: &std::sync::Arc<CudaModule>) -> Result<Self, CudaError> {
        let functions = PREPROCESS_ENTRIES
            .iter()
            .map(|entry| {
                module
                    .load_function(entry)
                    .map_err(|e| CudaError::driver("loading a pre-processing kernel", e))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { functions })
    }

    fn function(&self, entry: &str) -> &CudaFunction {
        let index = PREPROCESS_ENTRIES
            .iter()
            .position(|e| *e == entry)
            .expect("entry is listed");
        &self.functions[index]
    }

    /// Enqueues the camera pre-processing of `pixels` (`[H, W, 3]` bytes) into `out`
    /// (`[3, dst_height, dst_width]` floats) on `stream`.
    pub fn camera(
        &self,
        stream: &CudaStream,
        args: &CameraArgs,
        pixels: &CudaSlice<u8>,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), PreprocessError> {
        let grid = args.check(pixels.len(), out.len())?;
        let mut launch = stream.launch_builder(self.function("cadence_camera_preprocess"));
        launch.arg(pixels).arg(out).arg(args);
        // SAFETY: the kernel's signature is (const u8*, float*, CameraArgs), matching the
        // arguments pushed; `check` proved both buffers hold what the sizes index.
        unsafe { launch.launch(config(grid)) }
            .map_err(|e| CudaError::driver("launching camera pre-processing", e))?;
        Ok(())
    }

    /// Enqueues pillarisation of `points` (`[n, 4]` floats) into `pillars` (the PFN
    /// input) and `coords` (`[P, 2]`): the three passes of `preprocess.cu`.
    pub fn pillarise(
        &self,
        stream: &CudaStream,
        grid: &LidarGridArgs,
        points: &CudaSlice<f32>,
        scratch: &mut LidarScratch,
        pillars: &mut CudaSlice<f32>,
        coords: &mut CudaSlice<i32>,
    ) -> Result<(), PreprocessError> {
        let n = check_pillarise(
            grid,
            points.len(),
            scratch.keys.len(),
            scratch.cells.len(),
            pillars.len(),
            coords.len(),
        )?;
        let n_u32 = n as u32;
        let fail = |e| CudaError::driver("launching lidar pillarisation", e);
        if let Some(per_point) = LaunchGeometry::for_items(n_u32, u32::MAX) {
            let mut launch = stream.launch_builder(self.function("cadence_lidar_cells"));
            launch
                .arg(points)
                .arg(&n_u32)
                .arg(grid)
                .arg(&mut scratch.keys);
            // SAFETY: (const float*, u32, LidarGridArgs, int*) as pushed; `points` holds
            // 4·n floats and `keys` at least n entries (checked above).
            unsafe { launch.launch(config(per_point)) }.map_err(fail)?;
        }
        let mut assign = stream.launch_builder(self.function("cadence_lidar_assign"));
        assign
            .arg(points)
            .arg(&scratch.keys)
            .arg(&n_u32)
            .arg(grid)
            .arg(&mut scratch.cells)
            .arg(&mut *pillars)
            .arg(&mut *coords)
            .arg(&mut scratch.stats);
        let one = LaunchGeometry {
            blocks: 1,
            threads_per_block: 1,
        };
        // SAFETY: signature as pushed; the cell table has `grid.cells()` entries, the
        // pillar and coordinate buffers the grid's capacities (checked above).
        unsafe { assign.launch(config(one)) }.map_err(fail)?;
        let per_pillar = geometry(grid.max_pillars as usize)?;
        let mut features = stream.launch_builder(self.function("cadence_lidar_features"));
        features
            .arg(grid)
            .arg(&mut scratch.cells)
            .arg(pillars)
            .arg(coords)
            .arg(&mut scratch.stats);
        // SAFETY: signature as pushed; same buffers as the pass before.
        unsafe { features.launch(config(per_pillar)) }.map_err(fail)?;
        Ok(())
    }

    /// Enqueues the scatter of `features` (`[C, P]`) onto `bev` (`[C, ny, nx]`,
    /// cleared first); rows outside the grid are counted in `rejected`.
    #[allow(clippy::too_many_arguments)]
    pub fn scatter(
        &self,
        stream: &CudaStream,
        grid: &LidarGridArgs,
        features: &CudaSlice<f32>,
        coords: &CudaSlice<i32>,
        channels: usize,
        bev: &mut CudaSlice<f32>,
        rejected: &mut CudaSlice<u32>,
    ) -> Result<(), PreprocessError> {
        let work = check_scatter(grid, features.len(), coords.len(), channels, bev.len())?;
        let fail = |e| CudaError::driver("launching the lidar scatter", e);
        let bev_len = bev.len() as u64;
        let clear_grid = config(geometry(bev.len())?);
        let mut clear = stream.launch_builder(self.function("cadence_fill_zero"));
        clear.arg(&mut *bev).arg(&bev_len);
        // SAFETY: (float*, u64) as pushed; `bev` holds `bev_len` floats.
        unsafe { clear.launch(clear_grid) }.map_err(fail)?;
        let (pillars, channels) = ((coords.len() / 2) as u32, channels as u32);
        let mut launch = stream.launch_builder(self.function("cadence_lidar_scatter"));
        launch
            .arg(grid)
            .arg(features)
            .arg(coords)
            .arg(&pillars)
            .arg(&channels)
            .arg(bev)
            .arg(rejected);
        if let Some(work) = work {
            // SAFETY: signature as pushed; `check_scatter` proved the lengths agree.
            unsafe { launch.launch(config(work)) }.map_err(fail)?;
        }
        Ok(())
    }
}

/// Checks pillarisation buffers' lengths (`points` in floats, others in elements) and
/// returns the number of points.
pub fn check_pillarise(
    grid: &LidarGridArgs,
    points: usize,
    keys: usize,
    cells: usize,
    pillars: usize,
    coords: usize,
) -> Result<usize, PreprocessError> {
    grid.check()?;
    if !points.is_multiple_of(POINT_FLOATS) {
        return Err(PreprocessError::BadArgument {
            what: "lidar sweep",
            why: "its length must be a multiple of 4 floats (x, y, z, intensity)",
        });
    }
    let n = points / POINT_FLOATS;
    if n > keys {
        return Err(PreprocessError::BufferSize {
            buffer: "lidar point keys",
            expected: n,
            got: keys,
        });
    }
    if u32::try_from(n).is_err() {
        return Err(PreprocessError::BadArgument {
            what: "lidar sweep",
            why: "more than 2^32 - 1 points",
        });
    }
    buffer("cell table", grid.cells(), cells)?;
    buffer("pillar tensor", grid.pillar_tensor_len(), pillars)?;
    buffer("pillar coordinates", grid.max_pillars as usize * 2, coords)?;
    Ok(n)
}

/// Checks scatter buffers' lengths and returns the grid (`None`: nothing to scatter).
pub fn check_scatter(
    grid: &LidarGridArgs,
    features: usize,
    coords: usize,
    channels: usize,
    bev: usize,
) -> Result<Option<LaunchGeometry>, PreprocessError> {
    grid.check()?;
    if !coords.is_multiple_of(2) {
        return Err(PreprocessError::BadArgument {
            what: "pillar coordinates",
            why: "they must be (row, col) pairs",
        });
    }
    let pillars = coords / 2;
    buffer("pillar features", channels * pillars, features)?;
    buffer("BEV tensor", channels * grid.cells(), bev)?;
    match channels * pillars {
        0 => Ok(None),
        items => geometry(items).map(Some),
    }
}

fn buffer(buffer: &'static str, expected: usize, got: usize) -> Result<(), PreprocessError> {
    if expected == got {
        Ok(())
    } else {
        Err(PreprocessError::BufferSize {
            buffer,
            expected,
            got,
        })
    }
}

fn geometry(items: usize) -> Result<LaunchGeometry, PreprocessError> {
    let items = u32::try_from(items).map_err(|_| PreprocessError::BadArgument {
        what: "pre-processing",
        why: "more than 2^32 - 1 work items",
    })?;
    LaunchGeometry::for_items(items, u32::MAX).ok_or(PreprocessError::BadArgument {
        what: "pre-processing",
        why: "nothing to do",
    })
}

fn config(grid: LaunchGeometry) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid.blocks, 1, 1),
        block_dim: (grid.threads_per_block, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::launch::THREADS_PER_BLOCK;

    fn imagenet(src: [u32; 2], dst: [u32; 2]) -> CameraArgs {
        CameraArgs {
            src_width: src[0],
            src_height: src[1],
            dst_width: dst[0],
            dst_height: dst[1],
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// The bundled PointPillars grid (`cadence_models::lidar::POINTPILLARS_GRID`).
    fn pointpillars() -> LidarGridArgs {
        LidarGridArgs {
            x_min: -51.2,
            x_max: 51.2,
            y_min: -51.2,
            y_max: 51.2,
            z_min: -5.0,
            z_max: 3.0,
            voxel: 0.4,
            nx: 256,
            ny: 256,
            max_pillars: 12_000,
            max_points: 32,
        }
    }

    #[test]
    fn camera_arguments_are_checked_before_a_launch() {
        let args = imagenet([640, 480], [320, 320]);
        let grid = args.check(640 * 480 * 3, 3 * 320 * 320).unwrap();
        assert_eq!(
            grid.blocks as usize * grid.threads_per_block as usize,
            (320 * 320usize).next_multiple_of(THREADS_PER_BLOCK as usize)
        );
        assert_eq!(
            args.check(640 * 480 * 4, 3 * 320 * 320),
            Err(PreprocessError::BufferSize {
                buffer: "camera frame",
                expected: 640 * 480 * 3,
                got: 640 * 480 * 4
            })
        );
        assert!(matches!(
            args.check(640 * 480 * 3, 7),
            Err(PreprocessError::BufferSize {
                buffer: "model input",
                ..
            })
        ));
        assert!(matches!(
            imagenet([0, 480], [320, 320]).check(0, 3 * 320 * 320),
            Err(PreprocessError::BadArgument { .. })
        ));
        let mut zero_std = args;
        zero_std.std[1] = 0.0;
        assert!(matches!(
            zero_std.check(640 * 480 * 3, 3 * 320 * 320),
            Err(PreprocessError::BadArgument {
                what: "normalisation",
                ..
            })
        ));
    }

    #[test]
    fn the_pointpillars_grid_is_accepted_and_broken_grids_are_not() {
        let grid = pointpillars();
        grid.check().unwrap();
        let mut wrong_cells = grid;
        wrong_cells.nx = 255;
        assert!(wrong_cells.check().is_err());
        let mut too_many_points = grid;
        too_many_points.max_points = 256;
        assert!(too_many_points.check().is_err());
        let mut inverted = grid;
        inverted.z_min = 4.0;
        assert!(inverted.check().is_err());
    }

    #[test]
    fn pillarise_buffers_must_fit_the_grid() {
        let g = pointpillars();
        let ok = |points, keys, cells, pillars, coords| {
            check_pillarise(&g, points, keys, cells, pillars, coords)
        };
        let (cells, pillars, coords) =
            (g.cells(), g.pillar_tensor_len(), 2 * g.max_pillars as usize);
        assert_eq!(ok(4000, 1000, cells, pillars, coords), Ok(1000));
        assert!(matches!(
            ok(4001, 1000, cells, pillars, coords),
            Err(PreprocessError::BadArgument {
                what: "lidar sweep",
                ..
            })
        ));
        assert!(matches!(
            ok(8000, 1000, cells, pillars, coords),
            Err(PreprocessError::BufferSize {
                buffer: "lidar point keys",
                ..
            })
        ));
        assert!(matches!(
            ok(4000, 1000, cells - 1, pillars, coords),
            Err(PreprocessError::BufferSize {
                buffer: "cell table",
                ..
            })
        ));
        assert!(matches!(
            ok(4000, 1000, cells, pillars + 9, coords),
            Err(PreprocessError::BufferSize {
                buffer: "pillar tensor",
                ..
            })
        ));
        assert!(matches!(
            ok(4000, 1000, cells, pillars, coords - 2),
            Err(PreprocessError::BufferSize {
                buffer: "pillar coordinates",
                ..
            })
        ));
    }

    #[test]
    fn scatter_buffers_must_agree() {
        let g = pointpillars();
        let pillars = g.max_pillars as usize;
        let work = check_scatter(&g, 64 * pillars, 2 * pillars, 64, 64 * g.cells())
            .unwrap()
            .unwrap();
        assert_eq!(
            work.blocks,
            (64 * pillars as u32).div_ceil(THREADS_PER_BLOCK)
        );
        assert_eq!(check_scatter(&g, 0, 0, 64, 64 * g.cells()), Ok(None));
        assert!(matches!(
            check_scatter(&g, 64 * pillars, 2 * pillars + 1, 64, 64 * g.cells()),
            Err(PreprocessError::BadArgument { .. })
        ));
        assert!(matches!(
            check_scatter(&g, 64 * pillars, 2 * pillars, 64, 64),
            Err(PreprocessError::BufferSize {
                buffer: "BEV tensor",
                ..
            })
        ));
    }
}
