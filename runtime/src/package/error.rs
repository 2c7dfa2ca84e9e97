//! Why a package is refused.

use core::fmt;

use super::SectionKind;
use super::format::{FORMAT_MAJOR, FORMAT_MINOR, SECTION_ALIGN};

/// A model input or output, by position in the spec (names may be the damaged part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoSlot {
    /// The n-th input.
    Input(usize),
    /// The n-th output.
    Output(usize),
}

impl fmt::Display for IoSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(i) => write!(f, "input {i}"),
            Self::Output(i) => write!(f, "output {i}"),
        }
    }
}

/// Why [`Package::parse`](super::Package::parse) refused a file. Each variant says what
/// the user can do about it: every one means the file is not safe to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageError {
    /// The buffer's address is not a multiple of 64, so weights cannot be used in place.
    Misaligned {
        /// The buffer's address modulo 64.
        address_mod: usize,
    },
    /// The file ends before the data its header announces.
    Truncated {
        /// Bytes the file should have at least.
        needed: u64,
        /// Bytes it has.
        len: usize,
    },
    /// The file does not start with the package magic.
    BadMagic,
    /// The format version is not one this runtime reads.
    UnsupportedVersion {
        /// The file's major version.
        major: u16,
        /// The file's minor version.
        minor: u16,
    },
    /// The header or the section table fails its checksum.
    HeaderChecksum,
    /// A header field is out of range.
    BadHeader {
        /// Which field, and what is wrong.
        reason: &'static str,
    },
    /// The file is longer than its header says: two files glued together, or a bad copy.
    TrailingBytes {
        /// Length the header states.
        expected: u64,
        /// Actual length.
        len: usize,
    },
    /// A section lies outside the file or over the section table.
    SectionOutOfBounds {
        /// The section.
        section: SectionKind,
    },
    /// A section does not start on a 64-byte boundary.
    MisalignedSection {
        /// The section.
        section: SectionKind,
        /// Its file offset.
        offset: u64,
    },
    /// A section's bytes fail their checksum.
    Checksum {
        /// The section.
        section: SectionKind,
    },
    /// A required section is absent.
    MissingSection {
        /// The section.
        section: SectionKind,
    },
    /// A section appears twice.
    DuplicateSection {
        /// The section.
        section: SectionKind,
    },
    /// A record inside a section is inconsistent (checksum-valid, so written that way).
    BadRecord {
        /// The section.
        section: SectionKind,
        /// What is wrong.
        reason: &'static str,
    },
    /// A spec input or output binds to a plan tensor that does not exist.
    SpecTensorOutOfRange {
        /// The input or output.
        io: IoSlot,
        /// The tensor index it names.
        tensor: u32,
        /// Tensors in the plan.
        tensor_count: usize,
    },
    /// A spec input or output disagrees with the plan tensor it binds to.
    SpecMismatch {
        /// The input or output.
        io: IoSlot,
        /// What differs.
        reason: &'static str,
    },
}

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned { address_mod } => write!(
                f,
                "package buffer is not {SECTION_ALIGN}-byte aligned in memory (address % {SECTION_ALIGN} = {address_mod}); \
                 load it with `AlignedBytes` or a `#[repr(align({SECTION_ALIGN}))]` static"
            ),
            Self::Truncated { needed, len } => write!(
                f,
                "package is truncated: it has {len} bytes but needs {needed}; copy the file again"
            ),
            Self::BadMagic => {
                f.write_str("not a Cadence package (bad magic); expected a `.cpk` file")
            }
            Self::UnsupportedVersion { major, minor } if *major > FORMAT_MAJOR => write!(
                f,
                "package format {major}.{minor} is newer than this runtime reads ({FORMAT_MAJOR}.{FORMAT_MINOR}); update the runtime"
            ),
            Self::UnsupportedVersion { major, minor } if *major < FORMAT_MAJOR => write!(
                f,
                "package format {major}.{minor} is older than this runtime reads ({FORMAT_MAJOR}.x); recompile the model"
            ),
            Self::UnsupportedVersion { major, minor } => write!(
                f,
                "package format {major}.{minor} needs a newer runtime (this one reads up to {FORMAT_MAJOR}.{FORMAT_MINOR}); update the runtime"
            ),
            Self::HeaderChecksum => f.write_str(
                "checksum mismatch in the header or section table: the file is corrupted",
            ),
            Self::BadHeader { reason } => write!(f, "bad package header: {reason}"),
            Self::TrailingBytes { expected, len } => write!(
                f,
                "package has {len} bytes but its header says {expected}: the file was damaged in transfer"
            ),
            Self::SectionOutOfBounds { section } => write!(
                f,
                "section `{section}` lies outside the file: the file is corrupted"
            ),
            Self::MisalignedSection { section, offset } => write!(
                f,
                "section `{section}` starts at offset {offset}, not a multiple of {SECTION_ALIGN}: the file is corrupted"
            ),
            Self::Checksum { section } => write!(
                f,
                "checksum mismatch in section `{section}`: the file is corrupted"
            ),
            Self::MissingSection { section } => write!(
                f,
                "section `{section}` is missing: the package is incomplete; recompile the model"
            ),
            Self::DuplicateSection { section } => write!(
                f,
                "section `{section}` appears twice: the file is corrupted"
            ),
            Self::BadRecord { section, reason } => write!(
                f,
                "section `{section}` is inconsistent: {reason}; the compiler that wrote it is broken, recompile the model"
            ),
            Self::SpecTensorOutOfRange {
                io,
                tensor,
                tensor_count,
            } => write!(
                f,
                "{io} binds to tensor {tensor}, but the plan has {tensor_count} tensors; recompile the model"
            ),
            Self::SpecMismatch { io, reason } => write!(
                f,
                "{io} disagrees with its plan tensor: {reason}; recompile the model"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PackageError {}
