//! The part that talks to the GPU: everything is allocated, compiled and captured in
//! [`Device::load`]; [`Device::run_frame`] is two host copies around one graph replay.

use std::sync::Arc;

use cudarc::driver::sys::{CUdevice_attribute, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    LaunchConfig, PinnedHostSlice, PushKernelArg, result,
};
use cudarc::nvrtc::{CompileOptions, Ptx};
use zerocopy::FromBytes;

use super::error::CudaError;
use super::launch::{KernelLaunch, StepArgs, plan_launches};
use super::preprocess::PreprocessKernels;
use super::source::{NVRTC_OPTIONS, translation_unit};
use super::transfer::TransferPlan;
use crate::op::OpCode;
use crate::plan::Plan;

/// Resident blocks per SM the grid-stride kernels are sized for: enough to hide memory
/// latency, few enough that a grid is one wave.
const BLOCKS_PER_SM: u32 = 8;

// SAFETY: `StepArgs` is `#[repr(C)]` and all `u32`, the layout of `struct StepArgs` in
// kernels.cu (NVRTC checks the size); kernels read it by value.
unsafe impl DeviceRepr for StepArgs {}

/// What [`probe`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Ordinal of the device.
    pub ordinal: usize,
    /// Devices the driver sees.
    pub count: usize,
    /// Marketing name (`NVIDIA H200`).
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_memory: usize,
}

/// Checks that the driver and NVRTC libraries load and that device `ordinal` exists.
/// Allocates nothing on the device.
pub fn probe(ordinal: usize) -> Result<DeviceInfo, CudaError> {
    let (ctx, count) = open(ordinal)?;
    let query = |e| CudaError::driver("querying the device", e);
    Ok(DeviceInfo {
        ordinal,
        count,
        name: ctx.name().map_err(query)?,
        compute_capability: ctx.compute_capability().map_err(query)?,
        total_memory: ctx.total_mem().map_err(query)?,
    })
}

/// Loads the libraries, checks the ordinal and opens the device's primary context.
fn open(ordinal: usize) -> Result<(Arc<CudaContext>, usize), CudaError> {
    // SAFETY: these only try `dlopen` on the libraries' candidate names; cudarc's own
    // loaders would panic on a missing library, which is why the probe comes first.
    let (driver, nvrtc) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    };
    if !driver {
        return Err(CudaError::NoDriver);
    }
    if !nvrtc {
        return Err(CudaError::NoNvrtc);
    }
    let count = match CudaContext::device_count() {
        Ok(count) => usize::try_from(count).unwrap_or(0),
        Err(e) if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE => 0,
        Err(e) => return Err(CudaError::driver("initialising the CUDA driver", e)),
    };
    if ordinal >= count {
        return Err(CudaError::NoDevice { ordinal, count });
    }
    let ctx =
        CudaContext::new(ordinal).map_err(|e| CudaError::driver("creating the CUDA context", e))?;
    Ok((ctx, count))
}

/// A plan resident on the GPU. Fields drop in declaration order: the graph before the
/// buffers its nodes address, the buffers before the stream and context.
pub(super) struct Device {
    graph: CudaGraph,
    /// The compiled kernels the graph's nodes launch: kept loaded as long as the graph.
    _module: Arc<CudaModule>,
    staging: PinnedHostSlice<u8>,
    arena: CudaSlice<f32>,
    weights: CudaSlice<f32>,
    preprocess: PreprocessKernels,
    transfers: TransferPlan,
    launches: usize,
    arena_bytes: usize,
    stream: Arc<CudaStream>,
}

// SAFETY: every member but the graph is `Send` in cudarc. A CUDA graph exec handle
// may be launched from any thread (cudarc binds the context to the calling thread
// before each launch); what it must not be is launched from two threads at once, and
// `Device` is not `Sync` and is only reached through `&mut`. The scheduler builds
// runners on one thread and moves each to its worker, which is this case.
unsafe impl Send for Device {}

impl Device {
    /// Opens device `ordinal`, compiles the kernels, allocates the device arena and the
    /// pinned staging buffer, uploads the weights and captures one frame as a graph.
    pub(super) fn load(plan: &Plan<'_>, ordinal: usize) -> Result<Self, CudaError> {
        let (ctx, _) = open(ordinal)?;
        // SAFETY: the backend uses one stream, so cudarc's cross-stream events are not
        // needed; recording them inside a stream capture would break the capture.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| CudaError::driver("creating a stream", e))?;
        let sms = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| CudaError::driver("querying the SM count", e))?;
        let launches = plan_launches(plan, (sms.max(1) as u32).saturating_mul(BLOCKS_PER_SM))?;
        let transfers = TransferPlan::for_plan(plan);

