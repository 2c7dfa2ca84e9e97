//! Structured channel pruning on the ONNX graph itself: whole output channels of convs
//! are removed, and everything that reads them is cut to match, so the result is a
//! smaller ONNX model any runtime loads (not a mask, not a Cadence-only format).
//!
//! 1. The channel analysis finds the channel groups: a conv's output channels and
//!    everything that must stay aligned with them (the following BatchNormalization,
//!    activations, depthwise convs, both sides of a residual `Add` or a squeeze-excite
//!    `Mul`, the consumers' input channels, segments of a channel `Concat`), and the
//!    groups that must stay whole because their channels reach something whose meaning
//!    depends on the channel count (a graph output, a Reshape, a Transpose, ...).
//! 2. Each prunable group removes `round(ratio × channels)` channels (at least one
//!    kept, or a multiple from the per-layer rules), keeping those whose filters have the
//!    largest L1 norm summed over every conv that writes the group.
//! 3. The recorded edits slice the initializers and set depthwise `group` attributes;
//!    the result is re-imported with tract and must keep every output's shape.

mod channels;
mod error;
mod per_layer;
mod weights;

use std::collections::HashMap;

use prost::Message;
use tract_onnx::pb;

use self::channels::{Channels, Edit, Group, Layout, SpaceId};
pub use self::error::PruneError;
pub use self::per_layer::{LayerRule, PerLayer};
use crate::import::Imported;

/// How to prune.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Fraction of each group's channels to remove, in `[0, 1)`.
    pub ratio: f64,
    /// Rules by conv name that override `ratio` for their group.
    pub per_layer: PerLayer,
    /// Input shapes to pin (needed for symbolic or unknown dims).
    pub input_shapes: HashMap<String, Vec<usize>>,
}

/// A channel group that lost channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrunedGroup {
    /// The first conv (in graph order) that writes the group.
    pub leader: String,
    /// Every conv that writes the group, leader first.
    pub convs: Vec<String>,
    /// Channels before.
    pub channels: usize,
    /// Channels kept.
    pub kept: usize,
}

/// A channel group left whole, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotPruned {
    /// The first conv (in graph order) that writes the group.
    pub layer: String,
    /// Every conv that writes the group, leader first.
    pub convs: Vec<String>,
    /// Why it keeps every channel.
    pub reason: String,
}

/// The pruned model and what was done to it.
#[derive(Clone, Debug)]
pub struct Pruned {
    /// The pruned model, serialised.
    pub onnx: Vec<u8>,
    /// Groups that lost channels, in graph order.
    pub pruned: Vec<PrunedGroup>,
    /// Groups left whole, in graph order.
    pub not_pruned: Vec<NotPruned>,
}

/// Prunes the ONNX model `onnx`.
pub fn prune(onnx: &[u8], options: &PruneOptions) -> Result<Pruned, PruneError> {
    if !(0.0..1.0).contains(&options.ratio) {
        return Err(PruneError::BadRatio {
            ratio: options.ratio,
            what: "the global ratio".into(),
        });
    }
    let original =
        Imported::from_bytes(onnx.to_vec(), &options.input_shapes).map_err(PruneError::Import)?;
    let mut model = original.proto.clone();
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| PruneError::InvalidResult("the model has no graph".into()))?;
    hoist_constants(graph);
    let channels = Channels::analyse(graph, &original);
    let groups = channels.groups();
    let rules = rules_by_group(&groups, &options.per_layer)?;

    let mut keep: HashMap<SpaceId, Vec<usize>> = HashMap::new();
    let mut pruned = Vec::new();
    let mut not_pruned = Vec::new();
    for (group, rule) in groups.iter().zip(rules) {
        let convs: Vec<String> = group.sources.iter().map(|s| s.name.clone()).collect();
        let leader = convs[0].clone();
        let reason = match (&group.fixed, rule) {
            (Some(reason), _) => Some(reason.clone()),
            (None, LayerRule::Skip) => Some("skipped by the per-layer rules".into()),
            (None, LayerRule::Prune { ratio, multiple_of }) => {
                let ratio = ratio.unwrap_or(options.ratio);
                let kept = kept_count(group.channels, ratio, multiple_of);
                if kept < group.channels {
                    keep.insert(group.root, strongest(graph, group, kept));
                    pruned.push(PrunedGroup {
                        leader: leader.clone(),
                        convs: convs.clone(),
                        channels: group.channels,
                        kept,
                    });
                    None
                } else {
                    Some(format!(
                        "ratio {ratio} removes none of its {} channels",
                        group.channels
                    ))
                }
            }
        };
        if let Some(reason) = reason {
            not_pruned.push(NotPruned {
                layer: leader,
                convs,
                reason,
            });
        }
    }
    if pruned.is_empty() {
        return Err(PruneError::NothingPrunable(not_pruned));
    }

    apply(graph, &channels, &keep);
    let onnx = model.encode_to_vec();
    check_outputs(&original, &onnx, &options.input_shapes)?;
    Ok(Pruned {
        onnx,
        pruned,
        not_pruned,
    })
}

/// Turns `Constant` nodes that hold a float tensor into initializers of the same name
/// (some exporters, Paddle's among them, store every weight that way), so weights are
/// found and sliced in one place. The model computes the same thing.
fn hoist_constants(graph: &mut pb::GraphProto) {
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut hoisted = Vec::new();
    graph.node.retain(|node| {
        let value = node
            .attribute
            .iter()
            .find(|a| a.name == "value")
            .and_then(|a| a.t.as_ref());
        match (node.op_type.as_str(), value, node.output.first()) {
            ("Constant", Some(tensor), Some(name))
                if weights::is_editable(tensor) && !outputs.contains(name) =>
            {
                hoisted.push(pb::TensorProto {
                    name: name.clone(),
                    ..tensor.clone()
                });
                false
            }
            _ => true,
        }
    });
    graph.initializer.extend(hoisted);
}

