//! Channel analysis: which tensors share one channel indexing, which initializers and
//! attributes follow it, and where channels cannot be followed.
//!
//! Every conv (or transposed conv) output starts a *channel space*: the indexing of its
//! output channels. Ops that keep channels in place (BatchNormalization, activations,
//! pooling, depthwise convs, resize) pass their input's layout to their output. A
//! tensor's *layout* is a list of segments, one per space, because a `Concat` along
//! channels lays several spaces side by side. Elementwise ops that combine two
//! channel-carrying tensors (a residual `Add`, a squeeze-excite `Mul`) force both to
//! keep the same channels, so their spaces are merged (union-find) into one *group*
//! whose kept set is chosen once. Anything whose meaning depends on the channel count
//! or order (a graph output, Reshape, Transpose, a grouped conv, ...) fixes the groups
//! that reach it, with the reason recorded for the report.

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::prelude::Datum;

use super::weights;
use crate::import::Imported;

/// Index of a channel space.
pub(super) type SpaceId = usize;

/// A run of channels of one space inside a tensor's channel axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    /// The space the channels belong to.
    pub space: SpaceId,
    /// How many channels (the space's full count).
    pub channels: usize,
}

/// A tensor's channel axis as segments of spaces, in order.
pub(super) type Layout = Vec<Segment>;

/// A conv whose filters rank the channels of the space it writes.
#[derive(Clone, Debug)]
pub(super) struct Source {
    /// Index of the node in the graph.
    pub node: usize,
    /// The node's name (or a label when the file leaves it blank).
    pub name: String,
    /// The weight initializer.
    pub weight: String,
    /// The weight's output-channel axis (0 for Conv, 1 for ConvTranspose).
    pub axis: usize,
}

#[derive(Clone, Debug)]
struct Space {
    parent: SpaceId,
    channels: usize,
    sources: Vec<Source>,
    /// Why the space must keep every channel, if it must.
    fixed: Option<String>,
}

/// A change the pruned graph needs once every group's kept channels are known.
#[derive(Clone, Debug)]
pub(super) enum Edit {
    /// Keep the slices of `initializer` along `axis` that `layout` keeps.
    Retain {
        /// Initializer name.
        initializer: String,
        /// Axis that indexes the layout's channels.
        axis: usize,
        /// The channels along that axis.
        layout: Layout,
    },
    /// Set the `group` attribute of a depthwise conv to the channels `layout` keeps.
    Group {
        /// Index of the node.
        node: usize,
        /// The conv's input (and output) channels.
        layout: Layout,
    },
}

/// A set of merged spaces that keeps one set of channels.
#[derive(Clone, Debug)]
pub(super) struct Group {
    /// The root space.
    pub root: SpaceId,
    /// Channels before pruning.
    pub channels: usize,
    /// The convs that write the group, in graph order.
    pub sources: Vec<Source>,
    /// Why every channel must stay, if one must.
    pub fixed: Option<String>,
}

/// The result of the analysis.
#[derive(Clone, Debug, Default)]
pub(super) struct Channels {
    spaces: Vec<Space>,
    /// What to change once kept channels are chosen, in graph order.
    pub edits: Vec<Edit>,
    /// The layout of every tensor that carries prunable channels.
    pub layouts: HashMap<String, Layout>,
}

/// Whether channels may be followed through a node.
enum Outcome {
    /// Channels pass; these input slots were accounted for (any other input carrying
    /// channels is fixed).
    Follows(Vec<usize>),
    /// Channels cannot pass: every channel-carrying input is fixed for this reason.
    Blocks(String),
}

/// Ops that map each channel to the same channel of their first output.
const CHANNEL_WISE: &[&str] = &[
    "Abs",
    "AveragePool",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Cos",
    "Dropout",
    "Elu",
    "Erf",
    "Exp",
    "Floor",
    "Gelu",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "Log",
    "LpPool",
    "MaxPool",
    "Mish",
    "Neg",
    "Reciprocal",
    "Relu",
    "Round",
    "Selu",
    "Sigmoid",
    "Sign",
    "Sin",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Tanh",
    "ThresholdedRelu",
];

/// Elementwise ops with broadcasting: operands that carry channels must keep the same.
const ELEMENTWISE: &[&str] = &[
    "Add", "Div", "Max", "Mean", "Min", "Mul", "Pow", "PRelu", "Sub", "Sum",
];

/// The name a node is reported and addressed by: its own, or `Op#index` when blank.
pub(super) fn node_label(index: usize, node: &pb::NodeProto) -> String {
    if node.name.is_empty() {
        format!("{}#{index}", node.op_type)
    } else {
        node.name.clone()
    }
}

