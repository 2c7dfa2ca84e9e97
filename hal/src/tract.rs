//! The tract backend, a **reference backend**: runs a package's source ONNX with
//! tract, reading inputs from and writing outputs to the same arena the CPU backend
//! uses.
//!
//! It exists for comparison (`cadence bench`, `cadence selftest`): tract allocates on
//! every run, so it breaks the [`Accelerator`] rule that `run` does not allocate and
//! never belongs in a frame path with a deadline (scenarios refuse it, see
//! [`BackendKind::is_reference`]). It runs the whole model as one unit, so
//! [`Accelerator::run_timed`] times frames, not steps.

use std::vec::Vec;

use tract_onnx::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

use crate::accelerator::{Accelerator, BackendError};
use crate::backends::BackendKind;
use crate::plan::Plan;

const NAME: &str = BackendKind::Tract.name();

/// A model input or output as the backend binds it: the plan tensor it lives in.
#[derive(Clone, Debug)]
pub struct Binding {
    /// Plan tensor index.
    pub tensor: u32,
    /// Concrete shape.
    pub shape: Vec<usize>,
}

/// Runs the source ONNX through tract: a reference to compare against (see the module
/// docs), allocating per frame.
pub struct TractBackend {
    onnx: Vec<u8>,
    inputs: Vec<Binding>,
    outputs: Vec<u32>,
    runnable: Option<std::sync::Arc<TypedRunnableModel>>,
}

impl TractBackend {
    /// A backend for `onnx`, with model inputs and outputs bound to plan tensors in
    /// the model's declaration order.
    pub fn new(onnx: &[u8], inputs: Vec<Binding>, outputs: Vec<u32>) -> Self {
        Self {
            onnx: onnx.to_vec(),
            inputs,
            outputs,
            runnable: None,
        }
    }

    fn build(&self) -> TractResult<std::sync::Arc<TypedRunnableModel>> {
        let mut model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true)
            .model_for_read(&mut self.onnx.as_slice())?;
        for (ix, input) in self.inputs.iter().enumerate() {
            model = model.with_input_fact(ix, f32::fact(&input.shape).into())?;
        }
        model.into_optimized()?.into_runnable()
    }
}

impl Accelerator for TractBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        plan.validate()?;
        self.runnable = Some(self.build().map_err(|e| BackendError::fault(NAME, &e))?);
        Ok(())
    }

    fn run(&mut self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(), BackendError> {
        let runnable = self
            .runnable
            .as_ref()
            .ok_or(BackendError::NotPrepared { backend: NAME })?;
        let fault = |e: &dyn core::fmt::Display| BackendError::fault(NAME, e);
        let mut inputs = TVec::new();
        for input in &self.inputs {
            let bytes = arena
                .get(plan.byte_range(input.tensor))
                .ok_or_else(|| fault(&"input outside the arena"))?;
            let data = <[f32]>::ref_from_bytes(bytes).map_err(|_| fault(&"misaligned input"))?;
            let tensor = Tensor::from_shape(&input.shape, data).map_err(|e| fault(&e))?;
            inputs.push(tensor.into());
        }
        let outputs = runnable.run(inputs).map_err(|e| fault(&e))?;
        for (&tensor, value) in self.outputs.iter().zip(outputs.iter()) {
            let plain = value.try_as_plain_ram().map_err(|e| fault(&e))?;
            let values = plain.as_slice::<f32>().map_err(|e| fault(&e))?;
            let dest = arena
                .get_mut(plan.byte_range(tensor))
                .ok_or_else(|| fault(&"output outside the arena"))?;
            if dest.len() != values.len() * 4 {
                return Err(fault(&"output size differs from the plan's"));
            }
            dest.copy_from_slice(values.as_bytes());
        }
        Ok(())
    }
}
