//! A compiled model bound to the CPU backend for the life of the process.

use std::path::{Path, PathBuf};

use cadence_hal::Accelerator;
use cadence_runtime::engine::Engine;
use cadence_runtime::package::{AlignedBytes, ModelFamily, Package};

use super::{BackendFactory, PipelineError};

/// One `.cpk` package loaded into an [`Engine`] on backend `B`.
///
/// The engine borrows the package bytes (weights are used in place) and its arena for
/// as long as it lives, and a job runner lives as long as the process runs tasks. So
/// both buffers are leaked once, at load, with `Box::leak`: the engine then borrows
/// `'static` data and the runner owns it outright, with no self-referential struct and
/// no `unsafe`. The cost is that dropping a runner does not return the memory; runners
/// are built once per process (a test binary builds a handful).
pub struct Model<B> {
    /// The file it came from, for error messages and reports.
    pub path: PathBuf,
    /// The engine.
    pub engine: Engine<'static, 'static, B>,
}

impl<B: Accelerator> Model<B> {
    /// Reads and parses `path`, checks that it declares `family`, makes its backend,
    /// then leaks its bytes and a fresh arena and loads the engine. Nothing is leaked
    /// when a check fails.
    pub fn load(
        path: &Path,
        family: ModelFamily,
        backends: &impl BackendFactory<B>,
    ) -> Result<Self, PipelineError> {
        let bytes = AlignedBytes::read(path).map_err(|source| PipelineError::ReadPackage {
            path: path.to_owned(),
            source,
        })?;
        let parsed =
            Package::parse(bytes.as_slice()).map_err(|source| PipelineError::BadPackage {
                path: path.to_owned(),
                source,
            })?;
        let found = parsed.metadata().family();
        if found != family {
            return Err(PipelineError::WrongFamily {
                path: path.to_owned(),
                expected: family.name(),
                found: found.name(),
            });
        }
        let backend = backends
            .backend(&parsed)
            .map_err(|reason| PipelineError::Backend {
                path: path.to_owned(),
                reason,
            })?;
        let bytes: &'static AlignedBytes = Box::leak(Box::new(bytes));
        let package =
            Package::parse(bytes.as_slice()).map_err(|source| PipelineError::BadPackage {
                path: path.to_owned(),
                source,
            })?;
        let arena = Box::leak(Box::new(AlignedBytes::zeroed(package.arena_bytes())));
        let engine = Engine::load(&package, backend, arena.as_mut_slice()).map_err(|source| {
            PipelineError::Engine {
                path: path.to_owned(),
                source: Box::new(source),
            }
        })?;
        Ok(Self {
            path: path.to_owned(),
            engine,
        })
    }

    /// Index of input `name`, or the error naming the package and what it lacks.
    pub fn input(&self, name: &str) -> Result<usize, PipelineError> {
        self.engine
            .input_index(name)
            .ok_or_else(|| self.mismatch(format!("it has no input `{name}`")))
    }

    /// Index of output `name`, or the error naming the package and what it lacks.
    pub fn output(&self, name: &str) -> Result<usize, PipelineError> {
        self.engine
            .output_index(name)
            .ok_or_else(|| self.mismatch(format!("it has no output `{name}`")))
    }

    /// Dimensions of input `index`.
    pub fn input_dims(&self, index: usize) -> Vec<usize> {
        self.engine
            .package()
            .input(index)
            .map_or_else(Vec::new, |io| io.shape().dims().to_vec())
    }

    /// Dimensions of output `index`.
    pub fn output_dims(&self, index: usize) -> Vec<usize> {
        self.engine
            .package()
            .output(index)
            .map_or_else(Vec::new, |io| io.shape().dims().to_vec())
    }

    /// A [`PipelineError::Interface`] about this package.
    pub fn mismatch(&self, reason: String) -> PipelineError {
        PipelineError::Interface {
            path: self.path.clone(),
            reason,
        }
    }
}
