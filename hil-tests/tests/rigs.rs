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

/// `cadence-hil script` against `rig`'s DUT: its transcript, one line per answer.
fn script_transcript(rig: &Path, models: &Path) -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_cadence-hil"))
        .arg("script")
        .arg(rig)
        .arg("--models")
        .arg(models)
        .current_dir(common::repo())
        .output()
        .expect("running cadence-hil script");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", rig.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The answers the session module's table gives to `cadence_hil::script`'s messages,
/// for a DUT serving both streams, numbered as the rig numbers them.
fn script_answers() -> Vec<String> {
    let summary = |frames: &str, link: &str| format!("Summary: {frames}; link: {link}");
    // Before the Reset: the noise, the damaged frame, the repeat and the two gaps.
    let faults = "27 bytes skipped, garbage 1, header checksum 0, version 0, unknown kind 0, \
                  too long 0, payload checksum 1, truncated 0, duplicate 1, out of order 2";
    let no_faults = "0 bytes skipped, garbage 0, header checksum 0, version 0, unknown kind 0, \
                     too long 0, payload checksum 0, truncated 0, duplicate 0, out of order 0";
    [
        "Hello serving Camera+Lidar",
        "TimingRecord of Camera 0: Skipped",
        "TimingRecord of Lidar 1: Skipped",
        "Ack of Start 2",
        "Detections of Camera 3",
        "TimingRecord of Camera 3: ran",
        "Detections of Lidar 4",
        "TimingRecord of Lidar 4: ran",
        "TimingRecord of Camera 5: Refused",
        "Ack of Start 6",
        "Detections of Lidar 8",
        "TimingRecord of Lidar 8: ran",
        &summary(
            "6 frames received, 6 records sent (3 ran, 2 Skipped, 0 Failed, 1 Refused)",
            &format!("10 messages, {faults}"),
        ),
        "TimingRecord of Camera 12: Skipped",
        &summary(
            "7 frames received, 7 records sent (3 ran, 3 Skipped, 0 Failed, 1 Refused)",
            &format!("12 messages, {faults}"),
        ),
        "Ack of Start 14",
        "Ack of Reset 15",
        "TimingRecord of Lidar 16: Skipped",
        "Ack of Start 17",
        "Detections of Camera 18",
        "TimingRecord of Camera 18: ran",
        &summary(
            "2 frames received, 2 records sent (1 ran, 1 Skipped, 0 Failed, 0 Refused)",
            &format!("4 messages, {no_faults}"),
        ),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Both DUTs run `cadence_runtime::wire::session`: fed the same byte script, the host
/// DUT answers as the protocol's table says (frames before `Start` skipped, not run),
/// and the firmware DUT under QEMU, when its image is built (tools/firmware.sh), answers
/// exactly as the host DUT does.
#[test]
fn host_and_firmware_duts_answer_one_script_alike() {
    build_dut();
    let dir = tempfile::tempdir().unwrap();
    let models = models(dir.path());
    let repo = common::repo();
    let host = script_transcript(&repo.join("hil-tests/rigs/host.toml"), &models);
    assert_eq!(host, script_answers(), "the host DUT's answers");

    let image = repo.join("out/firmware/cadence-firmware-dut.elf");
    let qemu = Command::new("qemu-system-arm").arg("--version").output();
    if !image.exists() || qemu.is_err() {
        eprintln!(
            "firmware DUT not compared: it needs qemu-system-arm and {} \
             (tools/setup-cross.sh, then tools/firmware.sh)",
            image.display()
        );
        return;
    }
    let firmware = script_transcript(&repo.join("hil-tests/rigs/qemu-m7.toml"), &models);
    assert_eq!(
        firmware, host,
        "the firmware DUT's answers against the host DUT's"
    );
}
