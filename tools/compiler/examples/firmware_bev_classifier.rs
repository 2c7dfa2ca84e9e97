//! Writes the lidar model the Cortex-M7 firmware image embeds (`targets/firmware`): a
//! per-cell classifier over a coarse bird's-eye-view occupancy grid, small enough for
//! a microcontroller.
//!
//! `bev` `[1, 4, 16, 16]` (the grid `cadence_models::mcu::bev_input` builds) → conv
//! 4→8 (3×3, same padding) + ReLU → conv 8→8 (3×3) + ReLU → conv 8→4 (1×1) → softmax
//! over the channels → `cell_probs` `[1, 4, 16, 16]` (background and three classes per
//! cell). The shapes and names come from `cadence_models::mcu`, so the firmware, the
//! rig's reference and this model cannot disagree.
//!
//! Fixed pseudo-random weights (a seeded generator), so the file and its package are
//! the same on every machine. `tools/firmware.sh` runs this, then `cadence compile`.
//!
//! Usage: `cargo run --release -p cadence-compiler --example firmware_bev_classifier -- OUT.onnx`

use cadence_compiler::onnx_build::{Attr, OnnxBuilder};
use cadence_models::mcu::{BEV_CLASSES, BEV_INPUT, BEV_INPUT_SHAPE, BEV_OUTPUT};

#[path = "common/weights.rs"]
mod weights;

use weights::{Lcg, scale};

/// Seed of the weight generator.
const SEED: u64 = 0x00B1_D5E7;
/// Output channels and kernel side of each convolution; the last gives the classes.
const CONVS: [(usize, usize); 3] = [(8, 3), (8, 3), (BEV_CLASSES, 1)];

fn main() -> std::io::Result<()> {
    let out = std::env::args_os().nth(1).ok_or_else(|| {
        std::io::Error::other("usage: firmware_bev_classifier OUT.onnx (the model file to write)")
    })?;
    let mut rng = Lcg(SEED);
    let mut model = OnnxBuilder::new().input(BEV_INPUT, &BEV_INPUT_SHAPE);
    let mut previous = (BEV_INPUT.to_owned(), BEV_INPUT_SHAPE[1]);
    for (index, &(channels, kernel)) in CONVS.iter().enumerate() {
        let fan_in = previous.1 * kernel * kernel;
        let (weight, bias, conv) = (
            format!("conv{index}.weight"),
            format!("conv{index}.bias"),
            format!("conv{index}"),
        );
        let attrs = [
            ("kernel_shape", Attr::Ints(vec![kernel as i64; 2])),
            ("pads", Attr::Ints(vec![kernel as i64 / 2; 4])),
        ];
        model = model
            .initializer(
                &weight,
                &[channels, previous.1, kernel, kernel],
                rng.values(channels * fan_in, scale(fan_in)),
            )
            .initializer(&bias, &[channels], rng.values(channels, 0.1))
            .node("Conv", &[&previous.0, &weight, &bias], &[&conv], &attrs);
        previous = if index + 1 < CONVS.len() {
            let relu = format!("relu{index}");
            model = model.node("Relu", &[&conv], &[&relu], &[]);
            (relu, channels)
        } else {
            (conv, channels)
        };
    }
    let model = model
        .node(
            "Softmax",
            &[&previous.0],
            &[BEV_OUTPUT],
            &[("axis", Attr::Int(1))],
        )
        .output(BEV_OUTPUT);
    std::fs::write(&out, model.to_bytes())
}
