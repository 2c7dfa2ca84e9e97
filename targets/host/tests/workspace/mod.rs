//! A working directory laid out like the repository root after
//! `tools/build-models.sh`: `models/{camera,lidar}/*.cpk` (the packages the tests
//! compiled), `models/data` and `scenarios` (links to the repository's). Scenario files
//! name packages relative to the current directory, so the tests run from here, and
//! `scenarios/highway.toml` works as a user runs it from the root.
//!
//! Shared by the host crate's and the CLI's scenario tests (`#[path]`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The bundled packages, by folder under `models/`.
const PACKAGES: [(&str, &[&str]); 2] = [
    ("camera", &["camera_det", "camera_det_pruned"]),
    ("lidar", &["pfn", "backbone", "backbone_pruned"]),
];

/// Builds the directory `target/scenario-workspace/<name>` (afresh, once per test
/// process), with `package(stem)` giving each compiled package, and makes it the current
/// directory. Every test that runs scenarios calls this first.
pub fn enter(name: &str, repo: &Path, package: impl Fn(&str) -> PathBuf) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = repo.join("target/scenario-workspace").join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("clearing the old workspace");
        }
        for (folder, stems) in PACKAGES {
            let models = dir.join("models").join(folder);
            std::fs::create_dir_all(&models).expect("creating the workspace");
            for stem in stems {
                std::os::unix::fs::symlink(package(stem), models.join(format!("{stem}.cpk")))
                    .expect("linking a package");
            }
        }
        let link = |from: &str| {
            let target = repo.join(from).canonicalize().expect("a repository folder");
            std::os::unix::fs::symlink(target, dir.join(from)).expect("linking a folder");
        };
        link("models/data");
        link("scenarios");
        std::env::set_current_dir(&dir).expect("entering the workspace");
        dir
    })
}
