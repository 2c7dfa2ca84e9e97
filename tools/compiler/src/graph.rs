//! Cadence's compile-time graph: values (inputs, computed activations, constants and
//! aliases) and nodes that are already Cadence ops. Lowering builds it, fusion rewrites
//! it, the planner turns it into a plan.

use cadence_hal::Op;

/// Index of a [`Value`] in [`Graph::values`].
pub type ValueId = usize;

/// Where a value's data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// The model input with this index.
    Input(usize),
    /// Written by one or more nodes (several for a concat).
    Computed,
    /// Known at compile time: stored in the weights section.
    Const(Vec<f32>),
    /// The same bytes as another value, seen with another shape (reshape, squeeze …).
    Alias(ValueId),
}

/// A tensor of the graph.
#[derive(Clone, Debug)]
pub struct Value {
    /// The ONNX tensor name it came from (or a derived name).
    pub name: String,
    /// Concrete shape.
    pub shape: Vec<usize>,
    /// Data source.
    pub kind: ValueKind,
}

impl Value {
    /// Element count.
    pub fn volume(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One Cadence op applied to values.
#[derive(Clone, Debug)]
pub struct Node {
    /// The ONNX node it was lowered from.
    pub name: String,
    /// The op.
    pub op: Op,
    /// Input values, in the op's slot order.
    pub inputs: Vec<ValueId>,
    /// The value it writes.
    pub output: ValueId,
}

/// A model as Cadence ops.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// All values.
    pub values: Vec<Value>,
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
    /// Model inputs, by input index.
    pub inputs: Vec<ValueId>,
    /// Model outputs, in declaration order.
    pub outputs: Vec<ValueId>,
}

impl Graph {
    /// Adds a value and returns its id.
    pub fn add_value(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        kind: ValueKind,
    ) -> ValueId {
        self.values.push(Value {
            name: name.into(),
            shape,
            kind,
        });
        self.values.len() - 1
    }

    /// Appends a node writing `output`.
    pub fn add_node(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, output: ValueId) {
        self.nodes.push(Node {
            name: name.to_owned(),
            op,
            inputs,
            output,
        });
    }

    /// Follows aliases to the value that owns the bytes.
    pub fn root(&self, mut id: ValueId) -> ValueId {
        while let ValueKind::Alias(of) = self.values[id].kind {
            id = of;
        }
        id
    }

    /// The constant data of `id` (through aliases), if it is a constant.
    pub fn const_data(&self, id: ValueId) -> Option<&[f32]> {
        match &self.values[self.root(id)].kind {
            ValueKind::Const(data) => Some(data),
            _ => None,
        }
    }

    /// A view of `id` with another shape: a new constant for constants, an alias
    /// otherwise.
    pub fn reshape(&mut self, id: ValueId, name: impl Into<String>, shape: Vec<usize>) -> ValueId {
        let kind = match self.const_data(id) {
            Some(data) => ValueKind::Const(data.to_vec()),
            None => ValueKind::Alias(id),
        };
        self.add_value(name, shape, kind)
    }

    /// How many node inputs and model outputs read `id` or an alias of it.
    pub fn readers(&self, id: ValueId) -> usize {
        let by_nodes = self
            .nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .filter(|&&i| self.root(i) == id || i == id)
            .count();
        let by_outputs = self
            .outputs
            .iter()
            .filter(|&&o| self.root(o) == id || o == id)
            .count();
        by_nodes + by_outputs
    }
}
