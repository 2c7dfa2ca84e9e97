//! The stored records of a `.cpk` file, byte for byte.
//!
//! Everything here is `#[repr(C)]` and read in place with `zerocopy`, so this module
//! *is* the format specification: tools that patch or dump packages (and tests that
//! corrupt them on purpose) use these types rather than hard-coded offsets.
//!
//! # Layout
//!
//! All integers and floats are little-endian (the native order of every target
//! Cadence builds for; a big-endian build is refused at compile time).
//!
//! ```text
//! offset 0    FileHeader            40 bytes
//! offset 40   SectionEntry × n      32 bytes each
//!             zero padding to the next multiple of 64
//!             section payloads, each at a 64-byte-aligned offset, zero padding between
//! ```
//!
//! `FileHeader::table_crc` is the CRC-32 of the header bytes before it (0..36) followed
//! by the whole section table; each `SectionEntry::crc` is the CRC-32 of its payload.
//!
//! Section payloads (strings are UTF-8, addressed by [`StrRef`] relative to the
//! section's string table, which always comes last):
//!
//! | section | payload |
//! |---|---|
//! | spec | [`SpecHeader`], [`IoRecord`] × (inputs + outputs), strings |
//! | plan | [`PlanHeader`], `TensorRecord` × tensors, `StepRecord` × steps, step names |
//! | weights | raw `f32` bytes, addressed by weights-storage `TensorRecord::offset` |
//! | test vectors | [`VectorsHeader`], then per case the `f32` elements of every input then every output, in spec order, each sized by its spec shape |
//! | provenance | [`ProvenanceRecord`], strings |
//! | metadata | [`MetadataHeader`], [`KeyValueRecord`] × pairs, strings |
//! | source | the source ONNX file, verbatim (optional) |
//!
//! Every payload's length must equal exactly what its counts imply. A minor format
//! version may add section kinds (older readers skip them) but never changes these
//! layouts; anything else is a major version.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[cfg(target_endian = "big")]
compile_error!(
    "the .cpk format is little-endian and read in place; big-endian targets are not supported"
);

/// First eight bytes of every package. The trailing `0x1a` (Ctrl-Z) stops `type` on
/// Windows and catches text-mode transfers that mangle bytes.
pub const MAGIC: [u8; 8] = *b"CADENCE\x1a";
/// Format major version this runtime reads; a package with another major is refused.
pub const FORMAT_MAJOR: u16 = 1;
/// Highest format minor version this runtime reads.
pub const FORMAT_MINOR: u16 = 0;
/// Alignment of every section's file offset, so weights and test vectors can be used
/// in place as `f32` (and with SIMD) when the file buffer itself is aligned.
pub const SECTION_ALIGN: usize = cadence_hal::plan::TENSOR_ALIGN;
/// Byte offset of [`FileHeader::table_crc`]; the table CRC covers the bytes before it.
pub const TABLE_CRC_OFFSET: usize = 36;

/// The fixed file header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct FileHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// Format major version.
    pub version_major: u16,
    /// Format minor version.
    pub version_minor: u16,
    /// Size of this header in bytes (40); the section table follows it.
    pub header_len: u32,
    /// Entries in the section table.
    pub section_count: u32,
    /// Reserved, zero.
    pub flags: u32,
    /// Length of the whole file, so truncation is told apart from corruption.
    pub file_len: u64,
    /// Reserved, zero.
    pub reserved: u32,
    /// CRC-32 of bytes `0..TABLE_CRC_OFFSET` followed by the section table.
    pub table_crc: u32,
}

/// One entry of the section table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SectionEntry {
    /// Section kind code (see `SectionKind`).
    pub kind: u32,
    /// Reserved, zero.
    pub flags: u32,
    /// File offset of the payload; a multiple of [`SECTION_ALIGN`].
    pub offset: u64,
    /// Payload length in bytes.
    pub len: u64,
    /// CRC-32 of the payload.
    pub crc: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// A string in a section's string table.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct StrRef {
    /// Byte offset from the start of the string table.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

