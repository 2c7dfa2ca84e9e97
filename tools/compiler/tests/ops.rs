//! Every lowered ONNX op against tract, on random shapes, parameters and values: each
//! case builds a one- or two-node ONNX model, compiles it (tract records the reference
//! outputs as test vectors) and runs the package on Cadence's CPU backend.

mod common;

use cadence_compiler::onnx_build::{Attr, OnnxBuilder};
use cadence_hal::op::Op;
use cadence_runtime::package::Package;
use common::{assert_matches_reference, check, compile, package_bytes, values};
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    }
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn conv(
        c in 1usize..5, m_per_group in 1usize..4, h in 3usize..11, w in 3usize..11,
        k in 1usize..4, stride in 1usize..3, dil in 1usize..3,
        pads in prop::array::uniform4(0usize..2), depthwise in any::<bool>(), bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (groups, m) = if depthwise { (c, c * m_per_group) } else { (1, m_per_group * 2) };
        prop_assume!(h + pads[0] + pads[2] > dil * (k - 1) && w + pads[1] + pads[3] > dil * (k - 1));
        let w_shape = [m, c / groups, k, k];
        let mut model = OnnxBuilder::new()
            .input("x", &[1, c, h, w])
            .initializer("w", &w_shape, values(seed, w_shape.iter().product()));
        let mut inputs = vec!["x", "w"];
        if bias {
            model = model.initializer("b", &[m], values(seed + 1, m));
            inputs.push("b");
        }
        let model = model
            .node("Conv", &inputs, &["y"], &[
                ("group", Attr::Int(groups as i64)),
                ("strides", ints(&[stride, stride])),
                ("dilations", ints(&[dil, dil])),
                ("pads", ints(&pads)),
            ])
            .output("y");
        check(&model);
    }

    #[test]
    fn conv_with_batchnorm_and_activation_fused(
        c in 1usize..4, m in 1usize..6, hw in 4usize..9, act in 0usize..4, seed in any::<u64>(),
    ) {
        let pos = |s: u64| values(s, m).iter().map(|v| v.abs() + 0.5).collect::<Vec<_>>();
        let (op, attrs): (&str, Vec<(&str, Attr)>) = match act {
            0 => ("Relu", vec![]),
            1 => ("HardSwish", vec![]),
            2 => ("LeakyRelu", vec![("alpha", Attr::Float(0.1))]),
            _ => ("Sigmoid", vec![]),
        };
        let model = OnnxBuilder::new()
            .input("x", &[1, c, hw, hw])
            .initializer("w", &[m, c, 3, 3], values(seed, m * c * 9))
            .initializer("g", &[m], pos(seed + 1))
            .initializer("beta", &[m], values(seed + 2, m))
            .initializer("mean", &[m], values(seed + 3, m))
            .initializer("var", &[m], pos(seed + 4))
            .node("Conv", &["x", "w"], &["c"], &[("pads", ints(&[1, 1, 1, 1]))])
            .node("BatchNormalization", &["c", "g", "beta", "mean", "var"], &["bn"], &[])
            .node(op, &["bn"], &["y"], &attrs)
            .output("y");
        check(&model);
    }

    #[test]
    fn conv_transpose(
        c in 1usize..4, m in 1usize..4, h in 2usize..7, k in 1usize..4, stride in 1usize..3,
        pad in 0usize..2, out_pad in 0usize..2, seed in any::<u64>(),
    ) {
        prop_assume!(out_pad < stride && pad < k);
        let model = OnnxBuilder::new()
            .input("x", &[1, c, h, h])
            .initializer("w", &[c, m, k, k], values(seed, c * m * k * k))
            .initializer("b", &[m], values(seed + 1, m))
            .node("ConvTranspose", &["x", "w", "b"], &["y"], &[
                ("strides", ints(&[stride, stride])),
                ("pads", ints(&[pad, pad, pad, pad])),
                ("output_padding", ints(&[out_pad, out_pad])),
            ])
            .output("y");
        check(&model);
    }

    #[test]
    fn gemm(
        m in 1usize..9, k in 1usize..17, n in 1usize..17, trans_b in any::<bool>(),
        alpha in 0.5f32..2.0, beta in 0.5f32..2.0, seed in any::<u64>(),
    ) {
        let b_shape = if trans_b { [n, k] } else { [k, n] };
        let model = OnnxBuilder::new()
            .input("a", &[m, k])
            .initializer("b", &b_shape, values(seed, k * n))
            .initializer("c", &[n], values(seed + 1, n))
            .node("Gemm", &["a", "b", "c"], &["y"], &[
                ("transB", Attr::Int(trans_b as i64)),
                ("alpha", Attr::Float(alpha)),
                ("beta", Attr::Float(beta)),
            ])
            .output("y");
        check(&model);
    }

    #[test]
    fn matmul(batch in 1usize..4, m in 1usize..9, k in 1usize..20, n in 1usize..20, seed in any::<u64>()) {
        let shared = OnnxBuilder::new()
            .input("a", &[batch, m, k])
            .initializer("b", &[k, n], values(seed, k * n))
            .node("MatMul", &["a", "b"], &["y"], &[])
            .output("y");
        check(&shared);
        let batched = OnnxBuilder::new()
            .input("a", &[batch, m, k])
            .input("b", &[batch, k, n])
            .node("MatMul", &["a", "b"], &["y"], &[])
            .output("y");
        check(&batched);
    }

    #[test]
    fn binary_broadcasting(op in 0usize..6, pattern in 0usize..6, constant in any::<bool>(), seed in any::<u64>()) {
        let a = [2, 3, 4, 5];
        let b: &[usize] = match pattern {
            0 => &[2, 3, 4, 5],
            1 => &[5],
            2 => &[3, 1, 1],
            3 => &[1],
            4 => &[2, 1, 4, 1],
            _ => &[1, 3, 4, 5],
        };
        let name = ["Add", "Sub", "Mul", "Div", "Max", "Min"][op];
        let mut model = OnnxBuilder::new().input("a", &a);
        let b_values: Vec<f32> = values(seed, b.iter().product()).iter().map(|v| v + 2.5).collect();
        model = if constant { model.initializer("b", b, b_values) } else { model.input("b", b) };
        let model = model.node(name, &["a", "b"], &["y"], &[]).output("y");
        check(&model);
    }

    /// A pillar feature net's "linear, BatchNorm, ReLU, max over the points" fuses into
    /// one step whatever the sizes; a max pool that leaves part of W unreduced, or a conv
    /// with a second reader, does not.
    #[test]
    fn pointwise_conv_then_max_over_points(
        c in 1usize..10, m in 1usize..20, pillars in 1usize..40, points in 1usize..40,
        whole in any::<bool>(), second_reader in any::<bool>(), seed in any::<u64>(),
    ) {
        let pos = |s: u64| values(s, m).iter().map(|v| v.abs() + 0.5).collect::<Vec<_>>();
        let kernel = if whole { points } else { points.div_ceil(2) };
        let mut model = OnnxBuilder::new()
            .input("x", &[1, c, pillars, points])
            .initializer("w", &[m, c, 1, 1], values(seed, m * c))
            .initializer("g", &[m], pos(seed + 1))
            .initializer("beta", &[m], values(seed + 2, m))
            .initializer("mean", &[m], values(seed + 3, m))
            .initializer("var", &[m], pos(seed + 4))
            .node("Conv", &["x", "w"], &["c"], &[])
            .node("BatchNormalization", &["c", "g", "beta", "mean", "var"], &["bn"], &[])
            .node("Relu", &["bn"], &["r"], &[])
            .node("MaxPool", &["r"], &["y"], &[("kernel_shape", ints(&[1, kernel]))])
            .output("y");
        if second_reader {
            model = model.output("r");
        }
        let compiled = compile(&model);
        assert_matches_reference(&compiled);
        let bytes = package_bytes(&compiled);
        let pkg = Package::parse(bytes.as_slice()).expect("package parses");
        let ops: Vec<&str> = pkg.plan().steps.iter()
            .map(|s| Op::decode(s).expect("op decodes").name())
            .collect();
        let fused = kernel == points && !second_reader;
        prop_assert_eq!(ops.contains(&"pointwise_conv_max"), fused, "{:?}", ops);
        prop_assert_eq!(ops.contains(&"max_pool2d"), !fused, "{:?}", ops);
    }

    #[test]
    fn pooling(
        max in any::<bool>(), k in 1usize..4, stride in 1usize..3, pad in 0usize..2,
        ceil in any::<bool>(), include_pad in any::<bool>(), h in 3usize..10, w in 3usize..10,
    ) {
        prop_assume!(pad < k);
        prop_assume!(!(ceil && include_pad && !max));
        let mut attrs = vec![
            ("kernel_shape", ints(&[k, k])),
            ("strides", ints(&[stride, stride])),
            ("pads", ints(&[pad, pad, pad, pad])),
            ("ceil_mode", Attr::Int(ceil as i64)),
        ];
        if !max {
            attrs.push(("count_include_pad", Attr::Int(include_pad as i64)));
        }
        let model = OnnxBuilder::new()
            .input("x", &[1, 3, h, w])
            .node(if max { "MaxPool" } else { "AveragePool" }, &["x"], &["y"], &attrs)
            .output("y");
        check(&model);
    }

    #[test]
    fn transpose(perm_index in 0usize..24, seed in any::<u64>()) {
        let _ = seed;
        let mut perm: Vec<usize> = (0..4).collect();
        let mut i = perm_index;
        for n in (1..=4).rev() {
            perm.swap(n - 1, i % n);
            i /= n;
        }
        let model = OnnxBuilder::new()
            .input("x", &[2, 3, 4, 5])
            .node("Transpose", &["x"], &["y"], &[("perm", ints(&perm))])
            .output("y");
        check(&model);
    }

    #[test]
    fn resize(nearest in any::<bool>(), transform in 0usize..4, rounding in 0usize..4, by_sizes in any::<bool>(),
              h in 2usize..7, w in 2usize..7, scale in 1usize..4) {
        let transform = ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"][transform];
        let rounding = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"][rounding];
        let mut model = OnnxBuilder::new().input("x", &[1, 2, h, w]).initializer("roi", &[0], vec![]);
        let inputs: Vec<&str> = if by_sizes {
            model = model.initializer("scales", &[0], vec![]).initializer_i64("sizes", vec![1, 2, (h * scale + 1) as i64, (w * scale) as i64]);
            vec!["x", "roi", "scales", "sizes"]
        } else {
            model = model.initializer("scales", &[4], vec![1.0, 1.0, scale as f32, scale as f32]);
            vec!["x", "roi", "scales"]
        };
        let model = model
            .node("Resize", &inputs, &["y"], &[
                ("mode", Attr::Str(if nearest { "nearest" } else { "linear" }.into())),
                ("coordinate_transformation_mode", Attr::Str(transform.into())),
                ("nearest_mode", Attr::Str(rounding.into())),
            ])
            .output("y");
        check(&model);
    }

    #[test]
    fn softmax_and_reductions(axis in 0usize..4, keep in any::<bool>(), reduce in 0usize..3) {
        let softmax = OnnxBuilder::new()
            .input("x", &[2, 3, 4, 5])
            .node("Softmax", &["x"], &["y"], &[("axis", Attr::Int(axis as i64))])
            .output("y");
        check(&softmax);
        let op = ["ReduceMean", "ReduceMax", "ReduceSum"][reduce];
        let model = OnnxBuilder::new()
            .input("x", &[2, 3, 4, 5])
            .initializer_i64("axes", vec![axis as i64]);
        let model = if op == "ReduceSum" {
            model.node(op, &["x", "axes"], &["y"], &[("keepdims", Attr::Int(keep as i64))])
        } else {
            model.node(op, &["x"], &["y"], &[("axes", ints(&[axis])), ("keepdims", Attr::Int(keep as i64))])
        };
        check(&model.output("y"));
    }

    #[test]
    fn slice_and_split(axis in 0usize..4, start in 0usize..3, step in 1usize..3) {
        let model = OnnxBuilder::new()
            .input("x", &[3, 4, 5, 6])
            .initializer_i64("starts", vec![start as i64])
            .initializer_i64("ends", vec![i64::MAX])
            .initializer_i64("axes", vec![axis as i64])
            .initializer_i64("steps", vec![step as i64])
            .node("Slice", &["x", "starts", "ends", "axes", "steps"], &["y"], &[])
            .output("y");
        check(&model);
        let split = OnnxBuilder::new()
            .input("x", &[3, 4, 5, 6])
            .node("Split", &["x"], &["p", "q"], &[("axis", Attr::Int(1))])
            .output("p")
            .output("q");
        check(&split);
    }
}

