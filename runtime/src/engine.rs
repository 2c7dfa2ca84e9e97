//! The [`Engine`]: one package, one backend and one caller-owned arena, running frames.
//!
//! Everything that can be checked is checked once, in [`Engine::load`]; after that a
//! frame (`set_input`, `run`, `output`) touches no heap and takes no lock, so it has
//! the same cost every time and runs on a firmware with no allocator. The arena is
//! the caller's: a `static` on firmware, an `AlignedBytes` on a host.

use core::fmt;

use cadence_hal::plan::TENSOR_ALIGN;
use cadence_hal::{
    Accelerator, BackendError, Clock, DType, MAX_RANK, Plan, PlanError, Shape, StepTiming,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::package::{IoSpec, NanPolicy, Package, Tolerance};

/// Longest input or output name kept in an [`EngineError`]; longer names are cut.
pub const MAX_NAME_LEN: usize = 64;
/// Most outputs one [`SelftestReport`] covers.
pub const MAX_SELFTEST_OUTPUTS: usize = 16;

/// A name held inline, so building an error never allocates.
pub type Name = heapless::String<MAX_NAME_LEN>;

fn name(s: &str) -> Name {
    let mut out = Name::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// A tensor handed over by a caller, in any dtype, so the engine can refuse a wrong
/// one precisely instead of reinterpreting its bytes.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'t> {
    /// Element type of `bytes`.
    pub dtype: DType,
    /// Dims, outermost first.
    pub shape: &'t [usize],
    /// Row-major elements, native byte order.
    pub bytes: &'t [u8],
}

impl<'t> TensorView<'t> {
    /// A view of `f32` data.
    pub fn f32(shape: &'t [usize], data: &'t [f32]) -> Self {
        Self {
            dtype: DType::F32,
            shape,
            bytes: data.as_bytes(),
        }
    }
}

/// Why the engine refused to load or to run a frame. Loading errors are final; frame
/// errors leave the engine ready for the next frame.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineError {
    /// The package's plan does not validate.
    InvalidPlan(PlanError),
    /// The arena is smaller than the plan needs.
    ArenaTooSmall {
        /// Bytes the plan needs.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// The arena does not start on a [`TENSOR_ALIGN`] boundary.
    MisalignedArena,
    /// The backend failed to prepare or to run.
    Backend(BackendError),
    /// No input has this name.
    UnknownInput {
        /// The name asked for.
        name: Name,
    },
    /// No output has this name.
    UnknownOutput {
        /// The name asked for.
        name: Name,
    },
    /// An input index past the last input.
    NoSuchInput {
        /// The index asked for.
        index: usize,
        /// Inputs the model has.
        count: usize,
    },
    /// An output index past the last output.
    NoSuchOutput {
        /// The index asked for.
        index: usize,
        /// Outputs the model has.
        count: usize,
    },
    /// An input was given in the wrong element type.
    DTypeMismatch {
        /// The input.
        input: Name,
        /// What the model takes.
        expected: DType,
        /// What was given.
        got: DType,
    },
    /// An input was given with the wrong shape.
    ShapeMismatch {
        /// The input.
        input: Name,
        /// What the model takes.
        expected: Shape,
        /// What was given.
        got: Shape,
    },
    /// An input was given with more dims than any tensor may have.
    RankTooHigh {
        /// The input.
        input: Name,
        /// The rank given.
        rank: usize,
    },
    /// An input's byte count does not match its shape and dtype.
    ByteLength {
        /// The input.
        input: Name,
        /// Bytes its shape and dtype imply.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// An input whose policy is [`NanPolicy::Reject`] holds a NaN or an infinity.
    NonFiniteInput {
        /// The input.
        input: Name,
        /// Index of the first bad element (row-major).
        index: usize,
        /// Its value.
        value: f32,
    },
    /// Outputs were read but no frame has completed since the inputs last changed.
    NoOutputs,
    /// The package has no test vectors to self-test with.
    NoTestVectors,
    /// The model has more outputs than a [`SelftestReport`] holds.
    TooManyOutputs {
        /// Outputs the model has.
        count: usize,
    },
    /// [`Engine::run_timed`] was given a slice of times whose length is not the
    /// plan's step count.
    StepTimesLength {
        /// Steps in the plan.
        steps: usize,
        /// Entries given.
        given: usize,
    },
}

impl From<PlanError> for EngineError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::ArenaTooSmall { needed, given } => Self::ArenaTooSmall { needed, given },
            PlanError::MisalignedArena => Self::MisalignedArena,
            other => Self::InvalidPlan(other),
        }
    }
}

