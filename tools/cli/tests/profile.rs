//! `cadence profile` as a user runs it: two packages of one task (a model and a
//! channel-pruned copy) profiled for a few frames, the report written and printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cadence_compiler::onnx_build::{Attr, OnnxBuilder};
use serde_json::Value;

fn cadence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cadence"))
        .args(args)
        .output()
        .expect("cadence runs")
}

fn ok(args: &[&str]) -> String {
    let out = cadence(args);
    assert!(
        out.status.success(),
        "cadence {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// conv(3x3, `channels`) → relu → conv(1x1, 2): `channels` sets the cost, as channel
/// pruning does.
fn compile_model(dir: &Path, name: &str, channels: usize) -> PathBuf {
    let weights = |count: usize, phase: f32| {
        (0..count)
            .map(|i| (i as f32 * 0.37 + phase).sin())
            .collect()
    };
    let model = OnnxBuilder::new()
        .input("x", &[1, 3, 16, 16])
        .initializer("w1", &[channels, 3, 3, 3], weights(channels * 27, 0.0))
        .initializer("w2", &[2, channels, 1, 1], weights(2 * channels, 1.0))
        .node(
            "Conv",
            &["x", "w1"],
            &["c1"],
            &[("pads", Attr::Ints(vec![1, 1, 1, 1]))],
        )
        .node("Relu", &["c1"], &["r1"], &[])
        .node("Conv", &["r1", "w2"], &["y"], &[])
        .output("y");
    let onnx = dir.join(format!("{name}.onnx"));
    std::fs::write(&onnx, model.to_bytes()).expect("write model");
    let pkg = dir.join(format!("{name}.cpk"));
    ok(&["compile", s(&onnx), "-o", s(&pkg)]);
    pkg
}

#[test]
fn two_packages_give_layers_and_a_cost_latency_comparison() {
    let dir = tempfile::tempdir().expect("temp dir");
    let full = compile_model(dir.path(), "det", 16);
    let pruned = compile_model(dir.path(), "det_pruned", 8);
    let out = dir.path().join("report");
    let printed = ok(&[
        "profile",
        s(&full),
        s(&pruned),
        "--frames",
        "8",
        "--warmup",
        "1",
        "--out",
        s(&out),
        "--task",
        "camera",
        "--json",
    ]);
    let report: Value = serde_json::from_str(&printed).expect("--json prints the report");
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("json");
    assert_eq!(
        report, written,
        "stdout and report.json hold the same report"
    );
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains(r#"data-chart="layers""#) && html.contains(r#"data-chart="pareto""#));

    let layers = report["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2);
    for (profile, pkg) in layers.iter().zip([&full, &pruned]) {
        assert_eq!(profile["package"], s(pkg));
        assert_eq!(profile["backend"], "cpu");
        assert_eq!(profile["frames"], 8);
        let steps = profile["steps"].as_array().expect("steps");
        let inspected: Value =
            serde_json::from_str(&ok(&["inspect", s(pkg), "--json"])).expect("json");
        assert_eq!(steps.len() as u64, inspected["steps"].as_u64().unwrap());
        for (i, (step, planned)) in steps
            .iter()
            .zip(inspected["plan"].as_array().unwrap())
            .enumerate()
        {
            assert_eq!(step["index"], i);
            assert_eq!(step["op"], planned["op"]);
            assert_eq!(step["name"], planned["name"]);
            assert!(step["p99_us"].as_f64().unwrap() >= step["p50_us"].as_f64().unwrap());
        }
        let shares: f64 = steps.iter().map(|s| s["share"].as_f64().unwrap()).sum();
        assert!((shares - 1.0).abs() < 1e-9, "shares sum to {shares}");
    }

    let pareto = report["pareto"].as_array().expect("pareto");
    assert_eq!(pareto.len(), 2);
    for (point, pkg) in pareto.iter().zip([&full, &pruned]) {
        let inspected: Value =
            serde_json::from_str(&ok(&["inspect", s(pkg), "--json"])).expect("json");
        assert_eq!(point["task"], "camera");
        assert_eq!(point["macs"], inspected["macs"]);
        assert_eq!(point["params"], inspected["params"]);
        assert_eq!(point["arena_bytes"], inspected["arena_bytes"]);
        assert!(point["p99_9_ms"].as_f64().unwrap() >= point["p50_ms"].as_f64().unwrap());
    }
    assert!(
        pareto[1]["macs"].as_u64() < pareto[0]["macs"].as_u64(),
        "the pruned package costs less: {pareto:?}"
    );
    assert!(
        report["tasks"].as_array().unwrap().is_empty()
            && report["timeline"].as_array().unwrap().is_empty()
    );
}

#[test]
fn one_package_prints_a_table_and_other_files_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pkg = compile_model(dir.path(), "det", 4);
    let out = dir.path().join("report");
    let table = ok(&["profile", s(&pkg), "--frames", "3", "--out", s(&out)]);
    for word in ["p50 ms", "p99.9 ms", "jitter", "report.html"] {
        assert!(table.contains(word), "table lacks {word}:\n{table}");
    }
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("json");
    assert!(
        report["pareto"].as_array().unwrap().is_empty(),
        "one package: nothing to compare"
    );

    let other = dir.path().join("model.onnx");
    std::fs::write(&other, "").expect("write");
    let refused = cadence(&["profile", s(&other), "--out", s(&out)]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("model.onnx") && message.contains(".cpk"),
        "{message}"
    );
}

#[test]
fn a_scenario_is_run_on_the_host_and_every_frame_lands_in_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("spin.toml");
    // Package-free tasks run for their budget on the host's workers.
    std::fs::write(
        &scenario,
        r#"
[[accelerator]]
name = "cpu0"
preemptive = false

[[task]]
name = "camera"
accelerator = "cpu0"
period_ms = 20.0
budget_ms = 2.0

[[task]]
name = "lidar"
accelerator = "cpu0"
period_ms = 40.0
budget_ms = 4.0
"#,
    )
    .expect("write");
    let out = dir.path().join("report");
    let table = ok(&[
        "profile",
        s(&scenario),
        "--seconds",
        "0.5",
        "--out",
        s(&out),
    ]);
    assert!(
        table.contains("camera") && table.contains("start delay"),
        "{table}"
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("json");
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    let count = |t: &Value, key: &str| t[key].as_u64().unwrap();
    let released: u64 = tasks.iter().map(|t| count(t, "released")).sum();
    for t in tasks {
        let ended = ["met", "late", "skipped", "failed"].map(|k| count(t, k));
        assert_eq!(ended.iter().sum::<u64>(), count(t, "released"), "{t}");
        assert!(count(t, "released") > 0);
        assert!(t["wcrt_ms"].as_f64().unwrap() >= t["budget_ms"].as_f64().unwrap());
    }
    // The camera releases twice per lidar release.
    let camera = count(&tasks[0], "released");
    let lidar = count(&tasks[1], "released");
    assert!(
        camera == 2 * lidar || camera == 2 * lidar - 1,
        "{camera} vs {lidar}"
    );
    let timeline = report["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty() && timeline.len() as u64 <= released);
    assert_eq!(
        timeline[0]["release_ms"].as_f64(),
        Some(0.0),
        "times count from the first release"
    );
    assert!(
        report["layers"].as_array().unwrap().is_empty(),
        "no packages, no layers"
    );
    assert!(out.join("report.html").exists());
}

/// A backend that runs the whole plan as one unit (tract) is profiled frame by frame
/// through the `Accelerator` trait; its per-layer profile is left out and said so.
#[test]
fn a_backend_without_step_timing_is_profiled_frame_by_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pkg = compile_model(dir.path(), "det", 4);
    let out = dir.path().join("report");
    let args = [
        "profile",
        s(&pkg),
        "--backend",
        "tract",
        "--frames",
        "4",
        "--warmup",
        "1",
        "--out",
        s(&out),
    ];
    let printed = ok(&args);
    assert!(
        printed.contains("profile on the tract backend")
            && printed.contains("no per-layer profile for")
            && printed.contains("runs the plan as one unit"),
        "{printed}"
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("json");
    assert!(report["layers"].as_array().unwrap().is_empty(), "{report}");
}
