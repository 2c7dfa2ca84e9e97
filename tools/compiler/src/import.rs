//! ONNX import: tract parses the file, pins the input shapes and runs its shape and
//! value inference. Cadence then lowers the ONNX nodes itself (see `lower`), reading
//! every tensor's shape, and the value of every tensor tract could fold to a constant
//! (initializers, and shape arithmetic such as `Shape → Gather → Concat → Reshape`).
//!
//! Lowering from the ONNX graph rather than tract's decluttered graph keeps error
//! messages in the user's terms (ONNX op and node names) and keeps Cadence's op set
//! independent of tract's internal rewrites.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, InferenceModelExt};
use tract_onnx::tract_hir::internal::DimLike;

use crate::error::{CompileError, Result};

/// One declared dim of a model input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeclaredDim {
    /// Fixed in the model.
    Fixed(usize),
    /// Named by the model (`N`, `batch`, …) or left unknown (`?`), pinned to `value`.
    Symbolic {
        /// The symbol, or `?` when the model left it blank.
        name: String,
        /// The value it was pinned to.
        value: usize,
    },
}

impl DeclaredDim {
    /// The concrete extent.
    pub fn value(&self) -> usize {
        match self {
            Self::Fixed(v) | Self::Symbolic { value: v, .. } => *v,
        }
    }
}

/// A model input after pinning.
#[derive(Clone, Debug)]
pub struct ModelInput {
    /// ONNX tensor name.
    pub name: String,
    /// Dims as declared, with their pinned values.
    pub dims: Vec<DeclaredDim>,
}

impl ModelInput {
    /// The concrete shape.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().map(DeclaredDim::value).collect()
    }
}

/// A parsed and analysed ONNX model.
pub struct Imported {
    /// The ONNX protobuf.
    pub proto: pb::ModelProto,
    /// The file's bytes, embedded in the package for the tract backend.
    pub source: Vec<u8>,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
    /// Graph inputs (initializers excluded), in declaration order.
    pub inputs: Vec<ModelInput>,
    /// Graph output names, in declaration order.
    pub outputs: Vec<String>,
    model: InferenceModel,
    outlets: HashMap<String, OutletId>,
}

