//! `cadence` built without the `tract` feature, as tools/aarch64.sh builds it: the
//! commands that need tract say which feature to rebuild with, and `selftest` checks a
//! package on the CPU backend alone. Run with `--no-default-features`; with the
//! feature on there is nothing here to test.
#![cfg(not(feature = "tract"))]

#[path = "../../../targets/host/tests/common/mod.rs"]
mod common;

use std::process::{Command, Output};

fn cadence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cadence"))
        .args(args)
        .output()
        .expect("cadence runs")
}

/// Asserts `out` failed and its error names the missing feature and the fix.
fn assert_names_the_feature(args: &[&str], out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("no `tract` feature")
            && stderr.contains("--features tract"),
        "cadence {args:?}: {:?}\n{stderr}",
        out.status
    );
}

#[test]
fn commands_that_need_tract_name_the_feature() {
    for command in ["compile", "prune", "placeholder", "check-spec"] {
        let args = [command, "model.onnx", "-o", "model.cpk"];
        assert_names_the_feature(&args, &cadence(&args));
    }
    let help = cadence(&["--help"]);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("no `tract` feature"),
        "{help:?}"
    );
}

#[test]
fn selftest_checks_the_cpu_backend_alone() {
    let package = common::packages().get("pfn");
    let package = package.to_str().expect("UTF-8 path");
    let out = cadence(&["selftest", package]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("| cpu") && !stdout.contains("tract"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = ["selftest", package, "--backend", "tract"];
    assert_names_the_feature(&args, &cadence(&args));
}

#[test]
fn bench_names_the_onnxruntime_feature() {
    let package = common::packages().get("pfn");
    let args = [
        "bench",
        package.to_str().expect("UTF-8 path"),
        "--backend",
        "onnxruntime",
    ];
    let out = cadence(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--features onnxruntime"),
        "cadence {args:?}: {:?}\n{stderr}",
        out.status
    );
}
