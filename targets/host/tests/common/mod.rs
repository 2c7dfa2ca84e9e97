//! What the host tests share: the bundled models compiled to packages, the recorded
//! sensor data, the runner specs built from them, a scheduler job for direct runs, and
//! the model worker binary where out-of-process runners look for it.
//!
//! The packages are compiled here from the `.onnx` sources (CI runs the tests before
//! `tools/build-models.sh` builds the bundled ones) into a cache under `target/`. A
//! cached package is reused while it is newer than both its source and this test
//! binary (a rebuilt binary may carry a changed compiler).
#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use cadence_compiler::CompileOptions;
use cadence_host::pipeline::{Isolation, RunnerSpec, Sensor};
use cadence_runtime::package::builder::MetadataDecl;
use cadence_runtime::package::{ModelFamily, Preprocess};
use cadence_scheduler::executive::{Dispatch, Mode};

/// The repository root: the first folder above the crate that holds the workspace's
/// `Cargo.lock` (the HIL rig's tests share this module from another depth).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .expect("a Cargo.lock above the crate")
        .to_owned()
}

/// The recorded camera frames.
pub fn camera_frames() -> PathBuf {
    repo().join("models/data/camera")
}

/// The recorded lidar sweeps.
pub fn lidar_sweeps() -> PathBuf {
    repo().join("models/data/lidar")
}

/// The bundled models, by file stem, compiled as `tools/build-models.sh` does.
pub struct Packages {
    paths: HashMap<&'static str, PathBuf>,
}

impl Packages {
    /// The package compiled from `<stem>.onnx`.
    pub fn get(&self, stem: &str) -> PathBuf {
        self.paths[stem].clone()
    }
}

/// Compiles (or finds in the cache) every bundled model, once per test process.
pub fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let camera = Preprocess::CameraImagenet {
            height: 320,
            width: 320,
        };
        let pillars = Preprocess::LidarPillars {
            max_pillars: 12_000,
            max_points: 32,
        };
        let models: [(&str, &str, ModelFamily, Preprocess); 5] = [
            ("camera_det", "camera", ModelFamily::Camera, camera),
            ("camera_det_pruned", "camera", ModelFamily::Camera, camera),
            ("pfn", "lidar", ModelFamily::LidarPfn, pillars),
            (
                "backbone",
                "lidar",
                ModelFamily::LidarBackbone,
                Preprocess::None,
            ),
            (
                "backbone_pruned",
                "lidar",
                ModelFamily::LidarBackbone,
                Preprocess::None,
            ),
        ];
        let cache = repo().join("target/cadence-host-test-packages");
        std::fs::create_dir_all(&cache).expect("creating the package cache");
        let paths = models
            .into_iter()
            .map(|(stem, folder, family, preprocess)| {
                let onnx = repo()
                    .join("models")
                    .join(folder)
                    .join(format!("{stem}.onnx"));
                let cpk = cache.join(format!("{stem}.cpk"));
                if !fresh(&cpk, &onnx) {
                    compile(&onnx, &cpk, family, preprocess);
                }
                (stem, cpk)
            })
            .collect();
        Packages { paths }
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn fresh(cpk: &Path, onnx: &Path) -> bool {
    let binary = std::env::current_exe().ok().and_then(|p| modified(&p));
    match (modified(cpk), modified(onnx), binary) {
        (Some(cpk), Some(onnx), Some(binary)) => cpk > onnx && cpk > binary,
        _ => false,
    }
}

fn compile(onnx: &Path, cpk: &Path, family: ModelFamily, preprocess: Preprocess) {
    let options = CompileOptions {
        test_cases: 1,
        metadata: MetadataDecl {
            family,
            preprocess,
            ..MetadataDecl::default()
        },
        ..CompileOptions::default()
    };
    let compiled = cadence_compiler::compile(onnx, &options)
        .unwrap_or_else(|e| panic!("compiling `{}`: {e}", onnx.display()));
    let bytes = compiled
        .package
        .to_bytes()
        .expect("serialising the package");
    // Written aside then renamed, so a concurrent test process never reads half a file.
    let partial = cpk.with_extension(format!("cpk.{}", std::process::id()));
    std::fs::write(&partial, bytes).expect("writing the package");
    std::fs::rename(&partial, cpk).expect("moving the package into the cache");
}

/// The camera task: `camera_det`, degrading to `camera_det_pruned`.
pub fn camera_spec() -> RunnerSpec {
    let p = packages();
    RunnerSpec {
        task: "camera".into(),
        packages: vec![p.get("camera_det")],
        fallback: vec![p.get("camera_det_pruned")],
        sensor: Sensor::Camera {
            frames: camera_frames(),
        },
        budget_ns: 0,
        isolation: Isolation::None,
    }
}

/// The lidar task: PFN and backbone, degrading to PFN and the pruned backbone.
pub fn lidar_spec() -> RunnerSpec {
    let p = packages();
    RunnerSpec {
        task: "lidar".into(),
        packages: vec![p.get("pfn"), p.get("backbone")],
        fallback: vec![p.get("pfn"), p.get("backbone_pruned")],
        sensor: Sensor::Lidar {
            sweeps: lidar_sweeps(),
        },
        budget_ns: 0,
        isolation: Isolation::None,
    }
}

/// A job for frame `seq` of task 0, for calling a runner directly.
pub fn job(seq: u32, mode: Mode) -> Dispatch {
    Dispatch {
        accelerator: 0,
        task: 0,
        seq,
        mode,
        release_ns: 0,
        deadline_ns: u64::MAX,
        resume: false,
        displaces: None,
    }
}

/// Puts `cadence-worker` where `Isolation::Process` looks for it: next to this test
/// binary (cargo keeps test binaries in `target/<profile>/deps`, and the binaries it
/// builds one folder up). `cargo test --workspace` builds the worker; a run of this
/// crate's tests alone builds it here.
pub fn install_worker() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let deps = exe.parent().expect("the test binary's folder");
        let profile_dir = deps.parent().expect("cargo's profile folder");
        let built = profile_dir.join("cadence-worker");
        if !built.is_file() {
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => "dev",
                Some(name) => name,
                None => panic!("no profile folder above {}", exe.display()),
            };
            let status = Command::new(env!("CARGO"))
                .args(["build", "--profile", profile, "-p", "cadence-isolated"])
                .args(["--bin", "cadence-worker"])
                .current_dir(repo())
                .status()
                .expect("running cargo to build cadence-worker");
            assert!(status.success(), "building cadence-worker failed");
        }
        // Linked under a name of its own, then renamed: concurrent test binaries never
        // see a half-made link.
        let partial = deps.join(format!("cadence-worker.{}", std::process::id()));
        let _ = std::fs::remove_file(&partial);
        std::os::unix::fs::symlink(&built, &partial).expect("linking cadence-worker");
        std::fs::rename(&partial, deps.join("cadence-worker")).expect("placing cadence-worker");
    });
}