#[test]
fn activations() {
    for (op, attrs) in [
        ("Relu", vec![]),
        ("Sigmoid", vec![]),
        ("Tanh", vec![]),
        ("HardSwish", vec![]),
        (
            "HardSigmoid",
            vec![("alpha", Attr::Float(0.3)), ("beta", Attr::Float(0.4))],
        ),
        ("LeakyRelu", vec![("alpha", Attr::Float(0.2))]),
    ] {
        let model = OnnxBuilder::new()
            .input("x", &[2, 3, 7])
            .node(op, &["x"], &["y"], &attrs)
            .output("y");
        check(&model);
    }
    let clip = OnnxBuilder::new()
        .input("x", &[2, 3, 7])
        .initializer("lo", &[], vec![-0.25])
        .initializer("hi", &[], vec![0.5])
        .node("Clip", &["x", "lo", "hi"], &["y"], &[])
        .output("y");
    check(&clip);
}

#[test]
fn concat_reshape_and_global_pools() {
    let model = OnnxBuilder::new()
        .input("a", &[1, 2, 4, 4])
        .input("b", &[1, 3, 4, 4])
        .initializer("c", &[1, 1, 4, 4], values(7, 16))
        .initializer_i64("shape", vec![1, -1])
        .node(
            "Concat",
            &["a", "b", "c"],
            &["cat"],
            &[("axis", Attr::Int(1))],
        )
        .node("GlobalAveragePool", &["cat"], &["gap"], &[])
        .node("GlobalMaxPool", &["cat"], &["gmp"], &[])
        .node("Reshape", &["gap", "shape"], &["flat"], &[])
        .node("Flatten", &["gmp"], &["flat_max"], &[])
        .output("flat")
        .output("flat_max")
        .output("cat");
    check(&model);
}

#[test]
fn outputs_that_alias_inputs_or_constants_get_their_own_buffer() {
    let model = OnnxBuilder::new()
        .input("x", &[2, 3])
        .initializer("k", &[2, 3], values(3, 6))
        .node("Identity", &["x"], &["same"], &[])
        .node("Identity", &["k"], &["konst"], &[])
        .output("same")
        .output("konst");
    check(&model);
}
