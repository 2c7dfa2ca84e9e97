//! Building small ONNX models in memory: one-op models to test every lowering against
//! tract, and crafted models (an unsupported op, a symbolic batch) for error paths.

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};

/// An ONNX attribute value.
#[derive(Clone, Debug)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
    /// `STRING`.
    Str(String),
}

/// One dim of a declared input: fixed or symbolic.
#[derive(Clone, Debug)]
pub enum InputDim {
    /// A fixed extent.
    Fixed(usize),
    /// A named symbolic extent.
    Symbol(String),
}

/// A model under construction (opset 17, one graph).
#[derive(Clone, Debug, Default)]
pub struct OnnxBuilder {
    graph: pb::GraphProto,
    opset: i64,
}

fn value_info(name: &str, dims: &[InputDim]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                InputDim::Fixed(v) => dimension::Value::DimValue(*v as i64),
                InputDim::Symbol(s) => dimension::Value::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl OnnxBuilder {
    /// An empty model at opset 17.
    pub fn new() -> Self {
        Self {
            graph: pb::GraphProto {
                name: "cadence-test".into(),
                ..Default::default()
            },
            opset: 17,
        }
    }

    /// Sets the default-domain opset.
    pub fn opset(mut self, version: i64) -> Self {
        self.opset = version;
        self
    }

    /// Declares a float input with fixed dims.
    pub fn input(self, name: &str, shape: &[usize]) -> Self {
        let dims: Vec<InputDim> = shape.iter().map(|&d| InputDim::Fixed(d)).collect();
        self.input_dims(name, &dims)
    }

    /// Declares a float input with fixed or symbolic dims.
    pub fn input_dims(mut self, name: &str, dims: &[InputDim]) -> Self {
        self.graph.input.push(value_info(name, dims));
        self
    }

    /// Declares an output (shape left to inference).
    pub fn output(mut self, name: &str) -> Self {
        self.graph.output.push(value_info(name, &[]));
        self.graph.output.last_mut().expect("just pushed").r#type = None;
        self
    }

    /// Adds a float initializer.
    pub fn initializer(mut self, name: &str, shape: &[usize], data: Vec<f32>) -> Self {
        self.graph.initializer.push(pb::TensorProto {
            name: name.into(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: data,
            ..Default::default()
        });
        self
    }

    /// Adds an int64 initializer (shapes, axes, pads).
    pub fn initializer_i64(mut self, name: &str, data: Vec<i64>) -> Self {
        self.graph.initializer.push(pb::TensorProto {
            name: name.into(),
            dims: vec![data.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: data,
            ..Default::default()
        });
        self
    }

    /// Adds a node.
    pub fn node(
        mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: &[(&str, Attr)],
    ) -> Self {
        let attribute = attrs
            .iter()
            .map(|(name, value)| {
                let mut a = pb::AttributeProto {
                    name: (*name).into(),
                    ..Default::default()
                };
                match value {
                    Attr::Int(i) => {
                        a.r#type = AttributeType::Int as i32;
                        a.i = *i;
                    }
                    Attr::Ints(v) => {
                        a.r#type = AttributeType::Ints as i32;
                        a.ints = v.clone();
                    }
                    Attr::Float(f) => {
                        a.r#type = AttributeType::Float as i32;
                        a.f = *f;
                    }
                    Attr::Str(s) => {
                        a.r#type = AttributeType::String as i32;
                        a.s = s.as_bytes().to_vec();
                    }
                }
                a
            })
            .collect();
        self.graph.node.push(pb::NodeProto {
            name: format!("{op}_{}", self.graph.node.len()),
            op_type: op.into(),
            input: inputs.iter().map(|s| (*s).into()).collect(),
            output: outputs.iter().map(|s| (*s).into()).collect(),
            attribute,
            ..Default::default()
        });
        self
    }

    /// The serialised model.
    pub fn to_bytes(&self) -> Vec<u8> {
        pb::ModelProto {
            ir_version: 8,
            producer_name: "cadence".into(),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
        .encode_to_vec()
    }
}