fn reached(label: &str, op: &str, why: &str) -> String {
    format!("channels reach `{label}` ({op}), {why}")
}

/// Why channels cannot pass an op the analysis does not follow.
fn barrier_reason(label: &str, op: &str) -> String {
    let why = match op {
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Expand" | "Tile" => {
            "whose output shape depends on the channel count"
        }
        "Transpose" | "DepthToSpace" | "SpaceToDepth" => "which moves channels to another axis",
        "Gemm" | "MatMul" | "Einsum" => "a matrix product over a layout the pruner does not track",
        "Slice" | "Split" | "Gather" | "GatherElements" | "Shape" | "Size" => {
            "which selects or reads channels by index or count"
        }
        "Softmax"
        | "LogSoftmax"
        | "Hardmax"
        | "LRN"
        | "InstanceNormalization"
        | "GroupNormalization"
        | "LayerNormalization"
        | "LpNormalization"
        | "MeanVarianceNormalization"
        | "ArgMax"
        | "ArgMin" => "which mixes values across an axis",
        op if op.starts_with("Reduce") => "which mixes values across an axis",
        _ => "which the pruner cannot follow channels through",
    };
    reached(label, op, why)
}

impl Channels {
    /// Analyses `graph`, whose shapes `model` inferred.
    pub fn analyse(graph: &pb::GraphProto, model: &Imported) -> Self {
        let mut uses: HashMap<&str, usize> = HashMap::new();
        count_uses(graph, &mut uses);
        let mut walk = Walk {
            model,
            initializers: graph
                .initializer
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
            uses,
            channels: Self::default(),
        };
        for (index, node) in graph.node.iter().enumerate() {
            walk.visit(index, node);
        }
        for output in &graph.output {
            if let Some(layout) = walk.channels.layouts.get(&output.name).cloned() {
                walk.channels.fix(
                    &layout,
                    &format!("channels reach graph output `{}`", output.name),
                );
            }
        }
        walk.channels
    }

    /// The root of `space`'s group.
    pub fn root(&self, mut space: SpaceId) -> SpaceId {
        while self.spaces[space].parent != space {
            space = self.spaces[space].parent;
        }
        space
    }

    /// Groups started by at least one conv, in graph order of their first conv.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups: Vec<Group> = (0..self.spaces.len())
            .filter(|&s| self.root(s) == s && !self.spaces[s].sources.is_empty())
            .map(|s| {
                let space = &self.spaces[s];
                let mut sources = space.sources.clone();
                sources.sort_by_key(|src| src.node);
                Group {
                    root: s,
                    channels: space.channels,
                    sources,
                    fixed: space.fixed.clone(),
                }
            })
            .collect();
        groups.sort_by_key(|g| g.sources[0].node);
        groups
    }

    fn new_space(
        &mut self,
        channels: usize,
        source: Option<Source>,
        fixed: Option<String>,
    ) -> SpaceId {
        let id = self.spaces.len();
        self.spaces.push(Space {
            parent: id,
            channels,
            sources: source.into_iter().collect(),
            fixed,
        });
        id
    }

    fn fix(&mut self, layout: &Layout, reason: &str) {
        for segment in layout {
            let root = self.root(segment.space);
            self.spaces[root]
                .fixed
                .get_or_insert_with(|| reason.to_owned());
        }
    }

    fn union(&mut self, a: SpaceId, b: SpaceId) {
        let (a, b) = (self.root(a), self.root(b));
        if a == b {
            return;
        }
        debug_assert_eq!(self.spaces[a].channels, self.spaces[b].channels);
        let merged = std::mem::take(&mut self.spaces[b].sources);
        self.spaces[a].sources.extend(merged);
        if self.spaces[a].fixed.is_none() {
            self.spaces[a].fixed = self.spaces[b].fixed.take();
        }
        self.spaces[b].parent = a;
    }
}

/// Counts how many node inputs name each tensor, subgraphs included (a subgraph may
/// read an outer initializer, which then must not be sliced for one consumer only).
fn count_uses<'g>(graph: &'g pb::GraphProto, uses: &mut HashMap<&'g str, usize>) {
    for node in &graph.node {
        for input in &node.input {
            *uses.entry(input.as_str()).or_default() += 1;
        }
        for attr in &node.attribute {
            for sub in attr.g.iter().chain(&attr.graphs) {
                count_uses(sub, uses);
            }
        }
    }
}

/// The walk over the nodes in topological (file) order.
struct Walk<'g> {
    model: &'g Imported,
    initializers: HashMap<&'g str, &'g pb::TensorProto>,
    uses: HashMap<&'g str, usize>,
    channels: Channels,
}

