//! The `cadence` command as a user runs it: compile, inspect, selftest, run, bench, and
//! the errors a user sees for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cadence_compiler::onnx_build::{Attr, OnnxBuilder};

fn cadence(args: &[&str]) -> Output {
    cadence_with_env(args, &[])
}

/// Runs `cadence` with these environment variables set.
fn cadence_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cadence"))
        .args(args)
        .envs(env.iter().copied())
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

fn fails(args: &[&str]) -> String {
    let out = cadence(args);
    assert!(!out.status.success(), "cadence {args:?} should have failed");
    String::from_utf8(out.stderr).expect("utf-8")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A small model whose output name has a `/` in it, as TensorFlow-style exports do.
fn write_small_model(dir: &Path) -> PathBuf {
    let model = OnnxBuilder::new()
        .input("x", &[1, 2, 4, 4])
        .initializer(
            "w",
            &[3, 2, 3, 3],
            (0..54).map(|i| (i as f32 * 0.37).sin()).collect(),
        )
        .node(
            "Conv",
            &["x", "w"],
            &["c"],
            &[("pads", Attr::Ints(vec![1, 1, 1, 1]))],
        )
        .node("Relu", &["c"], &["det/out:0"], &[])
        .output("det/out:0");
    let path = dir.join("small.onnx");
    std::fs::write(&path, model.to_bytes()).expect("write model");
    path
}

/// Compiles the small model into `dir`; returns the package and what compile printed.
fn compile_small_package(dir: &Path) -> (PathBuf, String) {
    let onnx = write_small_model(dir);
    let pkg = dir.join("small.cpk");
    let printed = ok(&["compile", s(&onnx), "-o", s(&pkg)]);
    (pkg, printed)
}

#[test]
fn compile_inspect_selftest_run_bench() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (pkg, printed) = compile_small_package(dir.path());
    for word in ["arena", "MACs", "parameters"] {
        assert!(
            printed.contains(word),
            "compile output lacks {word}:\n{printed}"
        );
    }

    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", s(&pkg), "--json"])).expect("json");
    for key in [
        "arena_bytes",
        "arena_lower_bound_bytes",
        "macs",
        "params",
        "inputs",
        "outputs",
    ] {
        assert!(json.get(key).is_some(), "inspect --json lacks {key}");
    }
    assert_eq!(json["macs"], 3 * 16 * 2 * 9);
    assert_eq!(json["inputs"][0]["name"], "x");
    assert_eq!(json["inputs"][0]["dtype"], "f32");
    assert_eq!(json["inputs"][0]["shape"], serde_json::json!([1, 2, 4, 4]));
    assert_eq!(json["outputs"][0]["name"], "det/out:0");
    let table = ok(&["inspect", s(&pkg)]);
    assert!(
        table.contains("conv2d") && table.contains("provenance"),
        "{table}"
    );

    let report = ok(&["selftest", s(&pkg)]);
    assert!(
        report.contains("cpu") && report.contains("tract") && !report.contains("FAIL"),
        "{report}"
    );

    let input = dir.path().join("x.npy");
    let x: Vec<f32> = (0..32).map(|i| i as f32 / 32.0).collect();
    write_npy(&input, &[1, 2, 4, 4], &x);
    let out_dir = dir.path().join("out");
    ok(&[
        "run",
        s(&pkg),
        "--input",
        &format!("x={}", s(&input)),
        "--output-dir",
        s(&out_dir),
    ]);
    let written = out_dir.join("det_out:0.npy");
    assert!(written.is_file(), "run should write {}", written.display());

    let bench: serde_json::Value =
        serde_json::from_str(&ok(&["bench", s(&pkg), "--frames", "20", "--json"])).expect("json");
    assert_has_figures(&bench, &["cadence", "tract"]);
    assert_eq!(bench["cadence"]["allocs_per_frame"], 0.0);
}

/// Asserts `bench --json` output has every figure for each of `peers`.
fn assert_has_figures(bench: &serde_json::Value, peers: &[&str]) {
    for peer in peers {
        for key in ["p50_ms", "p99_ms", "p999_ms", "max_ms", "allocs_per_frame"] {
            assert!(
                bench[peer][key].is_number(),
                "bench lacks {peer}.{key}: {bench}"
            );
        }
    }
}

