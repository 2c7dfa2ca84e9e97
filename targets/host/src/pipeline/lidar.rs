//! The lidar frame path: pillarise, PFN, scatter, backbone, decode.

use std::path::Path;
use std::time::Duration;

use cadence_hal::Accelerator;
use cadence_models::lidar::{
    self, CellIndex, LIDAR_ANCHORS, LIDAR_BOX_CODE, LIDAR_CLASSES, LIDAR_DIR_BINS, LIDAR_HEAD,
    LidarDetection, PILLAR_FEATURES, POINTPILLARS_GRID, PillarGrid,
};
use cadence_models::nms::TopK;
use cadence_runtime::package::{ModelFamily, Preprocess};
use heapless::Vec as FixedVec;

use super::model::Model;
use super::recorded::FramePath;
use super::samples::Sweep;
use super::{
    BackendFactory, Counters, FrameFault, Isolation, LIDAR_POST, MAX_CANDIDATES, MAX_DETECTIONS,
    PipelineError, Pool,
};

/// A pillar feature net, its input and output resolved at load.
struct Pfn<B> {
    model: Model<B>,
    input: usize,
    output: usize,
    /// The pillar grid with the capacities the package declares.
    grid: PillarGrid,
    /// Feature channels per pillar (`C` of the `[1, C, P, 1]` output).
    channels: usize,
}

impl<B: Accelerator> Pfn<B> {
    fn load(
        path: &Path,
        isolation: Isolation,
        backends: &impl BackendFactory<B>,
    ) -> Result<Self, PipelineError> {
        let model = Model::load(path, ModelFamily::LidarPfn, isolation, backends)?;
        let Preprocess::LidarPillars {
            max_pillars,
            max_points,
        } = model.preprocess()
        else {
            return Err(model.mismatch(
                "it declares no lidar pillarisation (compile it with --preprocess \
                 lidar-pillars:PILLARSxPOINTS)"
                    .into(),
            ));
        };
        let grid = PillarGrid {
            max_pillars: max_pillars as usize,
            max_points: max_points as usize,
            ..POINTPILLARS_GRID
        };
        grid.validate()
            .map_err(|e| model.mismatch(format!("its pillar capacities: {e}")))?;
        let input = model.input("pillars")?;
        let expected = [1, grid.max_pillars, grid.max_points, PILLAR_FEATURES];
        if model.input_dims(input) != expected {
            return Err(model.mismatch(format!(
                "input `pillars` has shape {:?}, pillarisation writes {expected:?}",
                model.input_dims(input)
            )));
        }
        let output = model.output("pillar_features")?;
        let channels = match model.output_dims(output)[..] {
            [1, c, p, 1] if p == grid.max_pillars => c,
            ref dims => {
                return Err(model.mismatch(format!(
                    "output `pillar_features` has shape {dims:?}, the scatter reads [1, C, {}, 1]",
                    grid.max_pillars
                )));
            }
        };
        Ok(Self {
            model,
            input,
            output,
            grid,
            channels,
        })
    }
}

/// A BEV backbone and detection head, its input and outputs resolved at load.
struct Backbone<B> {
    model: Model<B>,
    input: usize,
    cls: usize,
    boxes: usize,
    dir: usize,
}

impl<B: Accelerator> Backbone<B> {
    fn load(
        path: &Path,
        isolation: Isolation,
        backends: &impl BackendFactory<B>,
    ) -> Result<Self, PipelineError> {
        let model = Model::load(path, ModelFamily::LidarBackbone, isolation, backends)?;
        let input = model.input("bev")?;
        let anchors = LIDAR_ANCHORS.len();
        let head = |channels: usize| [1, anchors * channels, LIDAR_HEAD.rows, LIDAR_HEAD.cols];
        let output = |name: &str, expected: [usize; 4]| {
            let index = model.output(name)?;
            if model.output_dims(index) == expected {
                Ok(index)
            } else {
                Err(model.mismatch(format!(
                    "output `{name}` has shape {:?}, the lidar decoder reads {expected:?}",
                    model.output_dims(index)
                )))
            }
        };
        let cls = output("cls_scores", head(LIDAR_CLASSES))?;
        let boxes = output("box_preds", head(LIDAR_BOX_CODE))?;
        let dir = output("dir_scores", head(LIDAR_DIR_BINS))?;
        Ok(Self {
            model,
            input,
            cls,
            boxes,
            dir,
        })
    }
}

/// Which PFN and backbone a chain runs.
#[derive(Clone, Copy)]
struct Chain {
    pfn: usize,
    backbone: usize,
}

/// A lidar task's `(PFN, backbone)` chains (primary and optional fallback) and its
/// pillarisation and decode buffers: the frame path from a sweep to detections, for any
/// sweep (the host DUT runs it on sweeps from the wire, a scheduler task's
/// [`super::Pipeline`] on recorded ones).
pub struct LidarChain<B> {
    pfns: Vec<Pfn<B>>,
    backbones: Vec<Backbone<B>>,
    primary: Chain,
    fallback: Option<Chain>,
    /// The pillariser's cell → pillar table. A `CellIndex` borrows it for one frame
    /// (zeroing it again: a 256 KB fill, far below a frame's cost) so the chain owns it
    /// without borrowing itself.
    cells: Vec<u32>,
    /// Pillar `(row, col)` of the last sweep.
    coords: Vec<i32>,
    candidates: TopK<LidarDetection, MAX_CANDIDATES>,
    detections: FixedVec<LidarDetection, MAX_DETECTIONS>,
}