impl From<BackendError> for EngineError {
    fn from(e: BackendError) -> Self {
        Self::Backend(e)
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPlan(e) => write!(f, "the package's plan is invalid: {e}; recompile the model"),
            Self::ArenaTooSmall { needed, given } => write!(
                f,
                "arena too small: the model needs {needed} bytes (the arena size `cadence inspect` prints), {given} were given"
            ),
            Self::MisalignedArena => write!(
                f,
                "the arena must start on a {TENSOR_ALIGN}-byte boundary; use `#[repr(align({TENSOR_ALIGN}))]` or `AlignedBytes`"
            ),
            Self::Backend(e) => write!(f, "{e}"),
            Self::UnknownInput { name } => write!(
                f,
                "the model has no input named `{name}`; `cadence inspect` lists its inputs"
            ),
            Self::UnknownOutput { name } => write!(
                f,
                "the model has no output named `{name}`; `cadence inspect` lists its outputs"
            ),
            Self::NoSuchInput { index, count } => {
                write!(f, "input index {index} is out of range: the model has {count} inputs")
            }
            Self::NoSuchOutput { index, count } => {
                write!(f, "output index {index} is out of range: the model has {count} outputs")
            }
            Self::DTypeMismatch { input, expected, got } => write!(
                f,
                "input `{input}` takes {expected} elements, but {got} were given"
            ),
            Self::ShapeMismatch { input, expected, got } => write!(
                f,
                "input `{input}` takes shape {expected}, but {got} was given"
            ),
            Self::RankTooHigh { input, rank } => write!(
                f,
                "input `{input}` was given with {rank} dims; no tensor has more than {MAX_RANK}"
            ),
            Self::ByteLength { input, expected, got } => write!(
                f,
                "input `{input}` needs {expected} bytes for its shape and dtype, but {got} were given"
            ),
            Self::NonFiniteInput { input, index, value } => write!(
                f,
                "input `{input}` holds {value} at element {index}; the model refuses non-finite inputs (check the sensor)"
            ),
            Self::NoOutputs => f.write_str(
                "no outputs to read: the last frame failed, or the inputs changed since the last run",
            ),
            Self::NoTestVectors => {
                f.write_str("the package has no test vectors; recompile it with reference outputs")
            }
            Self::TooManyOutputs { count } => write!(
                f,
                "the model has {count} outputs; the self-test reports at most {MAX_SELFTEST_OUTPUTS}"
            ),
            Self::StepTimesLength { steps, given } => write!(
                f,
                "the plan has {steps} steps but {given} step times were given; size the slice with `Engine::step_count`"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EngineError {}

/// The first element of an output outside tolerance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mismatch {
    /// Test case index.
    pub case: usize,
    /// Element index (row-major).
    pub index: usize,
    /// What the backend produced.
    pub got: f32,
    /// What the reference produced.
    pub expected: f32,
}

/// How one output fared over every test case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputCheck<'p> {
    /// The output's name.
    pub name: &'p str,
    /// Largest `|got - expected|` seen (infinite when a NaN was produced).
    pub max_abs_error: f32,
    /// Elements outside tolerance, over all cases.
    pub mismatches: usize,
    /// The first of them.
    pub first_mismatch: Option<Mismatch>,
}

impl OutputCheck<'_> {
    /// Whether every element of every case was within tolerance.
    pub fn passed(&self) -> bool {
        self.mismatches == 0
    }
}

/// The result of [`Engine::selftest`]: a failing backend is a result, not an error.
#[derive(Clone, Debug, PartialEq)]
pub struct SelftestReport<'p> {
    /// Test cases run.
    pub cases: usize,
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// One check per output, in spec order.
    pub outputs: heapless::Vec<OutputCheck<'p>, MAX_SELFTEST_OUTPUTS>,
}

impl SelftestReport<'_> {
    /// Whether every output matched in every case.
    pub fn passed(&self) -> bool {
        self.cases > 0 && self.outputs.iter().all(OutputCheck::passed)
    }
}

/// A loaded model, ready to run frames; see the module docs.
pub struct Engine<'p, 'a, B> {
    package: Package<'p>,
    plan: Plan<'p>,
    backend: B,
    arena: &'a mut [u8],
    outputs_valid: bool,
}

impl<B> fmt::Debug for Engine<'_, '_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("arena_bytes", &self.arena.len())
            .field("outputs_valid", &self.outputs_valid)
            .finish_non_exhaustive()
    }
}