/// Runs `cadence bench` on `pkg` with ORT_DYLIB_PATH set to `library`.
#[cfg(feature = "onnxruntime")]
fn bench_with_onnxruntime_at(pkg: &Path, library: &str, extra: &[&str]) -> Output {
    let mut args = vec!["bench", s(pkg), "--frames", "10", "--warmup", "1"];
    args.extend_from_slice(extra);
    cadence_with_env(&args, &[("ORT_DYLIB_PATH", library)])
}

#[cfg(feature = "onnxruntime")]
#[test]
fn bench_times_onnxruntime_on_the_source_onnx() {
    let library = match std::env::var("ORT_DYLIB_PATH") {
        Ok(path) if Path::new(&path).is_file() => path,
        _ => {
            eprintln!(
                "skipped: ORT_DYLIB_PATH does not name onnxruntime's library; \
                 `export ORT_DYLIB_PATH=\"$(bash tools/setup-onnxruntime.sh)\"` (tools/test.sh does)"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (pkg, _) = compile_small_package(dir.path());

    let out = bench_with_onnxruntime_at(&pkg, &library, &["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let bench: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_has_figures(&bench, &["cadence", "tract", "onnxruntime"]);
    let ratio = bench["cadence_over_onnxruntime_p50"]
        .as_f64()
        .unwrap_or_else(|| panic!("no cadence_over_onnxruntime_p50: {bench}"));
    let expected = bench["cadence"]["p50_ms"].as_f64().expect("number")
        / bench["onnxruntime"]["p50_ms"].as_f64().expect("number");
    assert!((ratio - expected).abs() <= 1e-9 * expected, "{bench}");

    let out = bench_with_onnxruntime_at(&pkg, &library, &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && table.contains("| onnxruntime")
            && table.contains("cadence p50 / onnxruntime p50 ="),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "onnxruntime")]
#[test]
fn bench_without_onnxruntime_benches_the_rest_and_says_how_to_get_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (pkg, _) = compile_small_package(dir.path());
    let not_a_library = dir.path().join("libonnxruntime.so");
    std::fs::write(&not_a_library, "not a shared library").expect("write");
    for library in ["/nonexistent", s(&not_a_library), ""] {
        let out = bench_with_onnxruntime_at(&pkg, library, &["--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ORT_DYLIB_PATH={library}: {stderr}");
        let hints: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains("tools/setup-onnxruntime.sh"))
            .collect();
        assert!(
            hints.len() == 1 && hints[0].starts_with("onnxruntime not benched: "),
            "ORT_DYLIB_PATH={library}: {stderr}"
        );
        let bench: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_has_figures(&bench, &["cadence", "tract"]);
        assert!(
            bench.get("onnxruntime").is_none() && bench["cadence_over_onnxruntime_p50"].is_null(),
            "{bench}"
        );
    }

    // Named, it is required: an error with the same advice, not a panic.
    let out = bench_with_onnxruntime_at(&pkg, "/nonexistent", &["--backend", "onnxruntime"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("tools/setup-onnxruntime.sh")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}

fn write_npy(path: &Path, shape: &[u64], data: &[f32]) {
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(std::fs::File::create(path).expect("create"))
        .begin_nd()
        .expect("npy header");
    w.extend(data.iter().copied()).expect("npy data");
    w.finish().expect("npy finish");
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let onnx = write_small_model(dir.path());
    let pkg = dir.path().join("small.cpk");
    ok(&["compile", s(&onnx), "-o", s(&pkg)]);
    let out_dir = dir.path().join("out");
    let out = s(&out_dir);

    let wrong_shape = dir.path().join("wrong.npy");
    write_npy(&wrong_shape, &[1, 2, 4], &[0.0; 8]);
    let err = fails(&[
        "run",
        s(&pkg),
        "--input",
        &format!("x={}", s(&wrong_shape)),
        "--output-dir",
        out,
    ]);
    assert!(err.contains("shape"), "{err}");

    let nan = dir.path().join("nan.npy");
    let mut x = vec![0.0f32; 32];
    x[5] = f32::NAN;
    write_npy(&nan, &[1, 2, 4, 4], &x);
    let err = fails(&[
        "run",
        s(&pkg),
        "--input",
        &format!("x={}", s(&nan)),
        "--output-dir",
        out,
    ]);
    assert!(
        err.contains("x") && err.contains('5'),
        "NaN error should name the input and element: {err}"
    );

    let err = fails(&[
        "run",
        s(&pkg),
        "--input",
        "y=whatever.npy",
        "--output-dir",
        out,
    ]);
    assert!(err.contains("no data given for input(s) x"), "{err}");

    let mut bytes = std::fs::read(&pkg).expect("read package");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", s(&pkg), "--json"])).expect("json");
    let weights = json["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["kind"] == "weights")
        .expect("a weights section");
    let at = weights["offset"].as_u64().expect("offset") as usize + 3;
    bytes[at] ^= 0x40;
    let corrupt = dir.path().join("corrupt.cpk");
    std::fs::write(&corrupt, &bytes).expect("write");
    let err = fails(&["selftest", s(&corrupt)]);
    assert!(
        err.contains("checksum mismatch in section `weights`"),
        "{err}"
    );

    let truncated = dir.path().join("truncated.cpk");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let err = fails(&["inspect", s(&truncated)]);
    assert!(err.contains("truncated"), "{err}");

    let unsupported = OnnxBuilder::new()
        .input("x", &[1, 4])
        .node("Erf", &["x"], &["y"], &[])
        .output("y");
    let bad_onnx = dir.path().join("erf.onnx");
    std::fs::write(&bad_onnx, unsupported.to_bytes()).expect("write");
    let err = fails(&[
        "compile",
        s(&bad_onnx),
        "-o",
        s(&dir.path().join("erf.cpk")),
    ]);
    assert!(err.contains("op `Erf`") && err.contains("Erf_0"), "{err}");

    let symbolic = repo().join(".corpus/paddle/ch_PP-OCRv4_det_infer.onnx");
    assert!(
        symbolic.is_file(),
        "the external corpus is missing: run tools/corpus/fetch.sh"
    );
    let err = fails(&[
        "compile",
        s(&symbolic),
        "-o",
        s(&dir.path().join("ocr.cpk")),
    ]);
    assert!(err.contains("--input-shape x="), "{err}");
    ok(&[
        "compile",
        s(&symbolic),
        "-o",
        s(&dir.path().join("ocr.cpk")),
        "--input-shape",
        "x=1,3,96,160",
        "--test-cases",
        "1",
    ]);
}

/// Every `cadence` command's output may go to a reader that stops early (`| head`): a
/// write to the closed pipe ends the process as SIGPIPE ends any Unix tool, without a
/// panic or a backtrace.
#[cfg(unix)]
#[test]
fn a_reader_that_closes_early_ends_cadence_quietly() {
    use std::os::unix::process::ExitStatusExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let onnx = write_small_model(dir.path());
    let pkg = dir.path().join("small.cpk");
    ok(&["compile", s(&onnx), "-o", s(&pkg)]);
    let commands: [&[&str]; 4] = [
        &["inspect", s(&pkg)],
        &["inspect", s(&pkg), "--json", "--steps"],
        &["selftest", s(&pkg)],
        &["--help"],
    ];
    for args in commands {
        // The reader leaves before the first write, so the first write hits a closed pipe.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_cadence"))
            .args(args)
            .stdout(writer)
            .output()
            .expect("cadence runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.is_empty() && out.status.signal() == Some(libc::SIGPIPE),
            "cadence {args:?}: {:?}\n{stderr}",
            out.status
        );
    }
}

/// Tolerances read as their shortest decimal form and pre-processing as words, in the
/// table and in the JSON.
#[test]
fn inspect_prints_tolerances_and_preprocessing_in_words() {
    let dir = tempfile::tempdir().expect("temp dir");
    let onnx = write_small_model(dir.path());
    let pkg = dir.path().join("small.cpk");
    ok(&["compile", s(&onnx), "-o", s(&pkg)]);
    let table = ok(&["inspect", s(&pkg)]);
    assert!(
        table.contains("tolerance abs 1e-4, rel 1e-3")
            && table.contains("none (the caller supplies the tensor)")
            && !table.contains("0.0000999")
            && !table.contains("None"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", s(&pkg), "--json"])).expect("json");
    assert_eq!(json["tolerance"]["abs"], 1e-4);
    assert_eq!(json["tolerance"]["rel"], 1e-3);
    assert_eq!(json["preprocess"], "none (the caller supplies the tensor)");
    let report = ok(&["selftest", s(&pkg)]);
    assert!(
        report.contains("(tolerance abs 1e-4, rel 1e-3:"),
        "{report}"
    );
}