        let capability = ctx
            .compute_capability()
            .map_err(|e| CudaError::driver("querying the device", e))?;
        let module = ctx
            .load_module(compile(capability)?)
            .map_err(|e| CudaError::driver("loading the compiled kernels", e))?;
        let functions = OpCode::ALL
            .iter()
            .map(|op| {
                module
                    .load_function(op.kernel_entry())
                    .map_err(|e| CudaError::driver("loading a kernel", e))
            })
            .collect::<Result<Vec<CudaFunction>, _>>()?;
        let preprocess = PreprocessKernels::load(&module)?;

        let arena_bytes = plan.arena_bytes;
        let arena = stream
            .alloc_zeros::<f32>(arena_bytes.div_ceil(4).max(1))
            .map_err(CudaError::from_alloc("the device arena", arena_bytes))?;
        let weight_floats = <[f32]>::ref_from_bytes(&plan.weights[..plan.weights.len() / 4 * 4])
            .map_err(|_| CudaError::Plan(crate::plan::PlanError::MisalignedWeights.into()))?;
        let weights = if weight_floats.is_empty() {
            stream.alloc_zeros::<f32>(1)
        } else {
            stream.clone_htod(weight_floats)
        }
        .map_err(CudaError::from_alloc("the weights", plan.weights.len()))?;
        // SAFETY: `u8` is valid for any bit pattern; the buffer is only read after the
        // first frame's copies have written it.
        let mut staging = unsafe { ctx.alloc_pinned::<u8>(arena_bytes.max(1)) }.map_err(
            CudaError::from_alloc("the pinned staging buffer", arena_bytes),
        )?;

        let mut device = Self {
            _module: module,
            graph: capture(
                &stream,
                &functions,
                &launches,
                &transfers,
                &arena,
                &weights,
                &mut staging,
            )?,
            staging,
            arena,
            weights,
            preprocess,
            transfers,
            launches: launches.len(),
            arena_bytes,
            stream,
        };
        device
            .graph
            .upload()
            .map_err(|e| CudaError::driver("uploading the frame graph", e))?;
        device
            .stream
            .synchronize()
            .map_err(|e| CudaError::driver("finishing the load", e))?;
        // Touch the staging buffer once so the first frame pays no first-use cost.
        device
            .staging
            .as_mut_slice()
            .map_err(|e| CudaError::driver("mapping the staging buffer", e))?
            .fill(0);
        Ok(device)
    }

    /// One frame: copy the input spans into the pinned staging buffer, replay the
    /// graph (copies in, kernels, copies out), wait, copy the output spans back.
    /// Allocates nothing.
    pub(super) fn run_frame(&mut self, arena: &mut [u8]) -> Result<(), CudaError> {
        if arena.len() < self.arena_bytes {
            return Err(CudaError::Plan(
                crate::plan::PlanError::ArenaTooSmall {
                    needed: self.arena_bytes,
                    given: arena.len(),
                }
                .into(),
            ));
        }
        let staging = self
            .staging
            .as_mut_slice()
            .map_err(|e| CudaError::frame("mapping the staging buffer", e))?;
        for span in &self.transfers.inputs {
            staging[span.clone()].copy_from_slice(&arena[span.clone()]);
        }
        self.graph
            .launch()
            .map_err(|e| CudaError::frame("graph launch", e))?;
        self.stream
            .synchronize()
            .map_err(|e| CudaError::frame("graph replay", e))?;
        let staging = self
            .staging
            .as_slice()
            .map_err(|e| CudaError::frame("mapping the staging buffer", e))?;
        for span in &self.transfers.outputs {
            arena[span.clone()].copy_from_slice(&staging[span.clone()]);
        }
        Ok(())
    }

    pub(super) fn transfers(&self) -> &TransferPlan {
        &self.transfers
    }

    pub(super) fn launches(&self) -> usize {
        self.launches
    }

    pub(super) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub(super) fn preprocess(&self) -> &PreprocessKernels {
        &self.preprocess
    }

    /// Device bytes held for the plan: arena and weights.
    pub(super) fn device_bytes(&self) -> usize {
        (self.arena.len() + self.weights.len()) * 4
    }
}

