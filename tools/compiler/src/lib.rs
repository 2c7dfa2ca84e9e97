//! The Cadence compiler: an ONNX model in, one `.cpk` package out.
//!
//! Pipeline: [`import`] (tract parses, pins input shapes, infers shapes and folds
//! constants) → [`lower`] (ONNX nodes to Cadence ops) → [`fuse`] (BatchNorm and
//! activations into convs, dead code out) → [`emit`] (memory plan, tensor and step
//! tables, validated) → test vectors from the [`reference`](mod@reference) → a
//! [`PackageBuilder`].
//!
//! Beside the pipeline: [`spec`] reads problem specs (the tensors a task's model must
//! take and give back) and checks packages against them; [`placeholder`] builds a
//! package that implements a spec before any model exists.

pub mod emit;
pub mod error;
pub mod fuse;
pub mod graph;
pub mod import;
pub mod lower;
pub mod onnx_build;
pub mod placeholder;
pub mod planner;
pub mod prune;
pub mod reference;
pub mod spec;

use std::collections::HashMap;
use std::path::Path;

use cadence_hal::DType;
use cadence_runtime::package::builder::{
    DimDecl, IoDecl, MetadataDecl, PackageBuilder, ProvenanceDecl, TestCase,
};
use cadence_runtime::package::{NanPolicy, Tolerance};
use zerocopy::IntoBytes;

pub use error::{CompileError, Result};

use crate::import::{DeclaredDim, Imported};

/// The compiler's version, recorded in every package.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the compiler was built from.
pub const GIT_COMMIT: &str = env!("CADENCE_GIT_COMMIT");

/// How to compile.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Input shapes to pin (needed for symbolic or unknown dims).
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Real input data for the first test case (e.g. a sample frame), by input name;
    /// inputs not given are filled with seeded pseudo-random values.
    pub test_inputs: HashMap<String, Vec<f32>>,
    /// How many test cases to record.
    pub test_cases: usize,
    /// Seed of the pseudo-random test inputs.
    pub seed: u64,
    /// Whether to embed the source ONNX (the tract backend needs it).
    pub embed_source: bool,
    /// The self-test tolerance recorded in the package.
    pub tolerance: Tolerance,
    /// What inputs do with NaN/Inf.
    pub nan_policy: NanPolicy,
    /// Family and pre-processing to declare.
    pub metadata: MetadataDecl,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            input_shapes: HashMap::new(),
            test_inputs: HashMap::new(),
            test_cases: 2,
            seed: 0x00CA_DE4C,
            embed_source: true,
            tolerance: Tolerance {
                abs: 1e-4,
                rel: 1e-3,
            },
            nan_policy: NanPolicy::Reject,
            metadata: MetadataDecl::default(),
        }
    }
}

/// What the compiler produced and what a user wants to know about it.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The package contents.
    pub package: PackageBuilder,
    /// Steps in the plan.
    pub steps: usize,
}

/// Compiles the ONNX file at `path`.
pub fn compile(path: &Path, options: &CompileOptions) -> Result<Compiled> {
    let model = Imported::load(path, &options.input_shapes)?;
    let name = path
        .file_name()
        .map_or_else(|| "model.onnx".into(), |n| n.to_string_lossy().into_owned());
    compile_imported(&model, &name, options)
}

/// Compiles an ONNX model held in memory; `name` is recorded as its source file name.
pub fn compile_bytes(onnx: Vec<u8>, name: &str, options: &CompileOptions) -> Result<Compiled> {
    let model = Imported::from_bytes(onnx, &options.input_shapes)?;
    compile_imported(&model, name, options)
}

fn compile_imported(model: &Imported, name: &str, options: &CompileOptions) -> Result<Compiled> {
    let mut graph = lower::lower(model)?;
    fuse::optimise(&mut graph);
    let plan = emit::emit(&graph)?;

    let shapes: Vec<Vec<usize>> = model.inputs.iter().map(|i| i.shape()).collect();
    let reference = reference::Reference::new(&model.source, &shapes)?;
    let mut rng = SplitMix64(options.seed);
    let mut test_cases = Vec::with_capacity(options.test_cases);
    for case in 0..options.test_cases {
        let inputs: Vec<Vec<f32>> = model
            .inputs
            .iter()
            .zip(&shapes)
            .map(
                |(input, shape)| match options.test_inputs.get(&input.name) {
                    Some(data) if case == 0 => data.clone(),
                    _ => (0..shape.iter().product())
                        .map(|_| rng.next_f32() * 2.0 - 1.0)
                        .collect(),
                },
            )
            .collect();
        let outputs = reference.run(&inputs)?;
        test_cases.push(TestCase { inputs, outputs });
    }

    let decl = |name: &str, dims: Vec<DimDecl>, tensor: u32| IoDecl {
        name: name.to_owned(),
        dtype: DType::F32,
        dims,
        tensor,
        nan_policy: options.nan_policy,
    };
    let inputs = model
        .inputs
        .iter()
        .zip(&plan.input_tensors)
        .map(|(input, &tensor)| {
            let dims = input
                .dims
                .iter()
                .map(|d| match d {
                    DeclaredDim::Fixed(v) => DimDecl::Fixed(*v as u32),
                    DeclaredDim::Symbolic { name, value } => DimDecl::Symbolic {
                        name: name.clone(),
                        value: *value as u32,
                    },
                })
                .collect();
            decl(&input.name, dims, tensor)
        })
        .collect();
    let outputs = model
        .outputs
        .iter()
        .zip(&graph.outputs)
        .zip(&plan.output_tensors)
        .map(|((name, &value), &tensor)| {
            let dims = graph.values[value]
                .shape
                .iter()
                .map(|&d| DimDecl::Fixed(d as u32))
                .collect();
            decl(name, dims, tensor)
        })
        .collect();

    let too_large = |what: &str| CompileError::TooLarge(format!("{what} exceeds 4 GiB"));
    let package = PackageBuilder {
        inputs,
        outputs,
        tensors: plan.tensors.clone(),
        steps: plan.steps.clone(),
        step_names: plan.step_names.clone(),
        arena_bytes: u32::try_from(plan.arena_bytes).map_err(|_| too_large("the arena"))?,
        arena_lower_bound_bytes: u32::try_from(plan.arena_lower_bound_bytes)
            .map_err(|_| too_large("the arena"))?,
        weights: plan.weights.as_bytes().to_vec(),
        test_cases,
        tolerance: options.tolerance,
        provenance: ProvenanceDecl {
            source_sha256: model.sha256,
            source_name: name.to_owned(),
            compiler_version: VERSION.to_owned(),
            git_commit: GIT_COMMIT.to_owned(),
            created_unix: creation_time(),
            macs: plan.macs,
            parameters: plan.params,
        },
        metadata: options.metadata.clone(),
        source_onnx: options.embed_source.then(|| model.source.clone()),
    };
    Ok(Compiled {
        steps: plan.steps.len(),
        package,
    })
}

/// Creation time for provenance: `SOURCE_DATE_EPOCH` when set (reproducible builds),
/// else now.
fn creation_time() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

/// A tiny seeded generator for test inputs: reproducible across platforms, no
/// dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}