impl<B: Accelerator> LidarChain<B> {
    /// Loads the `(PFN, backbone)` chains, checking that each PFN's features fit its
    /// backbone's BEV input (a file shared by both chains loads once).
    pub fn load(
        primary: (&Path, &Path),
        fallback: Option<(&Path, &Path)>,
        isolation: Isolation,
        backends: &impl BackendFactory<B>,
    ) -> Result<Self, PipelineError> {
        let mut pfns = Pool::new();
        let mut backbones = Pool::new();
        let mut chain = |(pfn_path, backbone_path): (&Path, &Path)| {
            let pfn = pfns.index_or_load(pfn_path, |p| Pfn::load(p, isolation, backends))?;
            let backbone = backbones
                .index_or_load(backbone_path, |p| Backbone::load(p, isolation, backends))?;
            let Pfn { channels, grid, .. } = *pfns.get(pfn);
            let Backbone { model, input, .. } = backbones.get(backbone);
            let expected = [1, channels, grid.ny, grid.nx];
            if model.input_dims(*input) != expected {
                return Err(model.mismatch(format!(
                    "input `bev` has shape {:?}, but `{}` scatters {expected:?}",
                    model.input_dims(*input),
                    pfn_path.display()
                )));
            }
            Ok(Chain { pfn, backbone })
        };
        let primary = chain(primary)?;
        let fallback = fallback.map(&mut chain).transpose()?;
        let pfns = pfns.into_values();
        let grid = POINTPILLARS_GRID;
        let max_pillars = pfns.iter().map(|p| p.grid.max_pillars).max().unwrap_or(0);
        Ok(Self {
            pfns,
            backbones: backbones.into_values(),
            primary,
            fallback,
            cells: vec![0; grid.cells()],
            coords: vec![0; 2 * max_pillars],
            candidates: TopK::new(),
            detections: FixedVec::new(),
        })
    }

    /// The last completed frame's detections, best first.
    pub fn detections(&self) -> &[LidarDetection] {
        &self.detections
    }

    /// Runs `sweep` (`x, y, z, intensity` per point) through the primary or the
    /// fallback chain; each out-of-process model gets `timeout` to answer. Allocates
    /// nothing after the first frame of each chain.
    #[expect(
        clippy::result_large_err,
        reason = "see FrameFault: boxing would allocate per frame"
    )]
    pub fn run(
        &mut self,
        sweep: &[[f32; 4]],
        fallback: bool,
        timeout: Duration,
        counters: &mut Counters,
    ) -> Result<(), FrameFault> {
        let chain = if fallback {
            self.fallback.ok_or(FrameFault::NoFallback)?
        } else {
            self.primary
        };
        let pfn = &mut self.pfns[chain.pfn];
        let backbone = &mut self.backbones[chain.backbone];
        let grid = pfn.grid;
        let coords = &mut self.coords[..grid.coords_len()];
        let stats = lidar::pillarise(
            sweep,
            &grid,
            &mut CellIndex::new(&mut self.cells),
            pfn.model.input_mut(pfn.input)?,
            coords,
        )
        .map_err(FrameFault::Lidar)?;
        if stats.dropped_too_many_pillars > 0 {
            counters.oversize_sweeps += 1;
        }
        counters.points_dropped +=
            (stats.dropped_pillar_full + stats.dropped_too_many_pillars) as u64;
        counters.non_finite_points += stats.points_non_finite as u64;

        pfn.model.run(timeout)?;
        let model = &mut backbone.model;
        lidar::scatter(
            &grid,
            pfn.model.output_at(pfn.output)?,
            coords,
            pfn.channels,
            model.input_mut(backbone.input)?,
        )
        .map_err(FrameFault::Lidar)?;
        model.run(timeout)?;
        let stats = lidar::decode_lidar(
            model.output_at(backbone.cls)?,
            model.output_at(backbone.boxes)?,
            model.output_at(backbone.dir)?,
            &LIDAR_POST,
            &mut self.candidates,
            &mut self.detections,
        )?;
        counters.count_decoded(self.detections.len(), &stats);
        Ok(())
    }
}

impl<B: Accelerator> FramePath for LidarChain<B> {
    type Input = Sweep;
    type Detection = LidarDetection;

    fn run_input(
        &mut self,
        sweep: &Sweep,
        fallback: bool,
        timeout: Duration,
        counters: &mut Counters,
    ) -> Result<(), FrameFault> {
        self.run(sweep, fallback, timeout, counters)
    }

    fn last_detections(&self) -> &[LidarDetection] {
        self.detections()
    }

    fn model_worker_pids(&self) -> impl Iterator<Item = u32> + '_ {
        let pfns = self.pfns.iter().map(|p| &p.model);
        let backbones = self.backbones.iter().map(|b| &b.model);
        pfns.chain(backbones).filter_map(Model::worker_pid)
    }
}
