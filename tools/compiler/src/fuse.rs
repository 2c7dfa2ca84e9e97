//! Graph rewrites after lowering, each of which removes a whole pass over a tensor:
//!
//! - a per-channel affine (BatchNorm lowered to `Mul` then `Add` by constants) right
//!   after a conv or matmul is folded into its weights and bias;
//! - an activation right after a conv or matmul runs inside its store loop;
//! - a pointwise conv whose only reader is a max pool over the whole W axis (a pillar
//!   feature net's max over the points) becomes one [`Op::PointwiseConvMax`], so the
//!   conv's full-size output is never written;
//! - nodes whose results no output needs are dropped;
//! - an output that is a model input or a constant (or one already claimed by another
//!   output) gets its own buffer through an explicit copy.

use cadence_hal::op::{Activation, BinaryKind, Op};

use crate::graph::{Graph, ValueId, ValueKind};

/// Applies every rewrite until none applies.
pub fn optimise(graph: &mut Graph) {
    eliminate_dead(graph);
    while fold_affine(graph) || fuse_activation(graph) || fuse_max_over_w(graph) {}
    eliminate_dead(graph);
    give_outputs_their_own_buffers(graph);
}

/// The node writing `value`, if exactly one does and exactly one reader consumes it.
fn sole_producer_with_one_reader(graph: &Graph, value: ValueId) -> Option<usize> {
    if graph.values[value].kind != ValueKind::Computed || graph.readers(value) != 1 {
        return None;
    }
    let mut writers = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.output == value);
    let (ix, _) = writers.next()?;
    writers.next().is_none().then_some(ix)
}

/// Replaces node `consumer` by making `producer` write the consumer's output.
fn absorb(graph: &mut Graph, producer: usize, consumer: usize) {
    graph.nodes[producer].output = graph.nodes[consumer].output;
    graph.nodes.remove(consumer);
}

/// Output channels of a conv-like node and the axis they lie on in its output.
fn channel_axis(graph: &Graph, node: usize) -> Option<(usize, usize)> {
    let n = &graph.nodes[node];
    let out = &graph.values[n.output].shape;
    match n.op {
        Op::Conv2d { .. } | Op::ConvTranspose2d { .. } => Some((out[1], 1)),
        Op::MatMul { .. } if graph.const_data(n.inputs[1]).is_some() => {
            Some((*out.last()?, out.len() - 1))
        }
        _ => None,
    }
}

/// The per-channel vector of a constant operand broadcast along `axis` of `rank`
/// dims, if that is what it is.
fn per_channel(
    graph: &Graph,
    operand: ValueId,
    channels: usize,
    axis: usize,
    rank: usize,
) -> Option<Vec<f32>> {
    let data = graph.const_data(operand)?;
    let shape = &graph.values[operand].shape;
    if data.len() == 1 {
        return Some(vec![data[0]; channels]);
    }
    let from_end = rank - axis;
    let aligned = shape.len() >= from_end
        && shape[shape.len() - from_end] == channels
        && shape.iter().filter(|&&d| d != 1).count() == 1;
    (aligned && data.len() == channels).then(|| data.to_vec())
}

fn fold_affine(graph: &mut Graph) -> bool {
    for consumer in 0..graph.nodes.len() {
        let Op::Binary(kind) = graph.nodes[consumer].op else {
            continue;
        };
        let inputs = graph.nodes[consumer].inputs.clone();
        let (data_slot, operand) = if graph.const_data(inputs[1]).is_some() {
            (0, inputs[1])
        } else if graph.const_data(inputs[0]).is_some()
            && matches!(kind, BinaryKind::Add | BinaryKind::Mul)
        {
            (1, inputs[0])
        } else {
            continue;
        };
        let Some(producer) = sole_producer_with_one_reader(graph, inputs[data_slot]) else {
            continue;
        };
        if producer > consumer || has_activation(&graph.nodes[producer].op) {
            continue;
        }
        let Some((channels, axis)) = channel_axis(graph, producer) else {
            continue;
        };
        let rank = graph.values[graph.nodes[producer].output].shape.len();
        if graph.values[graph.nodes[consumer].output].shape != graph.values[inputs[data_slot]].shape
        {
            continue;
        }
        let Some(v) = per_channel(graph, operand, channels, axis, rank) else {
            continue;
        };
        let (scale, shift): (Vec<f32>, Vec<f32>) = match kind {
            BinaryKind::Mul => (v, vec![0.0; channels]),
            BinaryKind::Div => (v.iter().map(|x| 1.0 / x).collect(), vec![0.0; channels]),
            BinaryKind::Add => (vec![1.0; channels], v),
            BinaryKind::Sub => (vec![1.0; channels], v.iter().map(|x| -x).collect()),
            BinaryKind::Max | BinaryKind::Min => continue,
        };
        apply_affine(graph, producer, &scale, &shift);
        absorb(graph, producer, consumer);
        return true;
    }
    false
}

fn has_activation(op: &Op) -> bool {
    match op {
        Op::Conv2d { activation, .. }
        | Op::ConvTranspose2d { activation, .. }
        | Op::MatMul { activation } => *activation != Activation::Identity,
        _ => false,
    }
}

