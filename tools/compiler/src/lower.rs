//! Lowering: ONNX nodes to Cadence ops, one ONNX op type at a time.
//!
//! Any tensor tract folded to a constant needs no op: shape arithmetic, `Constant`,
//! weight transposes disappear here. Reshape-like ops become aliases. What remains is
//! mapped to [`Op`]s with ONNX semantics resolved at compile time (auto-padding,
//! ceil-mode pooling, Gemm's alpha/beta/transposes, BatchNorm as a per-channel affine
//! that fusion later folds into the conv before it).

use std::collections::{HashMap, HashSet};

use cadence_hal::MAX_RANK;
use cadence_hal::op::{
    Activation, BinaryKind, CoordinateTransform, NearestRounding, Op, ReduceKind, ResizeMode,
    Window,
};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;

use crate::error::{CompileError, Result};
use crate::graph::{Graph, ValueId, ValueKind};
use crate::import::Imported;

/// Lowers every node of `model` into a [`Graph`].
pub fn lower(model: &Imported) -> Result<Graph> {
    let mut lowering = Lowering {
        model,
        graph: Graph::default(),
        by_name: HashMap::new(),
        opset: opset(model),
        used: model
            .nodes()
            .iter()
            .flat_map(|n| n.input.iter())
            .chain(&model.outputs)
            .map(String::as_str)
            .collect(),
    };
    for (ix, input) in model.inputs.iter().enumerate() {
        let id = lowering
            .graph
            .add_value(&input.name, input.shape(), ValueKind::Input(ix));
        lowering.graph.inputs.push(id);
        lowering.by_name.insert(input.name.clone(), id);
    }
    for node in model.nodes() {
        let outputs: Vec<&String> = node.output.iter().filter(|o| !o.is_empty()).collect();
        if outputs.iter().all(|o| model.constant(o).is_some()) {
            continue;
        }
        lowering.node(node)?;
    }
    for name in &model.outputs {
        let id = lowering.value(name)?;
        lowering.graph.outputs.push(id);
    }
    Ok(lowering.graph)
}

fn opset(model: &Imported) -> i64 {
    model
        .proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(13, |o| o.version)
}

struct Lowering<'m> {
    model: &'m Imported,
    graph: Graph,
    by_name: HashMap<String, ValueId>,
    opset: i64,
    /// Tensors some node reads or the model outputs; the others (e.g. Dropout's mask)
    /// need no lowering.
    used: HashSet<&'m str>,
}

/// Attribute and input access for one node, with errors that name it.
struct NodeCtx<'n> {
    node: &'n NodeProto,
}

impl NodeCtx<'_> {
    fn name(&self) -> &str {
        if self.node.name.is_empty() {
            self.node.output.first().map_or("?", String::as_str)
        } else {
            &self.node.name
        }
    }

    fn unsupported(&self, reason: impl Into<String>) -> CompileError {
        CompileError::Unsupported {
            node: self.name().into(),
            op: self.node.op_type.clone(),
            reason: reason.into(),
        }
    }

    fn attr_i(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self
            .node
            .get_attr_opt::<i64>(name)
            .map_err(|e| self.unsupported(format!("attribute `{name}`: {e}")))?
            .unwrap_or(default))
    }

    fn attr_f(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self
            .node
            .get_attr_opt::<f32>(name)
            .map_err(|e| self.unsupported(format!("attribute `{name}`: {e}")))?
            .unwrap_or(default))
    }

    fn attr_s(&self, name: &str, default: &str) -> Result<String> {
        Ok(self
            .node
            .get_attr_opt::<String>(name)
            .map_err(|e| self.unsupported(format!("attribute `{name}`: {e}")))?
            .unwrap_or_else(|| default.to_owned()))
    }

    fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        self.node
            .get_attr_opt_vec::<i64>(name)
            .map_err(|e| self.unsupported(format!("attribute `{name}`: {e}")))
    }

    /// Input `ix`'s tensor name, if bound.
    fn input(&self, ix: usize) -> Option<&str> {
        self.node
            .input
            .get(ix)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn output(&self, ix: usize) -> Result<&str> {
        self.node
            .output
            .get(ix)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.unsupported(format!("output {ix} is missing")))
    }
}