/// Head of the spec section.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SpecHeader {
    /// Model inputs.
    pub input_count: u32,
    /// Model outputs.
    pub output_count: u32,
    /// Bytes in the string table.
    pub strings_len: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// One dimension of an input or output.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DimRecord {
    /// The extent; for a symbolic dim, the value it was pinned to at compile time.
    pub value: u32,
    /// 0: fixed; 1: symbolic, named by `symbol`.
    pub symbolic: u32,
    /// The symbol's name (empty for a fixed dim).
    pub symbol: StrRef,
}

/// One model input or output.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IoRecord {
    /// The name callers use.
    pub name: StrRef,
    /// `DType` code; equals the bound plan tensor's.
    pub dtype: u32,
    /// Index of the plan tensor this binds to.
    pub tensor: u32,
    /// 0: reject non-finite values; 1: allow them.
    pub nan_policy: u32,
    /// Used entries of `dims`.
    pub rank: u32,
    /// Dims, outermost first.
    pub dims: [DimRecord; cadence_hal::MAX_RANK],
}

/// Head of the plan section.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PlanHeader {
    /// `TensorRecord`s that follow.
    pub tensor_count: u32,
    /// `StepRecord`s that follow.
    pub step_count: u32,
    /// Bytes of the step name table.
    pub names_len: u32,
    /// Arena bytes the plan needs.
    pub arena_bytes: u32,
    /// The liveness lower bound the planner was measured against.
    pub arena_lower_bound_bytes: u32,
    /// Alignment of every arena offset, a power of two dividing [`SECTION_ALIGN`].
    pub alignment: u32,
    /// Reserved, zero.
    pub reserved: [u32; 2],
}

/// Head of the test-vector section.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VectorsHeader {
    /// Number of cases.
    pub case_count: u32,
    /// Inputs per case; equals the spec's.
    pub input_count: u32,
    /// Outputs per case; equals the spec's.
    pub output_count: u32,
    /// Absolute tolerance of the self-test.
    pub abs_tolerance: f32,
    /// Relative tolerance of the self-test.
    pub rel_tolerance: f32,
    /// Reserved, zero.
    pub reserved: [u32; 3],
}

/// The provenance section's record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ProvenanceRecord {
    /// SHA-256 of the source ONNX file.
    pub source_sha256: [u8; 32],
    /// Creation time, Unix seconds.
    pub created_unix: u64,
    /// Multiply-accumulates per frame.
    pub macs: u64,
    /// Parameter count.
    pub parameters: u64,
    /// Source file name.
    pub source_name: StrRef,
    /// Compiler version.
    pub compiler_version: StrRef,
    /// Git commit the compiler was built from.
    pub git_commit: StrRef,
    /// Bytes in the string table.
    pub strings_len: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Head of the metadata section.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MetadataHeader {
    /// Model family code.
    pub family: u32,
    /// Pre-processing code.
    pub preprocess: u32,
    /// Pre-processing parameters (meaning depends on `preprocess`).
    pub preprocess_params: [u32; 6],
    /// `KeyValueRecord`s that follow.
    pub pair_count: u32,
    /// Bytes in the string table.
    pub strings_len: u32,
}

/// One free-form metadata pair.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KeyValueRecord {
    /// The key.
    pub key: StrRef,
    /// The value.
    pub value: StrRef,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes_are_part_of_the_format() {
        assert_eq!(size_of::<FileHeader>(), 40);
        assert_eq!(
            core::mem::offset_of!(FileHeader, table_crc),
            TABLE_CRC_OFFSET
        );
        assert_eq!(size_of::<SectionEntry>(), 32);
        assert_eq!(size_of::<IoRecord>(), 24 + 16 * cadence_hal::MAX_RANK);
        assert_eq!(size_of::<PlanHeader>(), 32);
        assert_eq!(size_of::<VectorsHeader>(), 32);
        assert_eq!(size_of::<ProvenanceRecord>(), 88);
        assert_eq!(size_of::<MetadataHeader>(), 40);
    }
}
