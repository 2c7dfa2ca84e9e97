//! The reference: tract running the source ONNX. Test vectors in every package are
//! its outputs, so every backend and target is checked against the same numbers.

use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::{CompileError, Result};

/// A runnable tract model with fixed input shapes.
pub struct Reference {
    plan: Arc<TypedRunnableModel>,
    shapes: Vec<Vec<usize>>,
}

impl Reference {
    /// Loads `onnx` with `shapes` pinned (one per model input, in order).
    pub fn new(onnx: &[u8], shapes: &[Vec<usize>]) -> Result<Self> {
        let err = |e: TractError| CompileError::Reference(format!("{e:#}"));
        let mut model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true)
            .model_for_read(&mut &*onnx)
            .map_err(err)?;
        for (ix, shape) in shapes.iter().enumerate() {
            model = model
                .with_input_fact(ix, f32::fact(shape).into())
                .map_err(err)?;
        }
        let plan = model
            .into_optimized()
            .map_err(err)?
            .into_runnable()
            .map_err(err)?;
        Ok(Self {
            plan,
            shapes: shapes.to_vec(),
        })
    }

    /// Runs one frame; inputs and outputs are flat row-major `f32`.
    pub fn run(&self, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let err = |e: TractError| CompileError::Reference(format!("{e:#}"));
        let tensors = inputs
            .iter()
            .zip(&self.shapes)
            .map(|(data, shape)| Tensor::from_shape(shape, data).map(TValue::from))
            .collect::<TractResult<TVec<_>>>()
            .map_err(err)?;
        let outputs = self.plan.run(tensors).map_err(err)?;
        outputs
            .iter()
            .map(|t| {
                let t = t.cast_to::<f32>()?;
                Ok(t.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
            })
            .collect::<TractResult<Vec<_>>>()
            .map_err(err)
    }
}
