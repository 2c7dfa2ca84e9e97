//! The rig end to end: `hil-tests/rigs/host.toml` against the `cadence-dut` binary,
//! with every fault, must pass every check; and a rig whose reference is not what the
//! DUT runs must fail exactly its outputs check.
//!
//! The bundled packages are compiled by the host target's test helper (shared source,
//! shared cache under `target/`: CI runs tests before `tools/build-models.sh`) and
//! laid out as `{models}/camera/*.cpk`, `{models}/lidar/*.cpk` for `--models`.

#[path = "../../targets/host/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `cadence-dut` next to `cadence-hil` (where `{bin}` points).
fn build_dut() {
    let hil = PathBuf::from(env!("CARGO_BIN_EXE_cadence-hil"));
    let profile_dir = hil.parent().expect("the binaries' folder");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(name) => name.to_owned(),
        None => panic!("no profile folder above {}", hil.display()),
    };
    let status = Command::new(env!("CARGO"))
        .args(["build", "--profile", &profile, "-p", "cadence-host"])
        .args(["--bin", "cadence-dut"])
        .current_dir(common::repo())
        .status()
        .expect("running cargo to build cadence-dut");
    assert!(status.success(), "building cadence-dut failed");
}

/// A `--models` folder of links to the compiled packages.
fn models(dir: &Path) -> PathBuf {
    let packages = common::packages();
    let root = dir.join("models");
    for (folder, stem) in [
        ("camera", "camera_det"),
        ("camera", "camera_det_pruned"),
        ("lidar", "pfn"),
        ("lidar", "backbone_pruned"),
    ] {
        std::fs::create_dir_all(root.join(folder)).unwrap();
        let target = std::fs::canonicalize(packages.get(stem)).unwrap();
        std::os::unix::fs::symlink(target, root.join(folder).join(format!("{stem}.cpk"))).unwrap();
    }
    root
}

fn run(rig: &Path, dir: &Path, models: &Path) -> (i32, String) {
    let junit = dir.join("junit.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_cadence-hil"))
        .arg("run")
        .arg(rig)
        .arg("--junit")
        .arg(&junit)
        .arg("--report")
        .arg(dir.join("report"))
        .arg("--models")
        .arg(models)
        .current_dir(common::repo())
        .output()
        .expect("running cadence-hil");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    let junit = std::fs::read_to_string(&junit).expect("the JUnit file");
    (output.status.code().unwrap_or(-1), junit)
}

/// The JUnit test case named `name`, and whether it failed.
fn case(junit: &str, name: &str) -> Option<bool> {
    let start = junit.find(&format!("<testcase name=\"{name}\" "))?;
    let end = start + junit[start..].find("</testcase>")?;
    Some(junit[start..end].contains("<failure"))
}

#[test]
fn host_rig_passes_every_check_under_every_fault() {
    build_dut();
    let dir = tempfile::tempdir().unwrap();
    let models = models(dir.path());
    let (status, junit) = run(
        &common::repo().join("hil-tests/rigs/host.toml"),
        dir.path(),
        &models,
    );
    for name in [
        "hello",
        "start-ack",
        "outputs-camera",
        "outputs-lidar",
        "deadlines-camera",
        "deadlines-lidar",
        "latency-camera",
        "latency-lidar",
        "accounting",
        "fault-drop-frames",
        "fault-corrupt-frame",
        "fault-duplicate-frame",
        "fault-delay",
        "fault-stall",
        "fault-restart",
    ] {
        assert_eq!(
            case(&junit, name),
            Some(false),
            "test case `{name}`:\n{junit}"
        );
    }
    assert_eq!(status, 0, "{junit}");
    let report = std::fs::read_to_string(dir.path().join("report/report.html")).unwrap();
    assert!(report.contains("PASS") && report.contains("<svg"));
}

#[test]
fn a_wrong_reference_fails_the_outputs_check_only() {
    build_dut();
    let dir = tempfile::tempdir().unwrap();
    let models = models(dir.path());
    // The DUT runs the pruned detector; the rig expects the full one's detections.
    let rig = r#"
        name = "wrong-reference"
        [dut]
        command = ["{bin}/cadence-dut", "--listen", "127.0.0.1:{port}",
                   "--camera", "{models}/camera/camera_det_pruned.cpk"]
        transport = "tcp-connect"
        address = "127.0.0.1:{port}"
        [reference]
        camera = "{models}/camera/camera_det.cpk"
        score_tolerance = 1e-4
        box_tolerance = 1e-3
        [run]
        seconds = 1.0
        time_scale = 4.0
        [[stream]]
        kind = "camera"
        rate_hz = 30.0
        deadline_ms = 33.3
        data = "models/data/camera"
        width = 320
        height = 320
    "#;
    let path = dir.path().join("wrong-reference.toml");
    std::fs::write(&path, rig).unwrap();
    let (status, junit) = run(&path, dir.path(), &models);
    assert_eq!(status, 1, "{junit}");
    assert_eq!(case(&junit, "outputs-camera"), Some(true), "{junit}");
    for name in ["hello", "start-ack", "accounting"] {
        assert_eq!(
            case(&junit, name),
            Some(false),
            "test case `{name}`:\n{junit}"
        );
    }
}
