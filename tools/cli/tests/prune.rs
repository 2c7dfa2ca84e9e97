//! `cadence prune` as a user runs it: the figures it reports are those of the file it
//! writes, and a model that cannot be pruned fails with the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cadence_compiler::onnx_build::{Attr, OnnxBuilder};
use cadence_compiler::{CompileOptions, compile};

fn cadence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cadence"))
        .args(args)
        .output()
        .expect("cadence runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn macs(model: &Path) -> u64 {
    let options = CompileOptions {
        test_cases: 0,
        ..CompileOptions::default()
    };
    compile(model, &options)
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()))
        .package
        .provenance
        .macs
}

#[test]
fn reported_macs_are_those_of_the_written_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = repo().join("models/camera/camera_det.onnx");
    let pruned = dir.path().join("pruned.onnx");
    let out = cadence(&[
        "prune",
        s(&model),
        "--ratio",
        "0.5",
        "-o",
        s(&pruned),
        "--frames",
        "2",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["macs"]["before"], macs(&model));
    assert_eq!(report["macs"]["after"], macs(&pruned));
    assert!(report["macs"]["after"].as_u64() < report["macs"]["before"].as_u64());
    assert!(
        report["cpu_p50_ms"]["after"]
            .as_f64()
            .is_some_and(|v| v > 0.0)
    );
    for d in report["deviation"].as_array().expect("deviations") {
        assert!(d["max_abs"].as_f64().is_some_and(f64::is_finite), "{d}");
    }
    let whole = report["not_pruned"].as_array().expect("list");
    assert!(
        whole
            .iter()
            .all(|n| n["reason"].as_str().is_some_and(|r| !r.is_empty())),
        "{whole:?}"
    );
    assert!(!report["pruned"].as_array().expect("list").is_empty());
}

#[test]
fn tables_list_figures_and_layers_left_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = repo().join("models/lidar/backbone.onnx");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "\"block0.0.conv\" = \"skip\"\n").expect("write");
    let pruned = dir.path().join("pruned.onnx");
    let out = cadence(&[
        "prune",
        s(&model),
        "--ratio",
        "0.25",
        "--per-layer",
        s(&rules),
        "-o",
        s(&pruned),
        "--frames",
        "1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "MACs",
        "parameters",
        "CPU p50 ms",
        "max |pruned - original|",
        "left whole",
        "skipped by the per-layer rules",
        "channels reach graph output",
    ] {
        assert!(text.contains(needle), "lacks `{needle}`:\n{text}");
    }
}

#[test]
fn a_model_with_nothing_to_prune_fails_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = OnnxBuilder::new()
        .input("x", &[1, 3, 8, 8])
        .initializer("w", &[4, 3, 1, 1], vec![0.5; 12])
        .node("Conv", &["x", "w"], &["c"], &[])
        .node("Flatten", &["c"], &["y"], &[("axis", Attr::Int(1))])
        .output("y");
    let path = dir.path().join("flat.onnx");
    std::fs::write(&path, model.to_bytes()).expect("write");
    let pruned = dir.path().join("pruned.onnx");
    let out = cadence(&["prune", s(&path), "--ratio", "0.5", "-o", s(&pruned)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing to prune") && err.contains("`Flatten_1` (Flatten)"),
        "{err}"
    );
    assert!(
        !pruned.exists(),
        "no file is written when nothing was pruned"
    );
}
