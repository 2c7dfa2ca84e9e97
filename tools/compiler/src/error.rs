//! Everything that can stop a compile, each with a message that says what to change.

use std::path::PathBuf;

/// Why an ONNX model could not be compiled into a package.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The model file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// tract could not parse or analyse the ONNX file.
    #[error("cannot import the ONNX model: {0}")]
    Import(String),
    /// An input dim is symbolic or unknown and no `--input-shape` pinned it.
    #[error(
        "input `{input}` has an unknown dim {dim} (shape {shape}); pin it with --input-shape {input}=D0,D1,..."
    )]
    UnpinnedInput {
        /// Input name.
        input: String,
        /// Index of the dim.
        dim: usize,
        /// The shape as declared, e.g. `[N,3,H,W]`.
        shape: String,
    },
    /// `--input-shape` named an input the model does not have, or gave the wrong rank.
    #[error("--input-shape {input}: {reason}")]
    BadInputShape {
        /// Input name as given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A node uses an op Cadence cannot lower.
    #[error(
        "node `{node}`: op `{op}` is not supported by Cadence{detail}; supported ops are listed in tools/compiler/README.md"
    )]
    UnsupportedOp {
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// Extra context (`: ` prefixed), or empty.
        detail: String,
    },
    /// A node uses a supported op in a way Cadence does not support.
    #[error("node `{node}` ({op}): {reason}")]
    Unsupported {
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// What is not supported and why.
        reason: String,
    },
    /// A tensor's shape or value could not be inferred.
    #[error("tensor `{tensor}`: {reason}")]
    Inference {
        /// Tensor name.
        tensor: String,
        /// What is missing.
        reason: String,
    },
    /// Running the reference (tract) for the test vectors failed.
    #[error("reference run with tract failed: {0}")]
    Reference(String),
    /// The lowered plan failed its own validation: a compiler bug, reported as such.
    #[error("internal error: the lowered plan is invalid ({0}); please report this with the model")]
    InvalidPlan(String),
    /// The model is larger than the package format addresses (4 GiB arena or weights).
    #[error("model too large: {0}")]
    TooLarge(String),
}

/// Shorthand for compiler results.
pub type Result<T> = std::result::Result<T, CompileError>;
