//! Prepares what the image embeds, from two packages that `tools/firmware.sh` compiles:
//!
//! - the camera ROI classifier, named by `CADENCE_FIRMWARE_PACKAGE` (default
//!   `out/firmware/roi_classifier.cpk` at the repository root);
//! - the lidar BEV classifier, named by `CADENCE_FIRMWARE_LIDAR_PACKAGE` (default
//!   `out/firmware/bev_classifier.cpk`).
//!
//! It writes:
//!
//! - `OUT_DIR/roi.cpk` and `OUT_DIR/bev.cpk`: the package bytes, the ROI classifier with
//!   one weights byte flipped when the `corrupt-package` feature is on;
//! - `OUT_DIR/package_layout.rs`: `ROI_ARENA_BYTES` and `BEV_ARENA_BYTES`, the arenas
//!   the packages' plans need, so the image reserves exactly those as `static`s (no
//!   heap);
//! - `OUT_DIR/memory.x`: the board's memory map, for the runtime crate's `link.x`
//!   (`memory-an500.x` for the Cortex-M7, `memory-an536.x` for the Cortex-R52).
//!
//! The packages are parsed with the runtime itself, so a package the image could not
//! load fails here, at build time, with the runtime's own message.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use cadence_runtime::Package;
use cadence_runtime::package::{AlignedBytes, SectionKind};

/// One package the image embeds.
struct Embedded {
    /// Stem of the file written to `OUT_DIR` and prefix of its arena constant.
    name: &'static str,
    /// Environment variable that names the package.
    variable: &'static str,
    /// Where the package is read from when the variable is not set, relative to this
    /// crate's folder.
    default_path: &'static str,
    /// Whether the `corrupt-package` feature damages it.
    corruptible: bool,
}

const PACKAGES: [Embedded; 2] = [
    Embedded {
        name: "roi",
        variable: "CADENCE_FIRMWARE_PACKAGE",
        default_path: "../../out/firmware/roi_classifier.cpk",
        corruptible: true,
    },
    Embedded {
        name: "bev",
        variable: "CADENCE_FIRMWARE_LIDAR_PACKAGE",
        default_path: "../../out/firmware/bev_classifier.cpk",
        corruptible: false,
    },
];

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR unset")?);
    let corrupt = env::var_os("CARGO_FEATURE_CORRUPT_PACKAGE").is_some();
    let mut layout_rs = String::new();
    for package in &PACKAGES {
        let arena_bytes = embed(package, &manifest_dir, &out_dir, corrupt)?;
        layout_rs += &format!(
            "/// Bytes of arena `{name}.cpk`'s plan needs (read from it at build time).\n\
             pub const {upper}_ARENA_BYTES: usize = {arena_bytes};\n",
            name = package.name,
            upper = package.name.to_uppercase(),
        );
    }
    write(&out_dir.join("package_layout.rs"), layout_rs.as_bytes())?;

    // `cfg(board = ...)` selects the board's start-up, clock and exit code.
    let target = env::var("TARGET").map_err(|_| "TARGET unset")?;
    let (board, memory) = if target.starts_with("armv8r") {
        ("mps3_an536", "memory-an536.x")
    } else {
        ("mps2_an500", "memory-an500.x")
    };
    println!("cargo::rustc-check-cfg=cfg(board, values(\"mps2_an500\", \"mps3_an536\"))");
    println!("cargo::rustc-cfg=board=\"{board}\"");
    let memory = manifest_dir.join(memory);
    println!("cargo:rerun-if-changed={}", memory.display());
    fs::copy(&memory, out_dir.join("memory.x")).map_err(|e| format!("copying memory.x: {e}"))?;
    println!("cargo:rustc-link-search={}", out_dir.display());
    Ok(())
}

/// Copies `package` to `OUT_DIR/NAME.cpk` (damaged if `corrupt` and it is
/// corruptible) and returns the arena its plan needs.
fn embed(
    package: &Embedded,
    manifest_dir: &Path,
    out_dir: &Path,
    corrupt: bool,
) -> Result<usize, String> {
    println!("cargo:rerun-if-env-changed={}", package.variable);
    let path = env::var_os(package.variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join(package.default_path));
    println!("cargo:rerun-if-changed={}", path.display());
    let (arena_bytes, weights_offset) = layout(&path)?;
    let mut bytes = fs::read(&path).map_err(|e| read_error(&path, e))?;
    if corrupt && package.corruptible {
        let weights_offset = weights_offset
            .ok_or("the package has no weights to corrupt; use a model with weights")?;
        bytes[weights_offset] ^= 0xff;
    }
    write(&out_dir.join(format!("{}.cpk", package.name)), &bytes)?;
    Ok(arena_bytes)
}

/// The arena size of the package's plan, and the file offset of its first weights
/// byte (`None` when the weights section is empty).
fn layout(path: &Path) -> Result<(usize, Option<usize>), String> {
    // Parsing in place needs the bytes on a section-aligned address.
    let bytes = AlignedBytes::read(path).map_err(|e| read_error(path, e))?;
    let package = Package::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let weights = package
        .sections()
        .find(|s| s.kind == SectionKind::Weights && s.len > 0)
        .map(|s| s.offset as usize);
    Ok((package.arena_bytes(), weights))
}

fn read_error(path: &Path, error: std::io::Error) -> String {
    format!(
        "reading the package {}: {error}; run tools/firmware.sh (it compiles the packages), \
         or set CADENCE_FIRMWARE_PACKAGE / CADENCE_FIRMWARE_LIDAR_PACKAGE to a .cpk",
        path.display()
    )
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}