/// The rule for each group (the global ratio where no entry names one of its convs).
fn rules_by_group(groups: &[Group], per_layer: &PerLayer) -> Result<Vec<LayerRule>, PruneError> {
    let global = LayerRule::Prune {
        ratio: None,
        multiple_of: 1,
    };
    let mut rules = vec![(global, None::<&str>); groups.len()];
    for (name, rule) in &per_layer.rules {
        let group = groups
            .iter()
            .position(|g| g.sources.iter().any(|s| &s.name == name))
            .ok_or_else(|| PruneError::UnknownLayer {
                name: name.clone(),
                known: groups
                    .iter()
                    .flat_map(|g| g.sources.iter().map(|s| s.name.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if let (earlier, Some(first)) = rules[group]
            && earlier != *rule
        {
            return Err(PruneError::ConflictingRules {
                first: first.to_owned(),
                second: name.clone(),
            });
        }
        rules[group] = (*rule, Some(name));
    }
    Ok(rules.into_iter().map(|(rule, _)| rule).collect())
}

/// Channels kept out of `channels` when removing `round(ratio × channels)`: at least
/// one, rounded up to a multiple of `multiple_of`, never more than there are.
fn kept_count(channels: usize, ratio: f64, multiple_of: usize) -> usize {
    let removed = (ratio * channels as f64).round() as usize;
    let kept = channels.saturating_sub(removed).max(1);
    kept.next_multiple_of(multiple_of.max(1)).min(channels)
}

/// The `kept` channels of `group` whose filters have the largest L1 norm summed over
/// every conv that writes the group, in ascending order.
fn strongest(graph: &pb::GraphProto, group: &Group, kept: usize) -> Vec<usize> {
    let mut score = vec![0.0f64; group.channels];
    for source in &group.sources {
        let weight = graph
            .initializer
            .iter()
            .find(|t| t.name == source.weight)
            .expect("the analysis only records sources with initializer weights");
        for (total, norm) in score
            .iter_mut()
            .zip(weights::channel_l1(weight, source.axis))
        {
            *total += norm;
        }
    }
    let mut order: Vec<usize> = (0..group.channels).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    order.truncate(kept);
    order.sort_unstable();
    order
}

/// The kept indices along a tensor's channel axis with `layout`, or `None` when every
/// channel stays.
fn kept_indices(
    layout: &Layout,
    channels: &Channels,
    keep: &HashMap<SpaceId, Vec<usize>>,
) -> Option<Vec<usize>> {
    let mut indices = Vec::new();
    let mut offset = 0;
    let mut removed = false;
    for segment in layout {
        match keep.get(&channels.root(segment.space)) {
            Some(kept) => {
                indices.extend(kept.iter().map(|&k| k + offset));
                removed = true;
            }
            None => indices.extend(offset..offset + segment.channels),
        }
        offset += segment.channels;
    }
    removed.then_some(indices)
}

/// Applies the analysis' edits for the chosen kept channels.
fn apply(graph: &mut pb::GraphProto, channels: &Channels, keep: &HashMap<SpaceId, Vec<usize>>) {
    for edit in &channels.edits {
        match edit {
            Edit::Retain {
                initializer,
                axis,
                layout,
            } => {
                let Some(indices) = kept_indices(layout, channels, keep) else {
                    continue;
                };
                let tensor = graph
                    .initializer
                    .iter_mut()
                    .find(|t| &t.name == initializer)
                    .expect("the analysis only records edits of initializers");
                weights::retain_along(tensor, *axis, &indices);
                let dims = tensor.dims.clone();
                // Old exporters also list initializers as graph inputs, with their shape.
                if let Some(input) = graph.input.iter_mut().find(|i| &i.name == initializer) {
                    set_declared_dims(input, &dims);
                }
            }
            Edit::Group { node, layout } => {
                let Some(indices) = kept_indices(layout, channels, keep) else {
                    continue;
                };
                if let Some(group) = graph.node[*node]
                    .attribute
                    .iter_mut()
                    .find(|a| a.name == "group")
                {
                    group.i = indices.len() as i64;
                }
            }
        }
    }
    // Declared shapes of intermediate tensors whose channels changed are now wrong.
    graph.value_info.retain(|info| {
        channels
            .layouts
            .get(&info.name)
            .is_none_or(|layout| kept_indices(layout, channels, keep).is_none())
    });
}

fn set_declared_dims(info: &mut pb::ValueInfoProto, dims: &[i64]) {
    use pb::tensor_shape_proto::{Dimension, dimension};
    if let Some(pb::type_proto::Value::TensorType(t)) =
        info.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = Some(pb::TensorShapeProto {
            dim: dims
                .iter()
                .map(|&d| Dimension {
                    value: Some(dimension::Value::DimValue(d)),
                    ..Default::default()
                })
                .collect(),
        });
    }
}

/// The pruned model must load in tract and keep every output's shape.
fn check_outputs(
    original: &Imported,
    pruned: &[u8],
    pins: &HashMap<String, Vec<usize>>,
) -> Result<(), PruneError> {
    let reloaded = Imported::from_bytes(pruned.to_vec(), pins)
        .map_err(|e| PruneError::InvalidResult(format!("tract cannot load it: {e}")))?;
    for output in &original.outputs {
        let before = original.shape(output).map_err(PruneError::Import)?;
        let after = reloaded
            .shape(output)
            .map_err(|e| PruneError::InvalidResult(e.to_string()))?;
        if before != after {
            return Err(PruneError::InvalidResult(format!(
                "output `{output}` changed shape from {before:?} to {after:?}"
            )));
        }
    }
    Ok(())
}
