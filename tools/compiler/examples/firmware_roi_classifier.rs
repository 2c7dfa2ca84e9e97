//! Writes the ONNX model the Cortex-M7 firmware image embeds (`targets/firmware`): a
//! camera region-of-interest classifier small enough for a microcontroller's RAM.
//!
//! `roi` `[1, 3, 32, 32]` → conv 3→8 (3×3, stride 2) + ReLU → conv 8→16 (3×3, stride 2)
//! + ReLU → global average pool → fully connected 16→4 → softmax → `class_probs` `[1, 4]`.
//!
//! The weights are fixed pseudo-random values (a seeded generator, scaled per layer so
//! activations neither vanish nor explode), so the file, and the package compiled from
//! it, are the same on every machine. `tools/firmware.sh` runs this, then
//! `cadence compile` on the result.
//!
//! Usage: `cargo run --release -p cadence-compiler --example firmware_roi_classifier -- OUT.onnx`

use cadence_compiler::onnx_build::{Attr, OnnxBuilder};

#[path = "common/weights.rs"]
mod weights;

use weights::{Lcg, scale};

/// Seed of the weight generator.
const SEED: u64 = 0x00C0_FFEE;
/// Input channels, height and width of a region of interest.
const ROI: [usize; 3] = [3, 32, 32];
/// Output channels of the two convolutions.
const CONV_CHANNELS: [usize; 2] = [8, 16];
/// Object classes scored.
const CLASSES: usize = 4;
/// Convolution kernel size (square).
const KERNEL: usize = 3;

fn main() -> std::io::Result<()> {
    let out = std::env::args_os().nth(1).ok_or_else(|| {
        std::io::Error::other("usage: firmware_roi_classifier OUT.onnx (the model file to write)")
    })?;
    let mut rng = Lcg(SEED);
    let conv_attrs = [
        ("kernel_shape", Attr::Ints(vec![KERNEL as i64; 2])),
        ("strides", Attr::Ints(vec![2, 2])),
        ("pads", Attr::Ints(vec![1; 4])),
    ];

    let mut model = OnnxBuilder::new().input("roi", &[1, ROI[0], ROI[1], ROI[2]]);
    let mut previous = ("roi".to_owned(), ROI[0]);
    for (index, &channels) in CONV_CHANNELS.iter().enumerate() {
        let fan_in = previous.1 * KERNEL * KERNEL;
        let (weight, bias, conv, relu) = (
            format!("conv{index}.weight"),
            format!("conv{index}.bias"),
            format!("conv{index}"),
            format!("relu{index}"),
        );
        model = model
            .initializer(
                &weight,
                &[channels, previous.1, KERNEL, KERNEL],
                rng.values(channels * fan_in, scale(fan_in)),
            )
            .initializer(&bias, &[channels], rng.values(channels, 0.1))
            .node(
                "Conv",
                &[&previous.0, &weight, &bias],
                &[&conv],
                &conv_attrs,
            )
            .node("Relu", &[&conv], &[&relu], &[]);
        previous = (relu, channels);
    }
    let features = previous.1;
    let model = model
        .node("GlobalAveragePool", &[&previous.0], &["pooled"], &[])
        .node(
            "Flatten",
            &["pooled"],
            &["features"],
            &[("axis", Attr::Int(1))],
        )
        .initializer(
            "fc.weight",
            &[features, CLASSES],
            rng.values(features * CLASSES, scale(features)),
        )
        .initializer("fc.bias", &[CLASSES], rng.values(CLASSES, 0.1))
        .node(
            "Gemm",
            &["features", "fc.weight", "fc.bias"],
            &["logits"],
            &[],
        )
        .node(
            "Softmax",
            &["logits"],
            &["class_probs"],
            &[("axis", Attr::Int(1))],
        )
        .output("class_probs");
    std::fs::write(&out, model.to_bytes())
}