/// Normalises a possibly negative axis.
fn axis_of(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

impl Lowering<'_> {
    /// The value for tensor `name`, creating a constant on first use.
    fn value(&mut self, name: &str) -> Result<ValueId> {
        if let Some(&id) = self.by_name.get(name) {
            return Ok(id);
        }
        let tensor = self
            .model
            .constant(name)
            .ok_or_else(|| CompileError::Inference {
                tensor: name.into(),
                reason: "used before it is computed".into(),
            })?;
        let (shape, data) = tensor_f32(name, &tensor)?;
        let id = self.graph.add_value(name, shape, ValueKind::Const(data));
        self.by_name.insert(name.into(), id);
        Ok(id)
    }

    fn const_f32(
        &self,
        ctx: &NodeCtx<'_>,
        name: &str,
        what: &str,
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        if let Some(&id) = self.by_name.get(name)
            && let Some(data) = self.graph.const_data(id)
        {
            return Ok((self.graph.values[id].shape.clone(), data.to_vec()));
        }
        let t = self
            .model
            .constant(name)
            .ok_or_else(|| ctx.unsupported(format!("{what} must be a constant")))?;
        tensor_f32(name, &t)
    }

    /// `ConstantOfShape` whose output tract left unfolded (it folds only small
    /// tensors): weights in the `onnx` model zoo's light models are made this way.
    fn constant_of_shape(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let shape_name = ctx
            .input(0)
            .ok_or_else(|| ctx.unsupported("shape is missing"))?;
        let shape: Vec<usize> = self
            .const_i64(ctx, shape_name, "shape")?
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| ctx.unsupported("negative dim")))
            .collect::<Result<_>>()?;
        let fill = match ctx
            .node
            .get_attr_opt::<&tract_onnx::pb::TensorProto>("value")
            .map_err(|e| ctx.unsupported(format!("attribute `value`: {e}")))?
        {
            None => 0.0,
            Some(proto) => {
                let t = tract_onnx::tensor::load_tensor(
                    &tract_onnx::data_resolver::MmapDataResolver,
                    proto,
                    None,
                )
                .map_err(|e| ctx.unsupported(format!("attribute `value`: {e}")))?;
                tensor_f32(ctx.name(), &t)?
                    .1
                    .first()
                    .copied()
                    .unwrap_or(0.0)
            }
        };
        let name = ctx.output(0)?.to_owned();
        let volume = shape.iter().product();
        let id = self
            .graph
            .add_value(&name, shape, ValueKind::Const(vec![fill; volume]));
        self.by_name.insert(name, id);
        Ok(())
    }

    fn const_i64(&self, ctx: &NodeCtx<'_>, name: &str, what: &str) -> Result<Vec<i64>> {
        let t = self
            .model
            .constant(name)
            .ok_or_else(|| ctx.unsupported(format!("{what} must be a constant")))?;
        let t = t
            .cast_to::<i64>()
            .map_err(|e| ctx.unsupported(format!("{what}: {e}")))?;
        let plain = t
            .try_as_plain_ram()
            .map_err(|e| ctx.unsupported(format!("{what}: {e}")))?;
        Ok(plain
            .as_slice::<i64>()
            .map_err(|e| ctx.unsupported(format!("{what}: {e}")))?
            .to_vec())
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        self.model.shape(name)
    }

    /// A fresh computed value for the node's output `ix`.
    fn computed(&mut self, ctx: &NodeCtx<'_>, ix: usize) -> Result<ValueId> {
        let name = ctx.output(ix)?.to_owned();
        let shape = self.shape(&name)?;
        let id = self.graph.add_value(&name, shape, ValueKind::Computed);
        self.by_name.insert(name, id);
        Ok(id)
    }

    fn emit(&mut self, ctx: &NodeCtx<'_>, op: Op, inputs: Vec<ValueId>) -> Result<ValueId> {
        let out = self.computed(ctx, 0)?;
        self.graph.add_node(ctx.name(), op, inputs, out);
        Ok(out)
    }

    fn alias_output(&mut self, ctx: &NodeCtx<'_>, input: ValueId) -> Result<()> {
        let name = ctx.output(0)?.to_owned();
        let shape = self.shape(&name)?;
        let id = self.graph.reshape(input, &name, shape);
        self.by_name.insert(name, id);
        Ok(())
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        let ctx = NodeCtx { node };
        for out in node
            .output
            .iter()
            .filter(|o| self.used.contains(o.as_str()))
        {
            if !self.model.is_float(out) {
                return Err(ctx.unsupported(format!(
                    "output `{out}` is not float32 and could not be folded to a constant"
                )));
            }
        }
        match node.op_type.as_str() {
            "Conv" => self.conv(&ctx),
            "ConvTranspose" => self.conv_transpose(&ctx),
            "Gemm" => self.gemm(&ctx),
            "MatMul" => self.matmul(&ctx),
            "BatchNormalization" => self.batch_norm(&ctx),
            "Relu" | "Sigmoid" | "Tanh" | "HardSwish" | "HardSigmoid" | "LeakyRelu" | "Clip" => {
                self.activation(&ctx)
            }
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" => self.binary(&ctx),
            "Sum" => self.sum(&ctx),
            "ConstantOfShape" => self.constant_of_shape(&ctx),
            "MaxPool" | "AveragePool" => self.pool(&ctx),
            "GlobalAveragePool" => {
                let x = self.value_in(&ctx, 0)?;
                self.emit(&ctx, Op::GlobalAvgPool, vec![x]).map(drop)
            }
            "GlobalMaxPool" => self.global_max_pool(&ctx),
            "Concat" => self.concat(&ctx),
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity" | "Dropout" | "Cast" => {
                let x = self.value_in(&ctx, 0)?;
                self.alias_output(&ctx, x)
            }
            "Transpose" => self.transpose(&ctx),
            "Resize" | "Upsample" => self.resize(&ctx),
            "Softmax" => self.softmax(&ctx),
            "Slice" => self.slice(&ctx),
            "Split" => self.split(&ctx),
            "ReduceMean" | "ReduceMax" | "ReduceSum" => self.reduce(&ctx),
            other => Err(CompileError::UnsupportedOp {
                node: ctx.name().into(),
                op: other.into(),
                detail: String::new(),
            }),
        }
    }

    fn value_in(&mut self, ctx: &NodeCtx<'_>, ix: usize) -> Result<ValueId> {
        let name = ctx
            .input(ix)
            .ok_or_else(|| ctx.unsupported(format!("input {ix} is missing")))?
            .to_owned();
        self.value(&name)
    }

    /// Window attributes shared by Conv, ConvTranspose and the pools, for a 2-D window
    /// (1-D windows are lifted to H = 1 by the caller).
    fn window(&self, ctx: &NodeCtx<'_>, kernel: [usize; 2], lifted: bool) -> Result<Window> {
        let two = |name: &str, default: usize| -> Result<[usize; 2]> {
            match ctx.attr_ints(name)? {
                None => Ok([default; 2]),
                Some(v) if lifted && v.len() == 1 => Ok([default, v[0] as usize]),
                Some(v) if v.len() == 2 => Ok([v[0] as usize, v[1] as usize]),
                Some(v) => Err(ctx.unsupported(format!("`{name}` has {} entries", v.len()))),
            }
        };
        let pads = match ctx.attr_ints("pads")? {
            None => [0; 4],
            Some(p) if lifted && p.len() == 2 => [0, p[0] as usize, 0, p[1] as usize],
            Some(p) if p.len() == 4 => [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize],
            Some(p) => return Err(ctx.unsupported(format!("`pads` has {} entries", p.len()))),
        };
        if let Some(p) = ctx.attr_ints("pads")?
            && p.iter().any(|&v| v < 0)
        {
            return Err(ctx.unsupported("negative padding"));
        }
        Ok(Window {
            kernel,
            stride: two("strides", 1)?,
            dilation: two("dilations", 1)?,
            pads,
        })
    }

    /// Resolves `auto_pad` into explicit pads for a forward window.
    fn auto_pad(&self, ctx: &NodeCtx<'_>, window: &mut Window, input_hw: [usize; 2]) -> Result<()> {
        let mode = ctx.attr_s("auto_pad", "NOTSET")?;
        match mode.as_str() {
            "NOTSET" => {}
            "VALID" => window.pads = [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                for (axis, &i) in input_hw.iter().enumerate() {
                    let s = window.stride[axis];
                    let span = window.dilation[axis] * (window.kernel[axis] - 1) + 1;
                    let out = i.div_ceil(s);
                    let total = ((out - 1) * s + span).saturating_sub(i);
                    let small = total / 2;
                    let (begin, end) = if mode == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    window.pads[axis] = begin;
                    window.pads[axis + 2] = end;
                }
            }
            other => return Err(ctx.unsupported(format!("auto_pad `{other}`"))),
        }
        Ok(())
    }

    /// Lifts a rank-3 (1-D) tensor to rank 4 with H = 1; identity for rank 4.
    fn lift_1d(&mut self, x: ValueId) -> (ValueId, bool) {
        let shape = self.graph.values[x].shape.clone();
        if shape.len() == 3 {
            let name = format!("{}.as_2d", self.graph.values[x].name);
            let id = self
                .graph
                .reshape(x, name, vec![shape[0], shape[1], 1, shape[2]]);
            (id, true)
        } else {
            (x, false)
        }
    }

    /// Emits `op` on lifted inputs and aliases the rank-4 result back to the ONNX shape.
    fn emit_lifted(
        &mut self,
        ctx: &NodeCtx<'_>,
        op: Op,
        inputs: Vec<ValueId>,
        lifted: bool,
    ) -> Result<()> {
        if !lifted {
            return self.emit(ctx, op, inputs).map(drop);
        }
        let name = ctx.output(0)?.to_owned();
        let shape = self.shape(&name)?;
        let four = vec![shape[0], shape[1], 1, shape[2]];
        let inner = self
            .graph
            .add_value(format!("{name}.as_2d"), four, ValueKind::Computed);
        self.graph.add_node(ctx.name(), op, inputs, inner);
        let id = self.graph.reshape(inner, &name, shape);
        self.by_name.insert(name, id);
        Ok(())
    }

    fn conv(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let (x, lifted) = self.lift_1d(x);
        let w_name = ctx
            .input(1)
            .ok_or_else(|| ctx.unsupported("weights are missing"))?;
        let (mut w_shape, w) = self.const_f32(ctx, w_name, "conv weights")?;
        if lifted {
            w_shape.insert(2, 1);
        }
        if w_shape.len() != 4 {
            return Err(ctx.unsupported("only 1-D and 2-D convolutions are supported"));
        }
        let x_shape = self.graph.values[x].shape.clone();
        let mut window = self.window(ctx, [w_shape[2], w_shape[3]], lifted)?;
        self.auto_pad(ctx, &mut window, [x_shape[2], x_shape[3]])?;
        let groups = ctx.attr_i("group", 1)? as usize;
        let inputs = self.weighted_inputs(ctx, x, (format!("{w_name}.oihw"), w_shape, w))?;
        let op = Op::Conv2d {
            groups,
            window,
            activation: Activation::Identity,
        };
        self.emit_lifted(ctx, op, inputs, lifted)
    }

    /// The input slots of a conv-like op: data, the given constant weights, and the
    /// node's optional constant bias (input 2) flattened to `[M]`.
    fn weighted_inputs(
        &mut self,
        ctx: &NodeCtx<'_>,
        x: ValueId,
        (w_name, w_shape, w): (String, Vec<usize>, Vec<f32>),
    ) -> Result<Vec<ValueId>> {
        let w_id = self.graph.add_value(w_name, w_shape, ValueKind::Const(w));
        let mut inputs = vec![x, w_id];
        if let Some(b) = ctx.input(2) {
            let (_, bias) = self.const_f32(ctx, b, "bias")?;
            let len = bias.len();
            inputs.push(self.graph.add_value(b, vec![len], ValueKind::Const(bias)));
        }
        Ok(inputs)
    }

    fn conv_transpose(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let w_name = ctx
            .input(1)
            .ok_or_else(|| ctx.unsupported("weights are missing"))?;
        let (w_shape, w) = self.const_f32(ctx, w_name, "conv_transpose weights")?;
        let x_shape = self.graph.values[x].shape.clone();
        if w_shape.len() != 4 || x_shape.len() != 4 {
            return Err(ctx.unsupported("only 2-D transposed convolutions are supported"));
        }
        let mut window = self.window(ctx, [w_shape[2], w_shape[3]], false)?;
        let auto = ctx.attr_s("auto_pad", "NOTSET")?;
        if auto != "NOTSET" && auto != "VALID" {
            return Err(ctx.unsupported(format!("auto_pad `{auto}`; give explicit pads")));
        }
        if auto == "VALID" {
            window.pads = [0; 4];
        }
        let groups = ctx.attr_i("group", 1)? as usize;
        let out_shape = self.shape(ctx.output(0)?)?;
        let mut output_padding = [0usize; 2];
        for axis in 0..2 {
            let full = (x_shape[2 + axis] - 1) * window.stride[axis]
                + window.dilation[axis] * (w_shape[2 + axis] - 1)
                + 1;
            let natural = full
                .checked_sub(window.pads[axis] + window.pads[axis + 2])
                .ok_or_else(|| ctx.unsupported("padding larger than the output"))?;
            output_padding[axis] = out_shape[2 + axis]
                .checked_sub(natural)
                .ok_or_else(|| ctx.unsupported("output_shape smaller than the padded output"))?;
        }
        let inputs = self.weighted_inputs(ctx, x, (w_name.to_owned(), w_shape, w))?;
        let op = Op::ConvTranspose2d {
            groups,
            window,
            output_padding,
            activation: Activation::Identity,
        };
        self.emit(ctx, op, inputs).map(drop)
    }

    fn gemm(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let alpha = ctx.attr_f("alpha", 1.0)?;
        let beta = ctx.attr_f("beta", 1.0)?;
        let mut a = self.value_in(ctx, 0)?;
        if ctx.attr_i("transA", 0)? != 0 {
            a = self.transposed(ctx, a, "a_t")?;
        }
        let b_name = ctx
            .input(1)
            .ok_or_else(|| ctx.unsupported("B is missing"))?;
        let trans_b = ctx.attr_i("transB", 0)? != 0;
        let b = match self.model.constant(b_name) {
            Some(_) => {
                let (shape, mut data) = self.const_f32(ctx, b_name, "B")?;
                let (rows, cols) = (shape[0], shape[1]);
                if trans_b {
                    data = transpose_2d(&data, rows, cols);
                }
                data.iter_mut().for_each(|v| *v *= alpha);
                let shape = if trans_b {
                    vec![cols, rows]
                } else {
                    vec![rows, cols]
                };
                self.graph
                    .add_value(format!("{b_name}.kn"), shape, ValueKind::Const(data))
            }
            None => {
                if alpha != 1.0 {
                    return Err(ctx.unsupported("alpha != 1 with a non-constant B"));
                }
                let b = self.value(b_name)?;
                if trans_b {
                    self.transposed(ctx, b, "b_t")?
                } else {
                    b
                }
            }
        };
        let n = *self.graph.values[b].shape.last().unwrap_or(&0);
        let mut inputs = vec![a, b];
        let mut separate_bias = None;
        if let Some(c_name) = ctx.input(2) {
            match self.model.constant(c_name) {
                Some(_) => {
                    let (shape, mut c) = self.const_f32(ctx, c_name, "C")?;
                    c.iter_mut().for_each(|v| *v *= beta);
                    let per_column = c.len() == n && shape.iter().rev().skip(1).all(|&d| d == 1);
                    if per_column {
                        inputs.push(self.graph.add_value(c_name, vec![n], ValueKind::Const(c)));
                    } else {
                        separate_bias =
                            Some(self.graph.add_value(c_name, shape, ValueKind::Const(c)));
                    }
                }
                None if beta == 1.0 => separate_bias = Some(self.value(c_name)?),
                None => return Err(ctx.unsupported("beta != 1 with a non-constant C")),
            }
        }
        let op = Op::MatMul {
            activation: Activation::Identity,
        };
        match separate_bias {
            None => self.emit(ctx, op, inputs).map(drop),
            Some(c) => {
                let out_name = ctx.output(0)?.to_owned();
                let shape = self.shape(&out_name)?;
                let product =
                    self.graph
                        .add_value(format!("{out_name}.ab"), shape, ValueKind::Computed);
                self.graph.add_node(ctx.name(), op, inputs, product);
                self.emit(ctx, Op::Binary(BinaryKind::Add), vec![product, c])
                    .map(drop)
            }
        }
    }

    /// A 2-D transpose of `x` as a new value.
    fn transposed(&mut self, ctx: &NodeCtx<'_>, x: ValueId, suffix: &str) -> Result<ValueId> {
        let shape = self.graph.values[x].shape.clone();
        if shape.len() != 2 {
            return Err(ctx.unsupported("Gemm operands must be 2-D"));
        }
        let name = format!("{}.{suffix}", self.graph.values[x].name);
        if let Some(data) = self.graph.const_data(x) {
            let t = transpose_2d(data, shape[0], shape[1]);
            return Ok(self
                .graph
                .add_value(name, vec![shape[1], shape[0]], ValueKind::Const(t)));
        }
        let out = self
            .graph
            .add_value(name, vec![shape[1], shape[0]], ValueKind::Computed);
        let mut perm = [0; MAX_RANK];
        perm[..2].copy_from_slice(&[1, 0]);
        self.graph
            .add_node(ctx.name(), Op::Transpose { perm }, vec![x], out);
        Ok(out)
    }

    fn matmul(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let a = self.value_in(ctx, 0)?;
        let mut b = self.value_in(ctx, 1)?;
        let (ra, b_shape) = (
            self.graph.values[a].shape.len(),
            self.graph.values[b].shape.clone(),
        );
        if ra < 2 || b_shape.len() < 2 {
            return Err(ctx.unsupported("1-D MatMul operands are not supported"));
        }
        let leading_ones = b_shape[..b_shape.len() - 2].iter().all(|&d| d == 1);
        if b_shape.len() > 2 && leading_ones && self.graph.const_data(b).is_some() {
            let kn = b_shape[b_shape.len() - 2..].to_vec();
            let name = format!("{}.kn", self.graph.values[b].name);
            b = self.graph.reshape(b, name, kn);
        }
        self.emit(
            ctx,
            Op::MatMul {
                activation: Activation::Identity,
            },
            vec![a, b],
        )
        .map(drop)
    }

    fn batch_norm(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let eps = ctx.attr_f("epsilon", 1e-5)?;
        let param = |ix: usize, what: &str| -> Result<Vec<f32>> {
            let name = ctx
                .input(ix)
                .ok_or_else(|| ctx.unsupported(format!("{what} is missing")))?;
            Ok(self.const_f32(ctx, name, what)?.1)
        };
        let (gamma, beta, mean, var) = (
            param(1, "scale")?,
            param(2, "bias")?,
            param(3, "mean")?,
            param(4, "var")?,
        );
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| (f64::from(*g) / (f64::from(*v) + f64::from(eps)).sqrt()) as f32)
            .collect();
        let shift: Vec<f32> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        let rank = self.graph.values[x].shape.len();
        let mut per_channel = vec![1usize; rank.saturating_sub(1)];
        per_channel[0] = scale.len();
        let out_name = ctx.output(0)?.to_owned();
        let s = self.graph.add_value(
            format!("{out_name}.bn_scale"),
            per_channel.clone(),
            ValueKind::Const(scale),
        );
        let t = self.graph.add_value(
            format!("{out_name}.bn_shift"),
            per_channel,
            ValueKind::Const(shift),
        );
        let shape = self.shape(&out_name)?;
        let scaled = self
            .graph
            .add_value(format!("{out_name}.scaled"), shape, ValueKind::Computed);
        self.graph
            .add_node(ctx.name(), Op::Binary(BinaryKind::Mul), vec![x, s], scaled);
        self.emit(ctx, Op::Binary(BinaryKind::Add), vec![scaled, t])
            .map(drop)
    }

    fn activation(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let act = match ctx.node.op_type.as_str() {
            "Relu" => Activation::Relu,
            "Sigmoid" => Activation::Sigmoid,
            "Tanh" => Activation::Tanh,
            "HardSwish" => Activation::HardSwish,
            "HardSigmoid" => Activation::HardSigmoid {
                alpha: ctx.attr_f("alpha", 0.2)?,
                beta: ctx.attr_f("beta", 0.5)?,
            },
            "LeakyRelu" => Activation::LeakyRelu {
                alpha: ctx.attr_f("alpha", 0.01)?,
            },
            _ => {
                let bound = |ix: usize, attr: &str, default: f32| -> Result<f32> {
                    match ctx.input(ix) {
                        Some(name) => Ok(self
                            .const_f32(ctx, name, attr)?
                            .1
                            .first()
                            .copied()
                            .unwrap_or(default)),
                        None => ctx.attr_f(attr, default),
                    }
                };
                Activation::Clip {
                    min: bound(1, "min", f32::MIN)?,
                    max: bound(2, "max", f32::MAX)?,
                }
            }
        };
        self.emit(ctx, Op::Unary(act), vec![x]).map(drop)
    }

    fn binary(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        if ctx.node.input.len() != 2 {
            return Err(ctx.unsupported("only two-input forms are supported"));
        }
        let kind = match ctx.node.op_type.as_str() {
            "Add" => BinaryKind::Add,
            "Sub" => BinaryKind::Sub,
            "Mul" => BinaryKind::Mul,
            "Div" => BinaryKind::Div,
            "Max" => BinaryKind::Max,
            _ => BinaryKind::Min,
        };
        let a = self.value_in(ctx, 0)?;
        let b = self.value_in(ctx, 1)?;
        self.emit(ctx, Op::Binary(kind), vec![a, b]).map(drop)
    }

    /// `Sum` of n inputs as a chain of additions.
    fn sum(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let names: Vec<String> = ctx
            .node
            .input
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        let mut acc = self.value(names.first().ok_or_else(|| ctx.unsupported("no inputs"))?)?;
        if names.len() == 1 {
            return self.alias_output(ctx, acc);
        }
        let out_name = ctx.output(0)?.to_owned();
        let (last, middle) = names[1..].split_last().expect("at least two inputs");
        for (i, name) in middle.iter().enumerate() {
            let rhs = self.value(name)?;
            let shape = cadence_hal::shape::broadcast(
                &hal_shape(ctx, &self.graph.values[acc].shape)?,
                &hal_shape(ctx, &self.graph.values[rhs].shape)?,
            )
            .ok_or_else(|| ctx.unsupported("inputs do not broadcast"))?;
            let partial = self.graph.add_value(
                format!("{out_name}.sum{i}"),
                shape.dims().to_vec(),
                ValueKind::Computed,
            );
            self.graph.add_node(
                ctx.name(),
                Op::Binary(BinaryKind::Add),
                vec![acc, rhs],
                partial,
            );
            acc = partial;
        }
        let rhs = self.value(last)?;
        self.emit(ctx, Op::Binary(BinaryKind::Add), vec![acc, rhs])
            .map(drop)
    }

    fn pool(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let (x, lifted) = self.lift_1d(x);
        let kernel = ctx
            .attr_ints("kernel_shape")?
            .ok_or_else(|| ctx.unsupported("kernel_shape is required"))?;
        let kernel = match kernel.as_slice() {
            [k] if lifted => [1, *k as usize],
            [kh, kw] => [*kh as usize, *kw as usize],
            _ => return Err(ctx.unsupported("only 1-D and 2-D pooling is supported")),
        };
        let x_shape = self.graph.values[x].shape.clone();
        let mut window = self.window(ctx, kernel, lifted)?;
        self.auto_pad(ctx, &mut window, [x_shape[2], x_shape[3]])?;
        let is_max = ctx.node.op_type == "MaxPool";
        let count_include_pad = ctx.attr_i("count_include_pad", 0)? != 0;
        if ctx.attr_i("ceil_mode", 0)? != 0 {
            if !is_max && count_include_pad {
                return Err(ctx.unsupported("ceil_mode with count_include_pad"));
            }
            // Ceil mode adds windows that hang over the bottom/right edge: extend the
            // padding there so floor-mode arithmetic yields the same output extent.
            let out = self.shape(ctx.output(0)?)?;
            let out_hw = if lifted {
                [1, out[2]]
            } else {
                [out[2], out[3]]
            };
            for axis in 0..2 {
                let span = window.dilation[axis] * (kernel[axis] - 1) + 1;
                let needed = (out_hw[axis] - 1) * window.stride[axis] + span;
                let have = x_shape[2 + axis] + window.pads[axis] + window.pads[axis + 2];
                window.pads[axis + 2] += needed.saturating_sub(have);
            }
        }
        let op = if is_max {
            Op::MaxPool2d(window)
        } else {
            Op::AvgPool2d {
                window,
                count_include_pad,
            }
        };
        self.emit_lifted(ctx, op, vec![x], lifted)
    }

    fn global_max_pool(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let mut shape = self.graph.values[x].shape.clone();
        if shape.len() != 4 {
            return Err(ctx.unsupported("only 4-D GlobalMaxPool is supported"));
        }
        shape[3] = 1;
        let name = format!("{}.max_w", ctx.output(0)?);
        let rows = self.graph.add_value(name, shape, ValueKind::Computed);
        let max = |axis| Op::Reduce {
            kind: ReduceKind::Max,
            axis,
        };
        self.graph.add_node(ctx.name(), max(3), vec![x], rows);
        self.emit(ctx, max(2), vec![rows]).map(drop)
    }

    fn concat(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let out_name = ctx.output(0)?.to_owned();
        let shape = self.shape(&out_name)?;
        let axis = axis_of(ctx.attr_i("axis", 0)?, shape.len())
            .ok_or_else(|| ctx.unsupported("axis out of range"))?;
        let inputs: Vec<String> = ctx
            .node
            .input
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        if inputs.len() == 1 {
            let x = self.value(&inputs[0])?;
            return self.alias_output(ctx, x);
        }
        let out = self.computed(ctx, 0)?;
        let mut offset = 0;
        for name in inputs {
            let x = self.value(&name)?;
            let extent = self.graph.values[x].shape.get(axis).copied().unwrap_or(0);
            if extent > 0 {
                self.graph
                    .add_node(ctx.name(), Op::CopyInto { axis, offset }, vec![x], out);
            }
            offset += extent;
        }
        Ok(())
    }

    fn transpose(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let shape = self.graph.values[x].shape.clone();
        let rank = shape.len();
        let perm: Vec<usize> = match ctx.attr_ints("perm")? {
            Some(p) => p.iter().map(|&v| v as usize).collect(),
            None => (0..rank).rev().collect(),
        };
        if rank > MAX_RANK || perm.len() != rank {
            return Err(ctx.unsupported(format!("rank {rank} transpose")));
        }
        let moves_data = {
            let kept: Vec<usize> = perm.iter().copied().filter(|&p| shape[p] != 1).collect();
            kept.windows(2).any(|w| w[0] > w[1])
        };
        if !moves_data {
            return self.alias_output(ctx, x);
        }
        let mut p = [0; MAX_RANK];
        p[..rank].copy_from_slice(&perm);
        self.emit(ctx, Op::Transpose { perm: p }, vec![x]).map(drop)
    }

    fn resize(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let in_shape = self.graph.values[x].shape.clone();
        let out_shape = self.shape(ctx.output(0)?)?;
        if in_shape.len() != 4 || in_shape[..2] != out_shape[..2] {
            return Err(ctx.unsupported("only spatial resizes of 4-D NCHW data are supported"));
        }
        let upsample = ctx.node.op_type == "Upsample";
        let scales_input = if upsample { 1 } else { 2 };
        let scales = match ctx.input(scales_input) {
            Some(name) => self.const_f32(ctx, name, "scales")?.1,
            None => vec![],
        };
        let scale = if scales.len() == 4 {
            [scales[2], scales[3]]
        } else {
            [
                out_shape[2] as f32 / in_shape[2] as f32,
                out_shape[3] as f32 / in_shape[3] as f32,
            ]
        };
        let mode = ctx.attr_s("mode", "nearest")?;
        let default_transform = if upsample || self.opset < 11 {
            "asymmetric"
        } else {
            "half_pixel"
        };
        let transform = match ctx
            .attr_s("coordinate_transformation_mode", default_transform)?
            .as_str()
        {
            "half_pixel" => CoordinateTransform::HalfPixel,
            "asymmetric" => CoordinateTransform::Asymmetric,
            "align_corners" => CoordinateTransform::AlignCorners,
            "pytorch_half_pixel" => CoordinateTransform::PytorchHalfPixel,
            other => {
                return Err(ctx.unsupported(format!("coordinate_transformation_mode `{other}`")));
            }
        };
        let mode = match mode.as_str() {
            "nearest" => ResizeMode::Nearest(
                match ctx.attr_s("nearest_mode", "round_prefer_floor")?.as_str() {
                    "round_prefer_floor" => NearestRounding::RoundPreferFloor,
                    "round_prefer_ceil" => NearestRounding::RoundPreferCeil,
                    "floor" => NearestRounding::Floor,
                    "ceil" => NearestRounding::Ceil,
                    other => return Err(ctx.unsupported(format!("nearest_mode `{other}`"))),
                },
            ),
            "linear" | "bilinear" => ResizeMode::Linear,
            other => return Err(ctx.unsupported(format!("mode `{other}`"))),
        };
        if ctx.attr_i("antialias", 0)? != 0 {
            return Err(ctx.unsupported("antialias"));
        }
        let op = Op::Resize {
            mode,
            transform,
            scale,
        };
        self.emit(ctx, op, vec![x]).map(drop)
    }

    fn softmax(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let shape = self.graph.values[x].shape.clone();
        let default = if self.opset < 13 { 1 } else { -1 };
        let axis = axis_of(ctx.attr_i("axis", default)?, shape.len())
            .ok_or_else(|| ctx.unsupported("axis out of range"))?;
        let trailing: usize = shape[axis + 1..].iter().product();
        if self.opset >= 13 || trailing == 1 {
            return self.emit(ctx, Op::Softmax { axis }, vec![x]).map(drop);
        }
        // Before opset 13, softmax normalises over all axes from `axis` on: view the
        // tensor as 2-D, normalise rows, view the result with the original shape.
        let rows: usize = shape[..axis].iter().product();
        let flat = self.graph.reshape(
            x,
            format!("{}.2d", ctx.output(0)?),
            vec![rows, shape[axis] * trailing],
        );
        self.emit_reshaped(
            ctx,
            Op::Softmax { axis: 1 },
            flat,
            vec![rows, shape[axis] * trailing],
        )
    }

    /// Emits `op` on `x` with an intermediate shape, aliasing the result to the node's
    /// output shape.
    fn emit_reshaped(
        &mut self,
        ctx: &NodeCtx<'_>,
        op: Op,
        x: ValueId,
        inner_shape: Vec<usize>,
    ) -> Result<()> {
        let name = ctx.output(0)?.to_owned();
        let inner = self
            .graph
            .add_value(format!("{name}.inner"), inner_shape, ValueKind::Computed);
        self.graph.add_node(ctx.name(), op, vec![x], inner);
        let shape = self.shape(&name)?;
        let id = self.graph.reshape(inner, &name, shape);
        self.by_name.insert(name, id);
        Ok(())
    }

    fn slice(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let in_shape = self.graph.values[x].shape.clone();
        let out_shape = self.shape(ctx.output(0)?)?;
        let rank = in_shape.len();
        let (starts, axes, steps) = if self.opset < 10 {
            let starts = ctx.attr_ints("starts")?.unwrap_or_default();
            let axes = ctx
                .attr_ints("axes")?
                .unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = vec![1; starts.len()];
            (starts, axes, steps)
        } else {
            let input = |ix: usize, what: &str| -> Result<Option<Vec<i64>>> {
                ctx.input(ix)
                    .map(|n| self.const_i64(ctx, n, what))
                    .transpose()
            };
            let starts = input(1, "starts")?.unwrap_or_default();
            let axes = input(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = input(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
            (starts, axes, steps)
        };
        let mut current = x;
        let mut shape = in_shape.clone();
        for ((&start, &axis), &step) in starts.iter().zip(&axes).zip(&steps) {
            let axis = axis_of(axis, rank).ok_or_else(|| ctx.unsupported("axis out of range"))?;
            if step < 1 {
                return Err(ctx.unsupported("only positive slice steps are supported"));
            }
            let dim = in_shape[axis] as i64;
            let start = if start < 0 { start + dim } else { start }.clamp(0, dim) as usize;
            if out_shape[axis] == in_shape[axis] && start == 0 {
                continue;
            }
            shape[axis] = out_shape[axis];
            let name = format!("{}.axis{axis}", ctx.output(0)?);
            let next = self
                .graph
                .add_value(name, shape.clone(), ValueKind::Computed);
            let op = Op::Slice {
                axis,
                start,
                step: step as usize,
            };
            self.graph.add_node(ctx.name(), op, vec![current], next);
            current = next;
        }
        self.alias_output(ctx, current)
    }

    fn split(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let rank = self.graph.values[x].shape.len();
        let axis = axis_of(ctx.attr_i("axis", 0)?, rank)
            .ok_or_else(|| ctx.unsupported("axis out of range"))?;
        let mut offset = 0;
        for ix in 0..ctx.node.output.len() {
            let out = self.computed(ctx, ix)?;
            let extent = self.graph.values[out].shape[axis];
            let op = Op::Slice {
                axis,
                start: offset,
                step: 1,
            };
            self.graph.add_node(ctx.name(), op, vec![x], out);
            offset += extent;
        }
        Ok(())
    }

    fn reduce(&mut self, ctx: &NodeCtx<'_>) -> Result<()> {
        let x = self.value_in(ctx, 0)?;
        let in_shape = self.graph.values[x].shape.clone();
        let rank = in_shape.len();
        let kind = match ctx.node.op_type.as_str() {
            "ReduceMean" => ReduceKind::Mean,
            "ReduceMax" => ReduceKind::Max,
            _ => ReduceKind::Sum,
        };
        let axes = match (ctx.attr_ints("axes")?, ctx.input(1)) {
            (Some(a), _) => a,
            (None, Some(name)) => self.const_i64(ctx, name, "axes")?,
            (None, None) if ctx.attr_i("noop_with_empty_axes", 0)? != 0 => vec![],
            (None, None) => (0..rank as i64).collect(),
        };
        let mut axes = axes
            .iter()
            .map(|&a| axis_of(a, rank).ok_or_else(|| ctx.unsupported("axis out of range")))
            .collect::<Result<Vec<_>>>()?;
        axes.sort_unstable();
        axes.dedup();
        let mut current = x;
        let mut shape = in_shape;
        for (i, &axis) in axes.iter().enumerate() {
            shape[axis] = 1;
            let name = format!("{}.reduce{i}", ctx.output(0)?);
            let next = self
                .graph
                .add_value(name, shape.clone(), ValueKind::Computed);
            self.graph
                .add_node(ctx.name(), Op::Reduce { kind, axis }, vec![current], next);
            current = next;
        }
        self.alias_output(ctx, current)
    }
}

fn hal_shape(ctx: &NodeCtx<'_>, dims: &[usize]) -> Result<cadence_hal::Shape> {
    cadence_hal::Shape::new(dims)
        .ok_or_else(|| ctx.unsupported(format!("rank {} is above the maximum", dims.len())))
}

fn tensor_f32(name: &str, t: &Tensor) -> Result<(Vec<usize>, Vec<f32>)> {
    let bad = |e: TractError| CompileError::Inference {
        tensor: name.into(),
        reason: format!("cannot read the constant as f32: {e}"),
    };
    let t = t.cast_to::<f32>().map_err(bad)?;
    let data = t
        .try_as_plain_ram()
        .map_err(bad)?
        .as_slice::<f32>()
        .map_err(bad)?
        .to_vec();
    Ok((t.shape().to_vec(), data))
}

fn transpose_2d(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}