impl Imported {
    /// Reads and analyses `path`, pinning input dims with `pins` (input name → shape).
    pub fn load(path: &Path, pins: &HashMap<String, Vec<usize>>) -> Result<Self> {
        let source = std::fs::read(path).map_err(|source| CompileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(source, pins)
    }

    /// As [`Imported::load`], from the file's bytes.
    pub fn from_bytes(source: Vec<u8>, pins: &HashMap<String, Vec<usize>>) -> Result<Self> {
        let sha256 = Sha256::digest(&source).into();
        let onnx = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true);
        let proto = onnx
            .proto_model_for_read(&mut source.as_slice())
            .map_err(|e| CompileError::Import(format!("{e:#}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| CompileError::Import("the file has no graph".into()))?;
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let declared: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .collect();
        for name in pins.keys() {
            if !declared.iter().any(|d| &d.name == name) {
                return Err(CompileError::BadInputShape {
                    input: name.clone(),
                    reason: format!(
                        "the model has no such input (inputs: {})",
                        declared
                            .iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        let inputs = declared
            .iter()
            .map(|d| pin_input(d, pins.get(&d.name)))
            .collect::<Result<Vec<_>>>()?;
        let outputs = graph.output.iter().map(|o| o.name.clone()).collect();

        let parsed = onnx
            .parse(&proto, None)
            .map_err(|e| CompileError::Import(format!("{e:#}")))?;
        if let Some(name) = parsed.unresolved_inputs.first() {
            return Err(CompileError::Import(format!(
                "tensor `{name}` is used but never defined"
            )));
        }
        let mut model = parsed.model;
        for (ix, input) in inputs.iter().enumerate() {
            model
                .set_input_fact(
                    ix,
                    InferenceFact::dt_shape(f32::datum_type(), input.shape()),
                )
                .map_err(|e| CompileError::Import(format!("{e:#}")))?;
        }
        model
            .analyse(false)
            .map_err(|e| CompileError::Import(format!("shape inference failed: {e:#}")))?;
        Ok(Self {
            proto,
            source,
            sha256,
            inputs,
            outputs,
            model,
            outlets: parsed.outlets_by_name,
        })
    }

    /// The ONNX nodes in file order (ONNX requires topological order).
    pub fn nodes(&self) -> &[pb::NodeProto] {
        self.proto.graph.as_ref().map_or(&[], |g| &g.node)
    }

    fn fact(&self, tensor: &str) -> Result<&InferenceFact> {
        let outlet = self
            .outlets
            .get(tensor)
            .ok_or_else(|| CompileError::Inference {
                tensor: tensor.into(),
                reason: "no such tensor in the graph".into(),
            })?;
        self.model
            .outlet_fact(*outlet)
            .map_err(|e| CompileError::Inference {
                tensor: tensor.into(),
                reason: format!("{e:#}"),
            })
    }

    /// The concrete shape of `tensor`.
    pub fn shape(&self, tensor: &str) -> Result<Vec<usize>> {
        let fact = self.fact(tensor)?;
        let unknown = || CompileError::Inference {
            tensor: tensor.into(),
            reason: format!("shape could not be inferred (got {:?})", fact.shape),
        };
        let dims = fact.shape.concretize().ok_or_else(unknown)?;
        dims.iter()
            .map(|d| d.to_usize().map_err(|_| unknown()))
            .collect()
    }

    /// The value of `tensor` if tract folded it to a constant.
    pub fn constant(&self, tensor: &str) -> Option<Arc<Tensor>> {
        self.fact(tensor).ok()?.value.concretize()
    }

    /// Whether `tensor` is a floating-point tensor (the frame path's only dtype).
    pub fn is_float(&self, tensor: &str) -> bool {
        self.fact(tensor)
            .ok()
            .and_then(|f| f.datum_type.concretize())
            .is_none_or(|dt| dt.is_float())
    }
}

fn pin_input(decl: &pb::ValueInfoProto, pin: Option<&Vec<usize>>) -> Result<ModelInput> {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as TypeValue;
    let name = decl.name.clone();
    let tensor_type = match decl.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(TypeValue::TensorType(t)) => t,
        _ => {
            return Err(CompileError::Import(format!(
                "input `{name}` is not a tensor"
            )));
        }
    };
    if tensor_type.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(CompileError::Unsupported {
            node: name,
            op: "input".into(),
            reason: "only float32 model inputs are supported".into(),
        });
    }
    let declared: Vec<Option<Value>> = tensor_type
        .shape
        .as_ref()
        .map(|s| s.dim.iter().map(|d| d.value.clone()).collect())
        .unwrap_or_default();
    if let Some(pin) = pin
        && !declared.is_empty()
        && pin.len() != declared.len()
    {
        return Err(CompileError::BadInputShape {
            input: name,
            reason: format!(
                "the model declares rank {}, {} dims were given",
                declared.len(),
                pin.len()
            ),
        });
    }
    let rank = pin.map_or(declared.len(), Vec::len);
    let shape_text = format_declared(&declared);
    let mut dims = Vec::with_capacity(rank);
    for i in 0..rank {
        let pinned = pin.map(|p| p[i]);
        let dim = match (declared.get(i).cloned().flatten(), pinned) {
            (Some(Value::DimValue(v)), None) if v > 0 => DeclaredDim::Fixed(v as usize),
            (Some(Value::DimValue(v)), Some(p)) if v > 0 => {
                if v as usize != p {
                    return Err(CompileError::BadInputShape {
                        input: name,
                        reason: format!("dim {i} is fixed to {v} in the model, {p} was given"),
                    });
                }
                DeclaredDim::Fixed(p)
            }
            (Some(Value::DimParam(sym)), Some(p)) => DeclaredDim::Symbolic {
                name: sym,
                value: p,
            },
            (_, Some(p)) => DeclaredDim::Symbolic {
                name: "?".into(),
                value: p,
            },
            (_, None) => {
                return Err(CompileError::UnpinnedInput {
                    input: name,
                    dim: i,
                    shape: shape_text,
                });
            }
        };
        dims.push(dim);
    }
    Ok(ModelInput { name, dims })
}

fn format_declared(dims: &[Option<pb::tensor_shape_proto::dimension::Value>]) -> String {
    use pb::tensor_shape_proto::dimension::Value;
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Some(Value::DimValue(v)) if *v > 0 => v.to_string(),
            Some(Value::DimParam(s)) => s.clone(),
            _ => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(","))
}
