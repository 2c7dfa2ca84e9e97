//! From the optimised graph to the plan's tables: tensor records with arena offsets
//! from the planner, constants laid out in the weights section, and step records with
//! their scratch regions. The result is validated with the same check the runtime
//! applies at load, so a compiler bug is caught here and not on the vehicle.

use cadence_hal::Shape;
use cadence_hal::plan::{
    DType, MAX_STEP_INPUTS, Plan, StepRecord, Storage, TENSOR_ALIGN, TensorRecord,
};
use zerocopy::IntoBytes;

use crate::error::{CompileError, Result};
use crate::graph::{Graph, ValueId, ValueKind};
use crate::planner::{self, Buffer};

/// The plan's tables, ready to be packaged.
#[derive(Clone, Debug)]
pub struct LoweredPlan {
    /// Tensor records.
    pub tensors: Vec<TensorRecord>,
    /// Step records (name offsets not yet set).
    pub steps: Vec<StepRecord>,
    /// Step names, one per step.
    pub step_names: Vec<String>,
    /// The weights section as `f32`s (so it is aligned in memory).
    pub weights: Vec<f32>,
    /// Arena bytes.
    pub arena_bytes: usize,
    /// Liveness lower bound of the arena.
    pub arena_lower_bound_bytes: usize,
    /// Tensor index of each model input.
    pub input_tensors: Vec<u32>,
    /// Tensor index of each model output.
    pub output_tensors: Vec<u32>,
    /// Multiply-accumulates per frame.
    pub macs: u64,
    /// Parameters (constant elements read by steps).
    pub params: u64,
}

impl LoweredPlan {
    /// A HAL view of the plan, for validation and for running it in-process.
    pub fn as_plan<'a>(&'a self, names: &'a [u8]) -> Plan<'a> {
        Plan {
            tensors: &self.tensors,
            steps: &self.steps,
            names,
            weights: self.weights.as_bytes(),
            arena_bytes: self.arena_bytes,
        }
    }
}

const WORD: usize = 4;

fn shape_of(graph: &Graph, v: ValueId) -> Result<Shape> {
    Shape::new(&graph.values[v].shape).ok_or_else(|| CompileError::Unsupported {
        node: graph.values[v].name.clone(),
        op: "tensor".into(),
        reason: format!(
            "rank {} exceeds the maximum of {}",
            graph.values[v].shape.len(),
            cadence_hal::MAX_RANK
        ),
    })
}

fn to_u32(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x)
        .map_err(|_| CompileError::TooLarge(format!("{what} of {x} bytes exceeds 4 GiB")))
}

/// Plans memory and emits the tables for `graph`.
pub fn emit(graph: &Graph) -> Result<LoweredPlan> {
    let n_steps = graph.nodes.len();
    let mut used = vec![false; graph.values.len()];
    for node in &graph.nodes {
        for &v in node.inputs.iter().chain([&node.output]) {
            used[v] = true;
        }
    }
    for &v in graph.inputs.iter().chain(&graph.outputs) {
        used[v] = true;
    }
    for v in 0..graph.values.len() {
        if used[v] {
            used[graph.root(v)] = true;
        }
    }

    // Lifetimes of arena roots.
    let mut first = vec![usize::MAX; graph.values.len()];
    let mut last = vec![0usize; graph.values.len()];
    for &v in &graph.inputs {
        first[v] = 0;
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        let out = graph.root(node.output);
        first[out] = first[out].min(i);
        last[out] = last[out].max(i);
        for &input in &node.inputs {
            let r = graph.root(input);
            last[r] = last[r].max(i);
        }
    }
    for &o in &graph.outputs {
        last[graph.root(o)] = n_steps;
    }

    let mut buffers = Vec::new();
    let mut buffer_of = vec![usize::MAX; graph.values.len()];
    for v in 0..graph.values.len() {
        let arena_root = matches!(
            graph.values[v].kind,
            ValueKind::Input(_) | ValueKind::Computed
        );
        if used[v] && arena_root {
            buffer_of[v] = buffers.len();
            let f = first[v].min(last[v]);
            buffers.push(Buffer {
                size: graph.values[v].volume() * WORD,
                first: f,
                last: last[v].max(f),
            });
        }
    }
    let mut scratch_of = vec![(usize::MAX, 0); n_steps];
    for (i, node) in graph.nodes.iter().enumerate() {
        let bytes = node.op.scratch_bytes(
            &ins_shapes(graph, &node.inputs)?,
            &shape_of(graph, node.output)?,
        );
        if bytes > 0 {
            scratch_of[i] = (buffers.len(), bytes);
            buffers.push(Buffer {
                size: bytes,
                first: i,
                last: i,
            });
        }
    }
    let placement = planner::place(&buffers, TENSOR_ALIGN);

    // Tensor records.
    let mut weights: Vec<f32> = Vec::new();
    let mut tensor_of = vec![u32::MAX; graph.values.len()];
    let mut tensors = Vec::new();
    let mut params = 0u64;
    for v in 0..graph.values.len() {
        if !used[v] {
            continue;
        }
        let shape = shape_of(graph, v)?;
        let root = graph.root(v);
        let (storage, offset) = match &graph.values[root].kind {
            ValueKind::Const(data) => {
                let start = weights.len().next_multiple_of(TENSOR_ALIGN / WORD);
                weights.resize(start, 0.0);
                weights.extend_from_slice(data);
                params += data.len() as u64;
                (Storage::Weights, start * WORD)
            }
            _ => (Storage::Arena, placement.offsets[buffer_of[root]]),
        };
        tensor_of[v] = tensors.len() as u32;
        tensors.push(TensorRecord::new(
            storage,
            DType::F32,
            to_u32(offset, "tensor offset")?,
            &shape,
        ));
    }

    let mut steps = Vec::with_capacity(n_steps);
    let mut macs = 0u64;
    for (i, node) in graph.nodes.iter().enumerate() {
        debug_assert!(node.inputs.len() <= MAX_STEP_INPUTS);
        let ids: Vec<u32> = node.inputs.iter().map(|&v| tensor_of[v]).collect();
        let mut rec = node.op.to_record(&ids, tensor_of[node.output]);
        let (buffer, bytes) = scratch_of[i];
        if bytes > 0 {
            rec.scratch_offset = to_u32(placement.offsets[buffer], "scratch offset")?;
            rec.scratch_bytes = to_u32(bytes, "scratch size")?;
        }
        steps.push(rec);
        macs += node.op.macs(
            &ins_shapes(graph, &node.inputs)?,
            &shape_of(graph, node.output)?,
        );
    }

    let lowered = LoweredPlan {
        tensors,
        steps,
        step_names: graph.nodes.iter().map(|n| n.name.clone()).collect(),
        weights,
        arena_bytes: placement.arena_bytes,
        arena_lower_bound_bytes: placement.lower_bound_bytes,
        input_tensors: graph.inputs.iter().map(|&v| tensor_of[v]).collect(),
        output_tensors: graph.outputs.iter().map(|&v| tensor_of[v]).collect(),
        macs,
        params,
    };
    lowered
        .as_plan(&[])
        .validate()
        .map_err(|e| CompileError::InvalidPlan(e.to_string()))?;
    Ok(lowered)
}

fn ins_shapes(graph: &Graph, inputs: &[ValueId]) -> Result<Vec<Shape>> {
    inputs.iter().map(|&v| shape_of(graph, v)).collect()
}