/// Compiles the translation unit for the device's architecture.
fn compile((major, minor): (i32, i32)) -> Result<Ptx, CudaError> {
    let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|o| o.to_string()).collect();
    options.push(format!("--gpu-architecture=compute_{major}{minor}"));
    cudarc::nvrtc::compile_ptx_with_opts(
        translation_unit(),
        CompileOptions {
            options,
            name: Some("cadence_kernels.cu".into()),
            ..Default::default()
        },
    )
    .map_err(|e| CudaError::Compile { log: e.to_string() })
}

/// Records one frame on `stream` and instantiates it: input copies from the staging
/// buffer, every kernel in plan order, output copies back to the staging buffer.
fn capture(
    stream: &Arc<CudaStream>,
    functions: &[CudaFunction],
    launches: &[KernelLaunch],
    transfers: &TransferPlan,
    arena: &CudaSlice<f32>,
    weights: &CudaSlice<f32>,
    staging: &mut PinnedHostSlice<u8>,
) -> Result<CudaGraph, CudaError> {
    let (arena_ptr, _arena_sync) = arena.device_ptr(stream);
    let (weights_ptr, _weights_sync) = weights.device_ptr(stream);
    let host = staging
        .as_mut_ptr()
        .map_err(|e| CudaError::driver("mapping the staging buffer", e))?;
    stream
        .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .map_err(|e| CudaError::driver("starting the graph capture", e))?;
    let recorded = record_frame(
        stream,
        functions,
        launches,
        transfers,
        arena_ptr,
        weights_ptr,
        host,
    );
    // End the capture whatever happened, so the stream is usable again.
    let graph = stream.end_capture(CUgraphInstantiate_flags(0));
    recorded?;
    graph
        .map_err(|e| CudaError::driver("instantiating the frame graph", e))?
        .ok_or(CudaError::Driver {
            call: "capturing the frame graph",
            detail: "the capture recorded nothing".into(),
        })
}

fn record_frame(
    stream: &Arc<CudaStream>,
    functions: &[CudaFunction],
    launches: &[KernelLaunch],
    transfers: &TransferPlan,
    arena_ptr: u64,
    weights_ptr: u64,
    host: *mut u8,
) -> Result<(), CudaError> {
    let cu_stream = stream.cu_stream();
    for span in &transfers.inputs {
        // SAFETY: `host` is the pinned staging buffer of `arena_bytes` bytes and the span
        // lies within the plan's arena (validated), as does its image on the device.
        // Both buffers outlive the graph (see `Device`'s field order).
        let src =
            unsafe { std::slice::from_raw_parts(host.add(span.start).cast_const(), span.len()) };
        // SAFETY: as above; the copy is recorded into the graph, not run now.
        unsafe { result::memcpy_htod_async(arena_ptr + span.start as u64, src, cu_stream) }
            .map_err(|e| CudaError::driver("recording an input copy", e))?;
    }
    for launch in launches {
        let mut args = stream.launch_builder(&functions[launch.kernel.index()]);
        args.arg(&arena_ptr).arg(&weights_ptr).arg(&launch.args);
        let config = LaunchConfig {
            grid_dim: (launch.geometry.blocks, 1, 1),
            block_dim: (launch.geometry.threads_per_block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: every kernel takes (float* arena, const float* weights, StepArgs); the
        // plan passed validation, so every offset and extent in `launch.args` lies in
        // the arena or weights buffer it names.
        unsafe { args.launch(config) }.map_err(|e| CudaError::Launch {
            step: launch.step,
            kernel: launch.kernel.kernel_entry(),
            detail: e.to_string(),
        })?;
    }
    for span in &transfers.outputs {
        // SAFETY: as for the input copies; the graph writes this host memory only while
        // it runs, and `run_frame` reads it only after the stream has synchronised.
        let dst = unsafe { std::slice::from_raw_parts_mut(host.add(span.start), span.len()) };
        // SAFETY: as above.
        unsafe { result::memcpy_dtoh_async(dst, arena_ptr + span.start as u64, cu_stream) }
            .map_err(|e| CudaError::driver("recording an output copy", e))?;
    }
    Ok(())
}
