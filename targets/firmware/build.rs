//! Prepares what the image embeds, from the package named by `CADENCE_FIRMWARE_PACKAGE`
//! (default: `out/firmware/roi_classifier.cpk` at the repository root, which
//! `tools/firmware.sh` compiles):
//!
//! - `OUT_DIR/package.cpk`: the package bytes, with one weights byte flipped when the
//!   `corrupt-package` feature is on;
//! - `OUT_DIR/package_layout.rs`: `ARENA_BYTES`, the arena the package's plan needs, so
//!   the image reserves exactly that as a `static` (no heap);
//! - `OUT_DIR/memory.x`: the board's memory map, for cortex-m-rt's `link.x`.
//!
//! The package is parsed with the runtime itself, so a package the image could not
//! load fails here, at build time, with the runtime's own message.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use cadence_runtime::Package;
use cadence_runtime::package::{AlignedBytes, SectionKind};

/// Where the package is read from when `CADENCE_FIRMWARE_PACKAGE` is not set, relative
/// to this crate's folder.
const DEFAULT_PACKAGE: &str = "../../out/firmware/roi_classifier.cpk";

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
    println!("cargo:rerun-if-env-changed=CADENCE_FIRMWARE_PACKAGE");
    let package_path = env::var_os("CADENCE_FIRMWARE_PACKAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join(DEFAULT_PACKAGE));
    println!("cargo:rerun-if-changed={}", package_path.display());

    let (arena_bytes, weights_offset) = layout(&package_path)?;
    let mut bytes = fs::read(&package_path).map_err(|e| read_error(&package_path, e))?;
    if env::var_os("CARGO_FEATURE_CORRUPT_PACKAGE").is_some() {
        let weights_offset = weights_offset
            .ok_or("the package has no weights to corrupt; use a model with weights")?;
        bytes[weights_offset] ^= 0xff;
    }
    write(&out_dir.join("package.cpk"), &bytes)?;
    write(
        &out_dir.join("package_layout.rs"),
        format!(
            "/// Bytes of arena the embedded package's plan needs (read from it at build time).\n\
             pub const ARENA_BYTES: usize = {arena_bytes};\n"
        )
        .as_bytes(),
    )?;

    let memory = manifest_dir.join("memory.x");
    println!("cargo:rerun-if-changed={}", memory.display());
    fs::copy(&memory, out_dir.join("memory.x")).map_err(|e| format!("copying memory.x: {e}"))?;
    println!("cargo:rustc-link-search={}", out_dir.display());
    Ok(())
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
        "reading the package {}: {error}; run tools/firmware.sh (it compiles the package), \
         or set CADENCE_FIRMWARE_PACKAGE to a .cpk",
        path.display()
    )
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}