impl Walk<'_> {
    fn layout(&self, tensor: &str) -> Option<Layout> {
        self.channels.layouts.get(tensor).cloned()
    }

    fn set_layout(&mut self, tensor: &str, layout: Layout) {
        self.channels.layouts.insert(tensor.to_owned(), layout);
    }

    /// Why initializer `name` cannot be sliced for one consumer, if it cannot.
    fn unsliceable(&self, name: &str) -> Option<String> {
        match self.initializers.get(name) {
            None => Some(format!("`{name}` is computed, not an initializer")),
            Some(t) if !weights::is_editable(t) => {
                Some(format!("`{name}` is not float32 data stored in the file"))
            }
            Some(_) if self.uses.get(name).copied().unwrap_or(0) > 1 => {
                Some(format!("`{name}` is shared with another node"))
            }
            Some(_) => None,
        }
    }

    fn shape(&self, tensor: &str) -> Option<Vec<usize>> {
        self.model.shape(tensor).ok()
    }

    fn retain(&mut self, initializer: &str, axis: usize, layout: &Layout) {
        self.channels.edits.push(Edit::Retain {
            initializer: initializer.to_owned(),
            axis,
            layout: layout.clone(),
        });
    }

    fn visit(&mut self, index: usize, node: &pb::NodeProto) {
        let label = node_label(index, node);
        let op = node.op_type.as_str();
        let outcome = match op {
            "Conv" => self.conv(index, node, &label, 1, 0),
            "ConvTranspose" => self.conv(index, node, &label, 0, 1),
            "BatchNormalization" => self.batch_norm(node, &label),
            "Resize" | "Upsample" => self.resize(node, &label),
            "Pad" => self.pad(node, &label),
            "Concat" => self.concat(node, &label),
            op if CHANNEL_WISE.contains(&op) => self.channel_wise(node, &label),
            op if ELEMENTWISE.contains(&op) => self.elementwise(node, &label),
            _ => Outcome::Blocks(barrier_reason(&label, op)),
        };
        let (handled, reason) = match outcome {
            Outcome::Follows(handled) => (
                handled,
                reached(
                    &label,
                    op,
                    "which reads them in a way the pruner does not follow",
                ),
            ),
            Outcome::Blocks(reason) => (Vec::new(), reason),
        };
        for (slot, input) in node.input.iter().enumerate() {
            if handled.contains(&slot) {
                continue;
            }
            if let Some(layout) = self.layout(input) {
                self.channels.fix(&layout, &reason);
            }
        }
    }

    /// Conv and ConvTranspose: `in_axis`/`out_axis` index input/output channels in the
    /// weight (1/0 for Conv, 0/1 for ConvTranspose).
    fn conv(
        &mut self,
        index: usize,
        node: &pb::NodeProto,
        label: &str,
        in_axis: usize,
        out_axis: usize,
    ) -> Outcome {
        let (Some(x), Some(weight), Some(output)) =
            (node.input.first(), node.input.get(1), node.output.first())
        else {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                "which lacks an input or output",
            ));
        };
        let bias = node.input.get(2).filter(|b| !b.is_empty());
        let group = node
            .get_attr_opt::<i64>("group")
            .ok()
            .flatten()
            .unwrap_or(1);
        let weights_problem = self
            .unsliceable(weight)
            .or_else(|| bias.and_then(|b| self.unsliceable(b)));
        let w_dims = match self.initializers.get(weight.as_str()) {
            Some(w) => Some(w.dims.iter().map(|&d| d as usize).collect()),
            None => self.shape(weight),
        };
        let Some(w_dims) = w_dims else {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                "whose weights have an unknown shape",
            ));
        };
        if w_dims.len() < 3 {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                "whose weights are not a filter bank",
            ));
        }
        let (w_in, w_out) = (w_dims[in_axis], w_dims[out_axis]);
        let input_layout = self.layout(x);

        if group == 1 {
            let source = Source {
                node: index,
                name: label.to_owned(),
                weight: weight.clone(),
                axis: out_axis,
            };
            let fixed = weights_problem
                .clone()
                .map(|p| format!("cannot slice its weights: {p}"));
            let space = self.channels.new_space(w_out, Some(source), fixed);
            let out = vec![Segment {
                space,
                channels: w_out,
            }];
            self.set_layout(output, out.clone());
            if let Some(problem) = weights_problem {
                return Outcome::Blocks(reached(
                    label,
                    &node.op_type,
                    &format!("whose weights cannot be sliced: {problem}"),
                ));
            }
            self.retain(weight, out_axis, &out);
            if let Some(b) = bias {
                self.retain(b, 0, &out);
            }
            if let Some(layout) = input_layout {
                self.retain(weight, in_axis, &layout);
                return Outcome::Follows(vec![0]);
            }
            return Outcome::Follows(Vec::new());
        }

        // Depthwise: one filter per channel, input and output channels in step.
        let Some(layout) = input_layout else {
            return Outcome::Follows(Vec::new());
        };
        let channels: usize = layout.iter().map(|s| s.channels).sum();
        let depthwise =
            node.op_type == "Conv" && group as usize == channels && w_out == channels && w_in == 1;
        if !depthwise {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                &format!(
                    "a grouped convolution (group {group}) whose groups would fall out of step"
                ),
            ));
        }
        if let Some(problem) = weights_problem {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                &format!("whose weights cannot be sliced: {problem}"),
            ));
        }
        self.retain(weight, 0, &layout);
        if let Some(b) = bias {
            self.retain(b, 0, &layout);
        }
        self.channels.edits.push(Edit::Group {
            node: index,
            layout: layout.clone(),
        });
        self.set_layout(output, layout);
        Outcome::Follows(vec![0])
    }

    fn batch_norm(&mut self, node: &pb::NodeProto, label: &str) -> Outcome {
        let Some(layout) = node.input.first().and_then(|x| self.layout(x)) else {
            return Outcome::Follows(Vec::new());
        };
        if node.output.iter().skip(1).any(|o| !o.is_empty()) || node.input.len() != 5 {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                "in training mode (running statistics as outputs)",
            ));
        }
        if let Some(problem) = node.input[1..].iter().find_map(|p| self.unsliceable(p)) {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                &format!("whose parameters cannot be sliced: {problem}"),
            ));
        }
        for param in &node.input[1..] {
            self.retain(param, 0, &layout);
        }
        self.set_layout(&node.output[0], layout);
        Outcome::Follows(vec![0])
    }

    fn channel_wise(&mut self, node: &pb::NodeProto, label: &str) -> Outcome {
        let Some(layout) = node.input.first().and_then(|x| self.layout(x)) else {
            return Outcome::Follows(Vec::new());
        };
        if node.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                "whose second output (indices or mask) depends on the channel count",
            ));
        }
        self.set_layout(&node.output[0], layout);
        Outcome::Follows(vec![0])
    }

    /// The values of `tensor` if it is constant (an initializer or folded by tract).
    fn constant<T: Datum + Copy>(&self, tensor: &str) -> Option<Vec<T>> {
        let value = self.model.constant(tensor)?;
        let value = value.cast_to::<T>().ok()?;
        let plain = value.try_as_plain_ram().ok()?;
        plain.as_slice::<T>().ok().map(<[T]>::to_vec)
    }

    fn resize(&mut self, node: &pb::NodeProto, label: &str) -> Outcome {
        let Some(layout) = node.input.first().and_then(|x| self.layout(x)) else {
            return Outcome::Follows(Vec::new());
        };
        let present = |slot: usize| node.input.get(slot).filter(|n| !n.is_empty());
        // Resize-11+: (X, roi, scales, sizes); Resize-10 and Upsample-9: (X, scales);
        // Upsample-7: a `scales` attribute.
        let (scales_slot, sizes_slot) = if node.op_type == "Resize" && node.input.len() >= 3 {
            (2, Some(3))
        } else {
            (1, None)
        };
        if sizes_slot.and_then(present).is_some() {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                "whose `sizes` input fixes the channel count",
            ));
        }
        let scales = match present(scales_slot) {
            Some(name) => self.constant::<f32>(name),
            None => node.get_attr_opt_vec::<f32>("scales").ok().flatten(),
        };
        if scales.as_ref().and_then(|s| s.get(1)) != Some(&1.0) {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                "which scales channels or has no constant scales",
            ));
        }
        self.set_layout(&node.output[0], layout);
        Outcome::Follows((0..node.input.len()).collect())
    }

    fn pad(&mut self, node: &pb::NodeProto, label: &str) -> Outcome {
        let Some(layout) = node.input.first().and_then(|x| self.layout(x)) else {
            return Outcome::Follows(Vec::new());
        };
        let rank = self.shape(&node.input[0]).map_or(0, |s| s.len());
        let pads: Option<Vec<i64>> = match node.input.get(1).filter(|n| !n.is_empty()) {
            Some(name) => self.constant::<i64>(name),
            None => node.get_attr_opt_vec::<i64>("pads").ok().flatten(),
        };
        let axes_given = node.input.get(3).is_some_and(|n| !n.is_empty());
        let keeps_channels = pads
            .as_ref()
            .is_some_and(|p| p.len() == 2 * rank && p[1] == 0 && p[rank + 1] == 0);
        if axes_given || !keeps_channels {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                "which pads channels or has no constant pads",
            ));
        }
        self.set_layout(&node.output[0], layout);
        Outcome::Follows((0..node.input.len()).collect())
    }

    fn elementwise(&mut self, node: &pb::NodeProto, label: &str) -> Outcome {
        let op = node.op_type.as_str();
        let operands: Vec<(usize, &String)> = node
            .input
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.is_empty())
            .collect();
        if operands.iter().all(|(_, n)| self.layout(n).is_none()) {
            return Outcome::Follows(Vec::new());
        }
        let Some(out_shape) = node.output.first().and_then(|o| self.shape(o)) else {
            return Outcome::Blocks(reached(label, op, "whose output shape is unknown"));
        };
        let rank = out_shape.len();
        if rank < 2 {
            return Outcome::Blocks(reached(label, op, "whose output has no channel axis"));
        }
        let channels = out_shape[1];
        let mut joined: Vec<Layout> = Vec::new();
        let mut constants: Vec<(&str, usize)> = Vec::new();
        let mut handled = Vec::new();
        for (slot, name) in operands {
            let Some(shape) = self.shape(name) else {
                return Outcome::Blocks(reached(
                    label,
                    op,
                    &format!("whose input `{name}` has an unknown shape"),
                ));
            };
            if let Some(layout) = self.layout(name) {
                let total: usize = layout.iter().map(|s| s.channels).sum();
                if shape.len() != rank || total != channels {
                    return Outcome::Blocks(reached(
                        label,
                        op,
                        "which broadcasts them to another shape",
                    ));
                }
                joined.push(layout);
                handled.push(slot);
                continue;
            }
            // Numpy broadcasting aligns trailing axes: the operand's channel axis, if any.
            let axis = (shape.len() + 1).checked_sub(rank);
            let extent = axis.map_or(1, |a| shape[a]);
            if extent == 1 {
                continue;
            }
            match (axis, self.unsliceable(name)) {
                (Some(a), None) => {
                    constants.push((name, a));
                    handled.push(slot);
                }
                (_, Some(problem)) if self.initializers.contains_key(name.as_str()) => {
                    return Outcome::Blocks(reached(
                        label,
                        op,
                        &format!("which combines them with a per-channel constant: {problem}"),
                    ));
                }
                _ => {
                    return Outcome::Blocks(reached(
                        label,
                        op,
                        &format!(
                            "which combines them with `{name}`, whose channels cannot be pruned"
                        ),
                    ));
                }
            }
        }
        let structure = |l: &Layout| l.iter().map(|s| s.channels).collect::<Vec<_>>();
        let first = joined[0].clone();
        if joined.iter().any(|l| structure(l) != structure(&first)) {
            return Outcome::Blocks(reached(
                label,
                op,
                "whose inputs concatenate channels in different orders",
            ));
        }
        for layout in &joined[1..] {
            for (a, b) in first.iter().zip(layout) {
                self.channels.union(a.space, b.space);
            }
        }
        for (name, axis) in constants {
            self.retain(name, axis, &first);
        }
        self.set_layout(&node.output[0], first);
        Outcome::Follows(handled)
    }

    fn concat(&mut self, node: &pb::NodeProto, label: &str) -> Outcome {
        if node.input.iter().all(|n| self.layout(n).is_none()) {
            return Outcome::Follows(Vec::new());
        }
        let rank = node
            .output
            .first()
            .and_then(|o| self.shape(o))
            .map_or(0, |s| s.len());
        let axis = node.get_attr_opt::<i64>("axis").ok().flatten().unwrap_or(0);
        let axis = if axis < 0 { axis + rank as i64 } else { axis };
        if axis != 1 {
            return Outcome::Blocks(reached(
                label,
                &node.op_type,
                &format!("which joins along axis {axis}, not channels"),
            ));
        }
        let mut layout = Layout::new();
        for name in &node.input {
            if let Some(part) = self.layout(name) {
                layout.extend(part);
                continue;
            }
            let Some(channels) = self.shape(name).and_then(|s| s.get(1).copied()) else {
                return Outcome::Blocks(reached(
                    label,
                    &node.op_type,
                    &format!("whose input `{name}` has an unknown shape"),
                ));
            };
            let space = self.channels.new_space(
                channels,
                None,
                Some(format!(
                    "concatenated with `{name}`, whose channels cannot be pruned"
                )),
            );
            layout.push(Segment { space, channels });
        }
        self.set_layout(&node.output[0], layout);
        Outcome::Follows((0..node.input.len()).collect())
    }
}