impl<'p, 'a, B: Accelerator> Engine<'p, 'a, B> {
    /// Validates the package's plan, checks the arena (size and
    /// [`TENSOR_ALIGN`]-byte alignment), zeroes it so frames are reproducible, and
    /// prepares the backend. The only step that may allocate (inside the backend).
    pub fn load(
        package: &Package<'p>,
        mut backend: B,
        arena: &'a mut [u8],
    ) -> Result<Self, EngineError> {
        let plan = package.plan();
        plan.validate()?;
        plan.check_arena(arena)?;
        arena.fill(0);
        backend.prepare(&plan)?;
        Ok(Self {
            package: *package,
            plan,
            backend,
            arena,
            outputs_valid: false,
        })
    }

    /// The package this engine runs.
    pub fn package(&self) -> &Package<'p> {
        &self.package
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, for settings it exposes between frames.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Position of the input called `name`.
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.package.inputs().position(|io| io.name() == name)
    }

    /// Position of the output called `name`.
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.package.outputs().position(|io| io.name() == name)
    }

    /// Copies a caller's tensor into input `name`'s place in the arena, after checking
    /// its dtype, shape and length. Set every input before every [`Engine::run`]: the
    /// planner may reuse an input's memory once the model has read it.
    pub fn set_input(&mut self, name: &str, view: TensorView<'_>) -> Result<(), EngineError> {
        let index = self
            .input_index(name)
            .ok_or_else(|| EngineError::UnknownInput {
                name: self::name(name),
            })?;
        let io = self.input_spec(index)?;
        let input = || self::name(io.name());
        if view.dtype != io.dtype() {
            return Err(EngineError::DTypeMismatch {
                input: input(),
                expected: io.dtype(),
                got: view.dtype,
            });
        }
        let expected = io.shape();
        if view.shape != expected.dims() {
            let got = Shape::new(view.shape).ok_or_else(|| EngineError::RankTooHigh {
                input: input(),
                rank: view.shape.len(),
            })?;
            return Err(EngineError::ShapeMismatch {
                input: input(),
                expected,
                got,
            });
        }
        let range = self.plan.byte_range(io.tensor_index());
        if view.bytes.len() != range.len() {
            return Err(EngineError::ByteLength {
                input: input(),
                expected: range.len(),
                got: view.bytes.len(),
            });
        }
        self.outputs_valid = false;
        self.arena[range].copy_from_slice(view.bytes);
        Ok(())
    }

    /// [`Engine::set_input`] for `f32` data.
    pub fn set_input_f32(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<(), EngineError> {
        self.set_input(name, TensorView::f32(shape, data))
    }

    /// Input `index`'s elements in the arena, for pre-processing that writes straight
    /// into place instead of through a staging buffer.
    pub fn input_mut(&mut self, index: usize) -> Result<&mut [f32], EngineError> {
        let io = self.input_spec(index)?;
        let range = self.plan.byte_range(io.tensor_index());
        self.outputs_valid = false;
        <[f32]>::mut_from_bytes(&mut self.arena[range]).map_err(|_| EngineError::MisalignedArena)
    }

    /// Runs one frame: checks every input's NaN policy, then runs the backend. On
    /// error the outputs are marked invalid and the engine is ready for the next frame.
    pub fn run(&mut self) -> Result<(), EngineError> {
        self.outputs_valid = false;
        self.check_inputs()?;
        self.backend.run(&self.plan, self.arena)?;
        self.outputs_valid = true;
        Ok(())
    }

    /// Steps in the plan: the length [`Engine::run_timed`] wants.
    pub fn step_count(&self) -> usize {
        self.plan.steps.len()
    }

    /// Runs one frame like [`Engine::run`] (same checks, same outputs, bit for bit)
    /// through [`Accelerator::run_timed`]: on a backend that runs steps one by one
    /// ([`StepTiming::PerStep`]), `step_ns[i]` gets the nanoseconds `clock` saw step `i`
    /// take, the per-layer profile; on one that runs the plan as a unit,
    /// [`StepTiming::WholeFrame`] says only the frame can be timed. Reading the clock is
    /// the only cost added; nothing is allocated. `step_ns` must hold
    /// [`Engine::step_count`] entries.
    pub fn run_timed(
        &mut self,
        clock: &impl Clock,
        step_ns: &mut [u64],
    ) -> Result<StepTiming, EngineError> {
        self.outputs_valid = false;
        if step_ns.len() != self.plan.steps.len() {
            return Err(EngineError::StepTimesLength {
                steps: self.plan.steps.len(),
                given: step_ns.len(),
            });
        }
        self.check_inputs()?;
        let timing = self
            .backend
            .run_timed(&self.plan, self.arena, clock, step_ns)?;
        self.outputs_valid = true;
        Ok(timing)
    }

    /// Checks every input against its NaN policy.
    fn check_inputs(&self) -> Result<(), EngineError> {
        for io in self.package.inputs() {
            if io.nan_policy() == NanPolicy::Allow {
                continue;
            }
            let values = self.tensor(io.tensor_index())?;
            if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(EngineError::NonFiniteInput {
                    input: name(io.name()),
                    index,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Output `name` of the last frame.
    pub fn output(&self, name: &str) -> Result<&[f32], EngineError> {
        let index = self
            .output_index(name)
            .ok_or_else(|| EngineError::UnknownOutput {
                name: self::name(name),
            })?;
        self.output_at(index)
    }

    /// Output `index` of the last frame.
    pub fn output_at(&self, index: usize) -> Result<&[f32], EngineError> {
        let io = self
            .package
            .output(index)
            .ok_or(EngineError::NoSuchOutput {
                index,
                count: self.package.outputs().len(),
            })?;
        if !self.outputs_valid {
            return Err(EngineError::NoOutputs);
        }
        self.tensor(io.tensor_index())
    }

    /// Every output of the last frame: name, shape and elements, in spec order.
    pub fn outputs(
        &self,
    ) -> Result<impl Iterator<Item = (&'p str, Shape, &[f32])> + '_, EngineError> {
        if !self.outputs_valid {
            return Err(EngineError::NoOutputs);
        }
        Ok(self.package.outputs().map(|io| {
            let values = self.tensor(io.tensor_index()).unwrap_or(&[]);
            (io.name(), io.shape(), values)
        }))
    }

    /// Runs every test case of the package and compares each output with the
    /// reference under the package's tolerance. A mismatch is reported, not an error;
    /// an error means a case could not run at all.
    pub fn selftest(&mut self) -> Result<SelftestReport<'p>, EngineError> {
        let package = self.package;
        let count = package.outputs().len();
        if count > MAX_SELFTEST_OUTPUTS {
            return Err(EngineError::TooManyOutputs { count });
        }
        if package.test_vectors().len() == 0 {
            return Err(EngineError::NoTestVectors);
        }
        let tolerance = package.tolerance();
        let mut outputs = heapless::Vec::new();
        for io in package.outputs() {
            // Capacity checked above.
            let _ = outputs.push(OutputCheck {
                name: io.name(),
                max_abs_error: 0.0,
                mismatches: 0,
                first_mismatch: None,
            });
        }
        for (case_index, case) in package.test_vectors().enumerate() {
            for (io, data) in package.inputs().zip(case.inputs()) {
                let range = self.plan.byte_range(io.tensor_index());
                self.arena[range].copy_from_slice(data.as_bytes());
            }
            self.run()?;
            for ((io, expected), check) in package.outputs().zip(case.outputs()).zip(&mut outputs) {
                let got = self.tensor(io.tensor_index())?;
                compare(case_index, got, expected, tolerance, check);
            }
        }
        Ok(SelftestReport {
            cases: package.test_vectors().len(),
            tolerance,
            outputs,
        })
    }

    fn input_spec(&self, index: usize) -> Result<IoSpec<'p>, EngineError> {
        self.package.input(index).ok_or(EngineError::NoSuchInput {
            index,
            count: self.package.inputs().len(),
        })
    }

    fn tensor(&self, index: u32) -> Result<&[f32], EngineError> {
        let range = self.plan.byte_range(index);
        <[f32]>::ref_from_bytes(&self.arena[range]).map_err(|_| EngineError::MisalignedArena)
    }
}

fn compare(
    case: usize,
    got: &[f32],
    expected: &[f32],
    tolerance: Tolerance,
    check: &mut OutputCheck<'_>,
) {
    for (index, (&g, &e)) in got.iter().zip(expected).enumerate() {
        let error = if g == e {
            0.0
        } else {
            let d = (g - e).abs();
            if d.is_nan() { f32::INFINITY } else { d }
        };
        check.max_abs_error = check.max_abs_error.max(error);
        if !tolerance.accepts(g, e) {
            check.mismatches += 1;
            check.first_mismatch.get_or_insert(Mismatch {
                case,
                index,
                got: g,
                expected: e,
            });
        }
    }
}