/// Scales output channel `c` of the producer's weights by `scale[c]` and sets its bias
/// to `bias[c] * scale[c] + shift[c]`, in fresh constants.
fn apply_affine(graph: &mut Graph, producer: usize, scale: &[f32], shift: &[f32]) {
    let node = graph.nodes[producer].clone();
    let w = node.inputs[1];
    let w_shape = graph.values[w].shape.clone();
    let mut weights = graph
        .const_data(w)
        .expect("fold checks weights are constant")
        .to_vec();
    let channels = scale.len();
    match node.op {
        Op::Conv2d { .. } => {
            let per = weights.len() / channels;
            for (c, chunk) in weights.chunks_mut(per).enumerate() {
                chunk.iter_mut().for_each(|x| *x *= scale[c]);
            }
        }
        Op::ConvTranspose2d { groups, .. } => {
            // Weights are [C_in, M/groups, kh, kw]: output channel g*(M/groups)+m.
            let per_group = channels / groups;
            let khw = w_shape[2] * w_shape[3];
            let in_per_group = w_shape[0] / groups;
            for (ci, block) in weights.chunks_mut(per_group * khw).enumerate() {
                let g = ci / in_per_group;
                for (m, taps) in block.chunks_mut(khw).enumerate() {
                    taps.iter_mut().for_each(|x| *x *= scale[g * per_group + m]);
                }
            }
        }
        _ => {
            for row in weights.chunks_mut(channels) {
                row.iter_mut().zip(scale).for_each(|(x, s)| *x *= s);
            }
        }
    }
    let old_bias = node
        .inputs
        .get(2)
        .and_then(|&b| graph.const_data(b))
        .map(<[f32]>::to_vec);
    let bias: Vec<f32> = (0..channels)
        .map(|c| old_bias.as_ref().map_or(0.0, |b| b[c]) * scale[c] + shift[c])
        .collect();
    let w_name = format!("{}.folded", graph.values[w].name);
    let new_w = graph.add_value(w_name, w_shape, ValueKind::Const(weights));
    let b_name = format!("{}.bias", graph.nodes[producer].name);
    let new_b = graph.add_value(b_name, vec![channels], ValueKind::Const(bias));
    let inputs = &mut graph.nodes[producer].inputs;
    inputs[1] = new_w;
    inputs.truncate(2);
    inputs.push(new_b);
}

fn fuse_activation(graph: &mut Graph) -> bool {
    for consumer in 0..graph.nodes.len() {
        let Op::Unary(act) = graph.nodes[consumer].op else {
            continue;
        };
        let Some(producer) = sole_producer_with_one_reader(graph, graph.nodes[consumer].inputs[0])
        else {
            continue;
        };
        if graph.values[graph.nodes[consumer].inputs[0]].shape
            != graph.values[graph.nodes[consumer].output].shape
        {
            continue;
        }
        let fused = match &mut graph.nodes[producer].op {
            Op::Conv2d { activation, .. }
            | Op::ConvTranspose2d { activation, .. }
            | Op::MatMul { activation }
                if *activation == Activation::Identity =>
            {
                *activation = act;
                true
            }
            _ => false,
        };
        if fused {
            absorb(graph, producer, consumer);
            return true;
        }
    }
    false
}

/// Whether `op` is a max pool that reduces `[N, C, H, W]` over all of W and nothing
/// else: kernel `[1, W]`, no padding, stride 1 along H.
fn is_max_over_w(op: &Op, input_w: usize) -> bool {
    matches!(op, Op::MaxPool2d(win)
        if win.kernel == [1, input_w] && win.pads == [0; 4] && win.stride[0] == 1)
}

fn fuse_max_over_w(graph: &mut Graph) -> bool {
    for consumer in 0..graph.nodes.len() {
        let input = graph.nodes[consumer].inputs[0];
        let Some(&input_w) = graph.values[input].shape.get(3) else {
            continue;
        };
        if !is_max_over_w(&graph.nodes[consumer].op, input_w) {
            continue;
        }
        let Some(producer) = sole_producer_with_one_reader(graph, input) else {
            continue;
        };
        let fusable = match graph.nodes[producer].op {
            Op::Conv2d {
                groups: 1,
                window,
                activation,
            } => {
                let w_shape = &graph.values[graph.nodes[producer].inputs[1]].shape;
                (w_shape[2..] == [1, 1] && window.stride == [1, 1] && window.pads == [0; 4])
                    .then_some(activation)
            }
            _ => None,
        };
        if let Some(activation) = fusable {
            graph.nodes[producer].op = Op::PointwiseConvMax { activation };
            absorb(graph, producer, consumer);
            return true;
        }
    }
    false
}

/// Drops nodes whose outputs no model output depends on.
fn eliminate_dead(graph: &mut Graph) {
    let mut live = vec![false; graph.values.len()];
    for &o in &graph.outputs {
        live[graph.root(o)] = true;
        live[o] = true;
    }
    let mut keep = vec![false; graph.nodes.len()];
    for (ix, node) in graph.nodes.iter().enumerate().rev() {
        if live[node.output] || live[graph.root(node.output)] {
            keep[ix] = true;
            for &i in &node.inputs {
                live[i] = true;
                live[graph.root(i)] = true;
            }
        }
    }
    let mut ix = 0;
    graph.nodes.retain(|_| {
        ix += 1;
        keep[ix - 1]
    });
}

fn give_outputs_their_own_buffers(graph: &mut Graph) {
    let mut claimed: Vec<ValueId> = Vec::new();
    for slot in 0..graph.outputs.len() {
        let out = graph.outputs[slot];
        let root = graph.root(out);
        let owned = graph.values[root].kind == ValueKind::Computed && !claimed.contains(&root);
        if owned {
            claimed.push(root);
            continue;
        }
        let value = graph.values[out].clone();
        let copy = graph.add_value(
            format!("{}.copy", value.name),
            value.shape,
            ValueKind::Computed,
        );
        graph.add_node(&value.name, Op::Copy, vec![out], copy);
        graph.outputs[slot] = copy;
        claimed.push(copy);
    }
}
