//! onnxruntime as a peer in `cadence bench`: the package's embedded source ONNX in an
//! onnxruntime session, configured as the field notes measured it (one intra-op and one
//! inter-op thread, sequential execution, every graph optimisation, no spinning), so the
//! ratio compares Cadence with onnxruntime at its best on one core.
//!
//! The library is loaded at run time from `ORT_DYLIB_PATH` (the PyPI wheel's
//! `libonnxruntime.so`, which `tools/setup-onnxruntime.sh` installs): a machine without
//! it still benches Cadence and tract, and says how to get it.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use cadence_runtime::package::{Package, VectorCase};
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

/// The variable naming the library, as ort reads it.
const DYLIB_VARIABLE: &str = "ORT_DYLIB_PATH";

/// Why onnxruntime cannot be benched on this machine.
#[derive(Debug)]
pub enum Unavailable {
    /// `ORT_DYLIB_PATH` is unset or empty.
    PathUnset,
    /// The library did not load: no such file, not a shared library, not onnxruntime,
    /// or older than ort supports.
    Load(ort::LoadDynamicError),
    /// The library loaded but could not make an environment.
    Environment(ort::Error),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PathUnset => write!(f, "{DYLIB_VARIABLE} is not set"),
            Self::Load(e) => write!(f, "{e}"),
            Self::Environment(e) => write!(f, "the library cannot make an environment: {e}"),
        }?;
        write!(
            f,
            "; get the library with `export {DYLIB_VARIABLE}=\"$(bash tools/setup-onnxruntime.sh)\"`"
        )
    }
}

impl std::error::Error for Unavailable {}

/// Loads the library `ORT_DYLIB_PATH` names and makes the process's one environment.
///
/// Every failure is an [`Unavailable`], never a panic: ort panics when an API is used
/// before a library loaded, so nothing here touches ort until `init_from` has checked
/// the file opens, exports `OrtGetApiBase` and is recent enough. A relative path is made
/// absolute first, against the working directory: ort would otherwise try the
/// executable's folder first.
pub fn load() -> Result<Environment, Unavailable> {
    let path = match std::env::var_os(DYLIB_VARIABLE) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => return Err(Unavailable::PathUnset),
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    ort::init_from(&path)
        .map_err(Unavailable::Load)?
        .with_name("cadence-bench")
        .with_telemetry(false)
        .build()
        .map_err(Unavailable::Environment)
}

/// A session on a package's source ONNX with the bench inputs bound, run frame by frame.
pub struct Peer {
    session: Session,
    /// The inputs in the session's input order, made once: a frame passes them by
    /// reference, as Cadence and tract reuse theirs.
    inputs: Vec<SessionInputValue<'static>>,
}

impl Peer {
    /// A session on `pkg`'s source ONNX fed `case`'s inputs, matched to the graph's
    /// inputs by name; `None` when the package has no source ONNX embedded.
    pub fn for_package(
        environment: &Environment,
        pkg: &Package<'_>,
        case: &VectorCase<'_>,
    ) -> Result<Option<Self>> {
        let Some(onnx) = pkg.source_onnx() else {
            return Ok(None);
        };
        let session = session(environment, onnx)
            .context("onnxruntime cannot load the package's source ONNX")?;
        let package_inputs: Vec<_> = pkg.inputs().zip(case.inputs()).collect();
        let inputs = session
            .inputs()
            .iter()
            .map(|outlet| {
                let (io, data) = package_inputs
                    .iter()
                    .find(|(io, _)| io.name() == outlet.name())
                    .ok_or_else(|| {
                        anyhow!(
                            "onnxruntime: the model's input `{}` is not among the package's inputs",
                            outlet.name()
                        )
                    })?;
                let tensor = Tensor::from_array((io.shape().dims().to_vec(), data.to_vec()))
                    .with_context(|| format!("onnxruntime: input `{}`", io.name()))?;
                Ok(SessionInputValue::from(tensor))
            })
            .collect::<Result<_>>()?;
        Ok(Some(Self { session, inputs }))
    }

    /// Runs one frame; the outputs are dropped.
    pub fn run(&mut self) -> Result<()> {
        self.session
            .run(self.inputs.as_slice())
            .context("onnxruntime: run")?;
        Ok(())
    }
}

/// A session on `onnx` configured as [the module](self) says.
fn session(environment: &Environment, onnx: &[u8]) -> ort::Result<Session> {
    Session::builder(environment)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .with_parallel_execution(false)?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .with_intra_op_spinning(false)?
        .with_inter_op_spinning(false)?
        .commit_from_memory(onnx)
}
