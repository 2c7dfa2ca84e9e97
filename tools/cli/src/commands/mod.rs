//! One module per subcommand.

pub mod bench;
#[cfg(feature = "tract")]
pub mod check_spec;
#[cfg(feature = "tract")]
pub mod compile;
pub mod inspect;
#[cfg(feature = "tract")]
pub mod placeholder;
pub mod profile;
pub mod profile_scenario;
#[cfg(feature = "tract")]
pub mod prune;
pub mod run;
pub mod run_scenario;
pub mod schedule;
pub mod selftest;
pub mod sim;
pub mod trace;
#[cfg(not(feature = "tract"))]
pub mod without_tract;
#[cfg(not(feature = "tract"))]
pub use without_tract as check_spec;
#[cfg(not(feature = "tract"))]
pub use without_tract as compile;
#[cfg(not(feature = "tract"))]
pub use without_tract as placeholder;
#[cfg(not(feature = "tract"))]
pub use without_tract as prune;

use std::path::Path;

use anyhow::{Context, Result};
use cadence_runtime::package::{AlignedBytes, Package};

/// Reads a package file into an aligned buffer (weights are used in place).
pub fn read_package(path: &Path) -> Result<AlignedBytes> {
    AlignedBytes::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}

/// Parses a package read by [`read_package`], naming the file in errors.
pub fn parse_package<'a>(path: &Path, bytes: &'a AlignedBytes) -> Result<Package<'a>> {
    Package::parse(bytes.as_slice()).map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))
}

/// Parses `NAME=VALUE`.
pub fn name_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))
}
