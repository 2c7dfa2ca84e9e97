//! Placeholder packages: a valid package for a [`ProblemSpec`] before any model exists,
//! so that the pipeline around a model can be integrated first.
//!
//! What a placeholder computes, for each output `o`:
//!
//! ```text
//! o = W_o + COUPLING * (mean(input_0) + mean(input_1) + ...)
//! ```
//!
//! `W_o` is a constant of `o`'s shape, uniform in `[0, 1)`, from a generator seeded by
//! the spec's name and the output's name: the same spec gives the same outputs on every
//! machine and every build. The small input term makes every frame read its inputs, so
//! a frame whose inputs never arrived is told apart from one whose did. The model is
//! built as ONNX and compiled like any other, so a placeholder carries test vectors
//! (from tract) and passes `cadence selftest`.

use std::collections::HashMap;

use cadence_hal::DType;
use cadence_runtime::package::builder::MetadataDecl;

use crate::onnx_build::{Attr, InputDim, OnnxBuilder};
use crate::spec::{ProblemSpec, SpecDim, TensorSpec};
use crate::{CompileError, CompileOptions, Compiled, SplitMix64, compile_bytes};

/// How strongly a placeholder's outputs follow its inputs' means (see the module docs).
pub const COUPLING: f32 = 1.0 / 1024.0;

/// Why a placeholder could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PlaceholderError {
    /// A symbol has no size: neither `--dim` nor the spec's `value` gives one.
    #[error(
        "symbol `{0}` has no size; pass --dim {0}=N or give it a `value` under [dims] in the spec"
    )]
    UnboundDim(String),
    /// The spec has no inputs or no outputs.
    #[error("the spec `{0}` needs at least one input and one output")]
    Empty(String),
    /// `--dim` names a symbol the spec does not declare.
    #[error("--dim {0}: the spec declares no symbol `{0}`")]
    UnknownDim(String),
    /// A tensor is not `f32`, the only element type the compiler emits.
    #[error("{role} `{name}` is {dtype}; placeholders are built for f32 tensors only")]
    UnsupportedDType {
        /// `input` or `output`.
        role: &'static str,
        /// The tensor.
        name: String,
        /// Its element type.
        dtype: DType,
    },
    /// Compiling the generated model failed.
    #[error("compiling the placeholder model: {0}")]
    Compile(#[from] CompileError),
}

/// Builds a placeholder package for `spec`. `dims` sizes the symbols; a symbol not in
/// it takes the spec's `value`. `options` sets test cases, tolerance and NaN policy;
/// its input shapes and metadata are set here.
pub fn placeholder(
    spec: &ProblemSpec,
    dims: &HashMap<String, usize>,
    options: &CompileOptions,
) -> Result<Compiled, PlaceholderError> {
    if spec.inputs.is_empty() || spec.outputs.is_empty() {
        return Err(PlaceholderError::Empty(spec.name.clone()));
    }
    if let Some(unknown) = dims.keys().find(|name| spec.symbol(name).is_none()) {
        return Err(PlaceholderError::UnknownDim(unknown.clone()));
    }
    for (role, tensors) in [("input", &spec.inputs), ("output", &spec.outputs)] {
        if let Some(t) = tensors.iter().find(|t| t.dtype != DType::F32) {
            return Err(PlaceholderError::UnsupportedDType {
                role,
                name: t.name.clone(),
                dtype: t.dtype,
            });
        }
    }
    let size = |dim: &SpecDim| match dim {
        SpecDim::Fixed(size) => Ok(*size),
        SpecDim::Symbol(name) => dims
            .get(name)
            .copied()
            .or_else(|| spec.symbol(name).and_then(|s| s.value))
            .ok_or_else(|| PlaceholderError::UnboundDim(name.clone())),
    };
    let shape = |t: &TensorSpec| t.shape.iter().map(size).collect::<Result<Vec<_>, _>>();

    let mut model = OnnxBuilder::new().initializer_i64(&internal("flat"), vec![-1]);
    let mut input_shapes = HashMap::new();
    let mut total: Option<String> = None;
    for (index, input) in spec.inputs.iter().enumerate() {
        let declared: Vec<InputDim> = input
            .shape
            .iter()
            .map(|d| match d {
                SpecDim::Fixed(size) => InputDim::Fixed(*size),
                SpecDim::Symbol(name) => InputDim::Symbol(name.clone()),
            })
            .collect();
        input_shapes.insert(input.name.clone(), shape(input)?);
        let (flat, mean) = (
            internal(&format!("flat{index}")),
            internal(&format!("mean{index}")),
        );
        model = model
            .input_dims(&input.name, &declared)
            .node("Reshape", &[&input.name, &internal("flat")], &[&flat], &[])
            .node(
                "ReduceMean",
                &[&flat],
                &[&mean],
                &[("axes", Attr::Ints(vec![0])), ("keepdims", Attr::Int(1))],
            );
        total = Some(match total {
            None => mean,
            Some(sum) => {
                let next = internal(&format!("sum{index}"));
                model = model.node("Add", &[&sum, &mean], &[&next], &[]);
                next
            }
        });
    }
    let total = total.ok_or_else(|| PlaceholderError::Empty(spec.name.clone()))?;
    let coupled = internal("coupled");
    model = model
        .initializer(&internal("coupling"), &[1], vec![COUPLING])
        .node("Mul", &[&total, &internal("coupling")], &[&coupled], &[]);
    for output in &spec.outputs {
        let shape = shape(output)?;
        let mut rng = SplitMix64(seed(&spec.name, &output.name));
        let constant = (0..shape.iter().product())
            .map(|_| rng.next_f32())
            .collect();
        let weights = internal(&format!("{}_values", output.name));
        model = model
            .initializer(&weights, &shape, constant)
            .node("Add", &[&weights, &coupled], &[&output.name], &[])
            .output(&output.name);
    }

    let options = CompileOptions {
        input_shapes,
        test_inputs: HashMap::new(),
        metadata: MetadataDecl {
            pairs: vec![("placeholder-for".into(), spec.name.clone())],
            ..MetadataDecl::default()
        },
        ..options.clone()
    };
    let name = format!("placeholder:{}", spec.name);
    Ok(compile_bytes(model.to_bytes(), &name, &options)?)
}

/// A name for a generated tensor that cannot clash with a spec's names.
fn internal(name: &str) -> String {
    format!("__placeholder_{name}")
}

/// FNV-1a of the spec's and the output's names: a seed that depends on nothing else.
fn seed(spec: &str, output: &str) -> u64 {
    [spec.as_bytes(), b"\0", output.as_bytes()]
        .concat()
        .iter()
        .fold(0xCBF2_9CE4_8422_2325, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3)
        })
}
