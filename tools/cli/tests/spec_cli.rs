//! `cadence placeholder` and `cadence check-spec` as a user runs them: placeholders of
//! the bundled specs implement them and pass selftest; a package that does not
//! implement a spec exits 1 with every difference, in text and JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cadence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cadence"))
        .args(args)
        .output()
        .expect("cadence runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn spec(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/specs")
        .join(name);
    path.to_str().expect("utf-8 path").to_owned()
}

fn placeholder(dir: &Path, spec_file: &str, extra: &[&str]) -> PathBuf {
    let package = dir.join(format!("{spec_file}.cpk"));
    let package_arg = package.to_str().unwrap();
    let spec_path = spec(spec_file);
    let mut args = vec![
        "placeholder",
        &spec_path,
        "-o",
        package_arg,
        "--test-cases",
        "1",
    ];
    args.extend_from_slice(extra);
    let out = cadence(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    package
}

#[test]
fn placeholders_of_the_bundled_specs_implement_them_and_pass_selftest() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["camera_det.toml", "lidar_backbone.toml", "lidar_pfn.toml"] {
        let package = placeholder(dir.path(), name, &[]);
        let package = package.to_str().unwrap();
        let out = cadence(&["check-spec", package, &spec(name)]);
        assert!(out.status.success(), "{name}: {}", stdout(&out));
        assert!(stdout(&out).contains("implements"), "{}", stdout(&out));
        let out = cadence(&["selftest", package, "--backend", "cpu"]);
        assert!(out.status.success(), "{name}: {}", stdout(&out));
    }
}

#[test]
fn a_package_that_differs_exits_1_with_every_difference() {
    let dir = tempfile::tempdir().unwrap();
    // Built with another anchor count than the one every bundled detector has is fine
    // (A is symbolic); checked against the PFN's spec, nothing matches.
    let camera = placeholder(dir.path(), "camera_det.toml", &["--dim", "A=300"]);
    let camera = camera.to_str().unwrap();
    assert!(
        cadence(&["check-spec", camera, &spec("camera_det.toml")])
            .status
            .success()
    );

    let out = cadence(&["check-spec", camera, &spec("lidar_pfn.toml")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("5 differences"), "{text}");
    assert!(
        text.contains("input `pillars`: in the spec, missing from the package"),
        "{text}"
    );

    let out = cadence(&["check-spec", camera, &spec("lidar_pfn.toml"), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["implements"], false);
    assert_eq!(report["spec_name"], "lidar-pfn");
    let kinds: Vec<&str> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "missing",
            "unexpected",
            "missing",
            "unexpected",
            "unexpected"
        ]
    );
}

#[test]
fn spec_and_dim_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[input]]\nname = \"a\"\ndtype = \"f16\"\nshape = [1]\n",
    )
    .unwrap();
    let out = cadence(&["placeholder", bad.to_str().unwrap(), "-o", "/dev/null"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:4:9: input[0].dtype: unknown element type `f16`"),
        "{stderr}"
    );

    let out = cadence(&[
        "placeholder",
        &spec("lidar_pfn.toml"),
        "-o",
        "/dev/null",
        "--dim",
        "Q=3",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the spec declares no symbol `Q`"),
        "{stderr}"
    );
}
