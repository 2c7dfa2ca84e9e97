//! The `.cpk` package: one file holding everything needed to run, check and trace a
//! compiled model (spec, plan, weights, test vectors, provenance, metadata and,
//! optionally, the source ONNX).
//!
//! [`Package::parse`] reads a file in place: nothing is copied, so a firmware image can
//! run a package straight from flash. It checks everything before it returns — magic,
//! version, every checksum, every offset and count, every string — so the rest of the
//! runtime can trust what it reads. The byte layout is documented in [`format`](mod@format).

mod error;
pub mod format;

#[cfg(feature = "std")]
mod aligned;
#[cfg(feature = "std")]
pub mod builder;

use core::fmt;

use cadence_hal::plan::{StepRecord, TensorRecord};
use cadence_hal::{DType, Plan, Shape, Storage};
use zerocopy::{FromBytes, Immutable, KnownLayout};

#[cfg(feature = "std")]
pub use aligned::AlignedBytes;
pub use error::{IoSlot, PackageError};
use format::{
    DimRecord, FORMAT_MAJOR, FORMAT_MINOR, FileHeader, IoRecord, KeyValueRecord, MAGIC,
    MetadataHeader, PlanHeader, ProvenanceRecord, SECTION_ALIGN, SectionEntry, SpecHeader, StrRef,
    TABLE_CRC_OFFSET, VectorsHeader,
};

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// Named inputs and outputs.
    Spec,
    /// The static execution plan.
    Plan,
    /// Constant tensors.
    Weights,
    /// Reference inputs and outputs for the self-test.
    TestVectors,
    /// Where the package came from.
    Provenance,
    /// Model family, pre-processing, free-form pairs.
    Metadata,
    /// The source ONNX file.
    Source,
    /// A kind added by a later minor version; skipped.
    Unknown(u32),
}

impl SectionKind {
    /// Sections every package has, in the order the builder writes them.
    pub const REQUIRED: [SectionKind; 6] = [
        Self::Spec,
        Self::Plan,
        Self::Weights,
        Self::TestVectors,
        Self::Provenance,
        Self::Metadata,
    ];

    /// The stored code.
    pub fn code(self) -> u32 {
        match self {
            Self::Spec => 1,
            Self::Plan => 2,
            Self::Weights => 3,
            Self::TestVectors => 4,
            Self::Provenance => 5,
            Self::Metadata => 6,
            Self::Source => 7,
            Self::Unknown(code) => code,
        }
    }

    /// Decodes a stored code.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => Self::Spec,
            2 => Self::Plan,
            3 => Self::Weights,
            4 => Self::TestVectors,
            5 => Self::Provenance,
            6 => Self::Metadata,
            7 => Self::Source,
            other => Self::Unknown(other),
        }
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spec => f.write_str("spec"),
            Self::Plan => f.write_str("plan"),
            Self::Weights => f.write_str("weights"),
            Self::TestVectors => f.write_str("test-vectors"),
            Self::Provenance => f.write_str("provenance"),
            Self::Metadata => f.write_str("metadata"),
            Self::Source => f.write_str("source"),
            Self::Unknown(code) => write!(f, "unknown-{code}"),
        }
    }
}

/// One section as the table lists it (for `cadence inspect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    /// What it holds.
    pub kind: SectionKind,
    /// File offset of its payload.
    pub offset: u64,
    /// Payload length.
    pub len: u64,
    /// CRC-32 of the payload.
    pub crc: u32,
}

/// What running a frame does with a NaN or infinity in an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NanPolicy {
    /// Refuse the frame, naming the input and the first bad element: a sensor fault
    /// must not turn into a plausible-looking detection.
    Reject,
    /// Pass the values to the model (inputs where NaN means "no data" by design).
    Allow,
}

impl NanPolicy {
    /// The stored code.
    pub fn code(self) -> u32 {
        match self {
            Self::Reject => 0,
            Self::Allow => 1,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Reject),
            1 => Some(Self::Allow),
            _ => None,
        }
    }
}

/// One dimension of an input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim<'a> {
    /// A fixed extent.
    Fixed(usize),
    /// A symbolic extent (`N`, `num_points`) pinned to `value` when the model was
    /// compiled; the name tells a caller which of its own sizes must match.
    Symbolic {
        /// The symbol.
        name: &'a str,
        /// The value it was pinned to.
        value: usize,
    },
}

impl Dim<'_> {
    /// The concrete extent.
    pub fn value(&self) -> usize {
        match *self {
            Self::Fixed(v) | Self::Symbolic { value: v, .. } => v,
        }
    }
}

/// Self-test tolerance: an output element `a` matches reference `b` when
/// `|a - b| <= abs + rel * |b|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub abs: f32,
    /// Relative part.
    pub rel: f32,
}

impl Tolerance {
    /// Whether `got` matches `expected`. Equal values (infinities included) always
    /// match; a NaN never matches.
    pub fn accepts(&self, got: f32, expected: f32) -> bool {
        got == expected || (got - expected).abs() <= self.abs + self.rel * expected.abs()
    }
}

/// `abs 1e-4, rel 1e-3`: each part in the shortest exponent form that reads back as
/// the same `f32` (`1e-4` is stored as 0.00009999999747…).
impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "abs {:e}, rel {:e}", self.abs, self.rel)
    }
}

/// The family a model belongs to, so tools pick the right pre- and post-processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFamily {
    /// Not declared.
    None,
    /// Camera detector or classifier.
    Camera,
    /// Lidar pillar feature network (PointPillars' PFN).
    LidarPfn,
    /// Lidar backbone and detection head over the pillar pseudo-image.
    LidarBackbone,
}

impl ModelFamily {
    /// The stored code.
    pub fn code(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Camera => 1,
            Self::LidarPfn => 2,
            Self::LidarBackbone => 3,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::None,
            1 => Self::Camera,
            2 => Self::LidarPfn,
            3 => Self::LidarBackbone,
            _ => return None,
        })
    }

    /// The name users see.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Camera => "camera",
            Self::LidarPfn => "lidar-pfn",
            Self::LidarBackbone => "lidar-backbone",
        }
    }
}

/// How raw sensor data becomes the model's first input, so `cadence run --input
/// image=photo.png` can do it without being told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocess {
    /// The caller supplies the tensor as is.
    None,
    /// Resize an RGB image to `height × width`, scale to `[0, 1]`, normalise with the
    /// ImageNet mean and standard deviation, lay out as `[1, 3, H, W]`.
    CameraImagenet {
        /// Target height in pixels.
        height: u32,
        /// Target width in pixels.
        width: u32,
    },
    /// Resize an RGB image to `height × width` and scale to `[0, 1]` (no mean/std), as
    /// YOLO-style detectors expect; `[1, 3, H, W]`.
    CameraUnit {
        /// Target height in pixels.
        height: u32,
        /// Target width in pixels.
        width: u32,
    },
    /// Group a point cloud into pillars of at most `max_points` points each, at most
    /// `max_pillars` pillars (PointPillars).
    LidarPillars {
        /// Pillar capacity.
        max_pillars: u32,
        /// Points per pillar.
        max_points: u32,
    },
}

impl Preprocess {
    /// The stored code and parameter words.
    pub fn encode(self) -> (u32, [u32; 6]) {
        match self {
            Self::None => (0, [0; 6]),
            Self::CameraImagenet { height, width } => (1, [height, width, 0, 0, 0, 0]),
            Self::CameraUnit { height, width } => (2, [height, width, 0, 0, 0, 0]),
            Self::LidarPillars {
                max_pillars,
                max_points,
            } => (3, [max_pillars, max_points, 0, 0, 0, 0]),
        }
    }

    fn decode(code: u32, p: &[u32; 6]) -> Option<Self> {
        Some(match code {
            0 => Self::None,
            1 => Self::CameraImagenet {
                height: p[0],
                width: p[1],
            },
            2 => Self::CameraUnit {
                height: p[0],
                width: p[1],
            },
            3 => Self::LidarPillars {
                max_pillars: p[0],
                max_points: p[1],
            },
            _ => return None,
        })
    }
}

/// In words, as `cadence inspect` shows it: `camera image 320x320, scaled to [0, 1],
/// ImageNet mean and std`.
impl fmt::Display for Preprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none (the caller supplies the tensor)"),
            Self::CameraImagenet { height, width } => write!(
                f,
                "camera image {height}x{width}, scaled to [0, 1], ImageNet mean and std"
            ),
            Self::CameraUnit { height, width } => {
                write!(f, "camera image {height}x{width}, scaled to [0, 1]")
            }
            Self::LidarPillars {
                max_pillars,
                max_points,
            } => write!(
                f,
                "lidar pillars: up to {max_pillars} of up to {max_points} points each"
            ),
        }
    }
}

/// A model input or output: what a caller must hand over or will get back.
#[derive(Clone, Copy, Debug)]
pub struct IoSpec<'a> {
    record: &'a IoRecord,
    strings: &'a [u8],
}

impl<'a> IoSpec<'a> {
    /// The name callers use.
    pub fn name(&self) -> &'a str {
        string(self.strings, self.record.name).unwrap_or("")
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        DType::from_code(self.record.dtype).unwrap_or(DType::F32)
    }

    /// The concrete shape (symbolic dims at their compiled values).
    pub fn shape(&self) -> Shape {
        let mut dims = [0usize; cadence_hal::MAX_RANK];
        let rank = self.rank();
        for (slot, d) in dims.iter_mut().zip(&self.record.dims[..rank]) {
            *slot = d.value as usize;
        }
        Shape::new(&dims[..rank]).unwrap_or_else(|| Shape::new(&[]).expect("rank 0 fits"))
    }

    /// The dims with their symbolic names.
    pub fn dims(&self) -> impl ExactSizeIterator<Item = Dim<'a>> + 'a {
        let strings = self.strings;
        self.record.dims[..self.rank()].iter().map(move |d| {
            if d.symbolic == 0 {
                Dim::Fixed(d.value as usize)
            } else {
                Dim::Symbolic {
                    name: string(strings, d.symbol).unwrap_or(""),
                    value: d.value as usize,
                }
            }
        })
    }

    /// Index of the plan tensor it binds to.
    pub fn tensor_index(&self) -> u32 {
        self.record.tensor
    }

    /// What a frame does with non-finite values in this input.
    pub fn nan_policy(&self) -> NanPolicy {
        NanPolicy::from_code(self.record.nan_policy).unwrap_or(NanPolicy::Reject)
    }

    fn rank(&self) -> usize {
        (self.record.rank as usize).min(cadence_hal::MAX_RANK)
    }
}

#[derive(Clone, Copy, Debug)]
struct Spec<'a> {
    inputs: &'a [IoRecord],
    outputs: &'a [IoRecord],
    strings: &'a [u8],
}

impl<'a> Spec<'a> {
    fn io(&self, record: &'a IoRecord) -> IoSpec<'a> {
        IoSpec {
            record,
            strings: self.strings,
        }
    }
}

/// One self-test case: reference inputs and the outputs they must produce, borrowed
/// from the file as `f32`.
#[derive(Clone, Copy, Debug)]
pub struct VectorCase<'a> {
    data: &'a [f32],
    spec: Spec<'a>,
}

impl<'a> VectorCase<'a> {
    /// Input `index`'s elements, in spec order.
    pub fn input(&self, index: usize) -> Option<&'a [f32]> {
        self.inputs().nth(index)
    }

    /// Output `index`'s expected elements, in spec order.
    pub fn output(&self, index: usize) -> Option<&'a [f32]> {
        self.outputs().nth(index)
    }

    /// Every input's elements, in spec order.
    pub fn inputs(&self) -> impl Iterator<Item = &'a [f32]> + 'a {
        blobs(self.data, self.spec.inputs)
    }

    /// Every output's expected elements, in spec order.
    pub fn outputs(&self) -> impl Iterator<Item = &'a [f32]> + 'a {
        let skip = volume_sum(self.spec.inputs);
        blobs(&self.data[skip..], self.spec.outputs)
    }
}

fn blobs<'a>(data: &'a [f32], records: &'a [IoRecord]) -> impl Iterator<Item = &'a [f32]> + 'a {
    records.iter().scan(0usize, move |at, r| {
        let start = *at;
        *at += record_volume(r);
        data.get(start..*at)
    })
}

fn record_volume(r: &IoRecord) -> usize {
    let rank = (r.rank as usize).min(cadence_hal::MAX_RANK);
    r.dims[..rank].iter().map(|d| d.value as usize).product()
}

fn volume_sum(records: &[IoRecord]) -> usize {
    records.iter().map(record_volume).sum()
}

/// Where a package came from: enough to reproduce it and to trace a result back.
#[derive(Clone, Copy, Debug)]
pub struct Provenance<'a> {
    record: &'a ProvenanceRecord,
    strings: &'a [u8],
}

impl<'a> Provenance<'a> {
    /// SHA-256 of the source ONNX file.
    pub fn source_sha256(&self) -> &'a [u8; 32] {
        &self.record.source_sha256
    }
    /// The source file's name.
    pub fn source_name(&self) -> &'a str {
        string(self.strings, self.record.source_name).unwrap_or("")
    }
    /// Version of the compiler that wrote the package.
    pub fn compiler_version(&self) -> &'a str {
        string(self.strings, self.record.compiler_version).unwrap_or("")
    }
    /// Git commit of the compiler.
    pub fn git_commit(&self) -> &'a str {
        string(self.strings, self.record.git_commit).unwrap_or("")
    }
    /// Creation time, Unix seconds.
    pub fn created_unix(&self) -> u64 {
        self.record.created_unix
    }
    /// Multiply-accumulates per frame.
    pub fn macs(&self) -> u64 {
        self.record.macs
    }
    /// Parameter count.
    pub fn parameters(&self) -> u64 {
        self.record.parameters
    }
}

/// What the model is and how its input is prepared.
#[derive(Clone, Copy, Debug)]
pub struct Metadata<'a> {
    family: ModelFamily,
    preprocess: Preprocess,
    pairs: &'a [KeyValueRecord],
    strings: &'a [u8],
}

impl<'a> Metadata<'a> {
    /// The model family.
    pub fn family(&self) -> ModelFamily {
        self.family
    }
    /// The pre-processing the model expects.
    pub fn preprocess(&self) -> Preprocess {
        self.preprocess
    }
    /// Free-form key/value pairs (description, dataset, licence…), in stored order.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + 'a {
        let strings = self.strings;
        self.pairs.iter().map(move |kv| {
            (
                string(strings, kv.key).unwrap_or(""),
                string(strings, kv.value).unwrap_or(""),
            )
        })
    }
    /// The value of the first pair with key `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// A parsed, fully checked package borrowing its file.
#[derive(Clone, Copy, Debug)]
pub struct Package<'a> {
    header: &'a FileHeader,
    table: &'a [SectionEntry],
    spec: Spec<'a>,
    plan: Plan<'a>,
    plan_header: &'a PlanHeader,
    vectors: &'a VectorsHeader,
    vector_data: &'a [f32],
    provenance: Provenance<'a>,
    metadata: Metadata<'a>,
    source: Option<&'a [u8]>,
}

impl<'a> Package<'a> {
    /// Parses and checks `bytes`, which must start at a 64-byte-aligned address (see
    /// [`format::SECTION_ALIGN`]); nothing is copied.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PackageError> {
        let magic_len = bytes.len().min(MAGIC.len());
        if bytes[..magic_len] != MAGIC[..magic_len] {
            return Err(PackageError::BadMagic);
        }
        if bytes.len() < size_of::<FileHeader>() {
            return Err(truncated(size_of::<FileHeader>(), bytes));
        }
        let address_mod = bytes.as_ptr() as usize % SECTION_ALIGN;
        if address_mod != 0 {
            return Err(PackageError::Misaligned { address_mod });
        }
        let (header, _) =
            FileHeader::ref_from_prefix(bytes).map_err(|_| PackageError::BadHeader {
                reason: "header is misaligned",
            })?;
        if header.version_major != FORMAT_MAJOR || header.version_minor > FORMAT_MINOR {
            return Err(PackageError::UnsupportedVersion {
                major: header.version_major,
                minor: header.version_minor,
            });
        }
        let truncated_or_corrupt = || {
            if (bytes.len() as u64) < header.file_len {
                PackageError::Truncated {
                    needed: header.file_len,
                    len: bytes.len(),
                }
            } else {
                PackageError::HeaderChecksum
            }
        };
        // A damaged section count must read as corruption, not as a short file, so the
        // count is only trusted once the checksum it is covered by agrees.
        let table_end = (header.section_count as usize)
            .checked_mul(size_of::<SectionEntry>())
            .and_then(|t| t.checked_add(size_of::<FileHeader>()))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(truncated_or_corrupt)?;
        let head = &bytes[..table_end];
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[..TABLE_CRC_OFFSET]);
        crc.update(&head[size_of::<FileHeader>()..]);
        if crc.finalize() != header.table_crc {
            return Err(PackageError::HeaderChecksum);
        }
        if header.header_len as usize != size_of::<FileHeader>() {
            return Err(PackageError::BadHeader {
                reason: "header length is not 40",
            });
        }
        if (bytes.len() as u64) < header.file_len {
            return Err(truncated_or_corrupt());
        }
        if (bytes.len() as u64) > header.file_len {
            return Err(PackageError::TrailingBytes {
                expected: header.file_len,
                len: bytes.len(),
            });
        }
        let table =
            <[SectionEntry]>::ref_from_bytes(&head[size_of::<FileHeader>()..]).map_err(|_| {
                PackageError::BadHeader {
                    reason: "section table is misaligned",
                }
            })?;

        let sections = Sections::check(bytes, table_end, table)?;
        let spec = parse_spec(sections.required(SectionKind::Spec)?)?;
        let (plan, plan_header) = parse_plan(
            sections.required(SectionKind::Plan)?,
            sections.required(SectionKind::Weights)?,
        )?;
        check_bindings(&spec, &plan)?;
        let (vectors, vector_data) =
            parse_vectors(sections.required(SectionKind::TestVectors)?, &spec)?;
        let provenance = parse_provenance(sections.required(SectionKind::Provenance)?)?;
        let metadata = parse_metadata(sections.required(SectionKind::Metadata)?)?;
        Ok(Self {
            header,
            table,
            spec,
            plan,
            plan_header,
            vectors,
            vector_data,
            provenance,
            metadata,
            source: sections.get(SectionKind::Source),
        })
    }

    /// The format version the file was written with (major, minor).
    pub fn format_version(&self) -> (u16, u16) {
        (self.header.version_major, self.header.version_minor)
    }

    /// Total file length in bytes.
    pub fn file_len(&self) -> u64 {
        self.header.file_len
    }

    /// The section table, in file order.
    pub fn sections(&self) -> impl ExactSizeIterator<Item = SectionInfo> + 'a {
        self.table.iter().map(|e| SectionInfo {
            kind: SectionKind::from_code(e.kind),
            offset: e.offset,
            len: e.len,
            crc: e.crc,
        })
    }

    /// The execution plan, borrowing the file (not yet validated: `Engine::load` does).
    pub fn plan(&self) -> Plan<'a> {
        self.plan
    }

    /// Arena bytes the plan needs: what a firmware reserves as a `static`.
    pub fn arena_bytes(&self) -> usize {
        self.plan.arena_bytes
    }

    /// The liveness lower bound of the arena, to judge the memory planner.
    pub fn arena_lower_bound_bytes(&self) -> usize {
        self.plan_header.arena_lower_bound_bytes as usize
    }

    /// Alignment of every arena offset in the plan.
    pub fn alignment(&self) -> usize {
        self.plan_header.alignment as usize
    }

    /// Model inputs, in spec order.
    pub fn inputs(&self) -> impl ExactSizeIterator<Item = IoSpec<'a>> + 'a {
        let spec = self.spec;
        spec.inputs.iter().map(move |r| spec.io(r))
    }

    /// Model outputs, in spec order.
    pub fn outputs(&self) -> impl ExactSizeIterator<Item = IoSpec<'a>> + 'a {
        let spec = self.spec;
        spec.outputs.iter().map(move |r| spec.io(r))
    }

    /// Input `index`.
    pub fn input(&self, index: usize) -> Option<IoSpec<'a>> {
        self.spec.inputs.get(index).map(|r| self.spec.io(r))
    }

    /// Output `index`.
    pub fn output(&self, index: usize) -> Option<IoSpec<'a>> {
        self.spec.outputs.get(index).map(|r| self.spec.io(r))
    }

    /// The self-test cases.
    pub fn test_vectors(&self) -> impl ExactSizeIterator<Item = VectorCase<'a>> + 'a {
        let spec = self.spec;
        let per_case = volume_sum(spec.inputs) + volume_sum(spec.outputs);
        let data = self.vector_data;
        (0..self.vectors.case_count as usize).map(move |i| VectorCase {
            data: &data[i * per_case..(i + 1) * per_case],
            spec,
        })
    }

    /// The tolerance the self-test applies.
    pub fn tolerance(&self) -> Tolerance {
        Tolerance {
            abs: self.vectors.abs_tolerance,
            rel: self.vectors.rel_tolerance,
        }
    }

    /// Where the package came from.
    pub fn provenance(&self) -> Provenance<'a> {
        self.provenance
    }

    /// Family, pre-processing and free-form pairs.
    pub fn metadata(&self) -> Metadata<'a> {
        self.metadata
    }

    /// The source ONNX file, when the compiler embedded it (for the tract backend).
    pub fn source_onnx(&self) -> Option<&'a [u8]> {
        self.source
    }
}

fn truncated(needed: usize, bytes: &[u8]) -> PackageError {
    PackageError::Truncated {
        needed: needed as u64,
        len: bytes.len(),
    }
}

/// The checked payloads of the known sections.
struct Sections<'a> {
    payloads: [Option<&'a [u8]>; 7],
}

impl<'a> Sections<'a> {
    fn check(
        bytes: &'a [u8],
        table_end: usize,
        table: &[SectionEntry],
    ) -> Result<Self, PackageError> {
        let mut payloads = [None; 7];
        for entry in table {
            let section = SectionKind::from_code(entry.kind);
            if entry.offset % SECTION_ALIGN as u64 != 0 {
                return Err(PackageError::MisalignedSection {
                    section,
                    offset: entry.offset,
                });
            }
            let range = usize::try_from(entry.offset)
                .ok()
                .zip(usize::try_from(entry.len).ok())
                .and_then(|(start, len)| Some(start..start.checked_add(len)?))
                .filter(|r| r.start >= table_end && r.end <= bytes.len())
                .ok_or(PackageError::SectionOutOfBounds { section })?;
            let payload = &bytes[range];
            if crc32fast::hash(payload) != entry.crc {
                return Err(PackageError::Checksum { section });
            }
            if let SectionKind::Unknown(_) = section {
                continue;
            }
            let slot = &mut payloads[section.code() as usize - 1];
            if slot.is_some() {
                return Err(PackageError::DuplicateSection { section });
            }
            *slot = Some(payload);
        }
        Ok(Self { payloads })
    }

    fn get(&self, kind: SectionKind) -> Option<&'a [u8]> {
        self.payloads[kind.code() as usize - 1]
    }

    fn required(&self, kind: SectionKind) -> Result<&'a [u8], PackageError> {
        self.get(kind)
            .ok_or(PackageError::MissingSection { section: kind })
    }
}

/// Takes records off the front of a section, failing with the section's name.
struct Cursor<'a> {
    rest: &'a [u8],
    section: SectionKind,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], section: SectionKind) -> Self {
        Self {
            rest: bytes,
            section,
        }
    }

    fn bad(&self, reason: &'static str) -> PackageError {
        PackageError::BadRecord {
            section: self.section,
            reason,
        }
    }

    fn record<T: FromBytes + KnownLayout + Immutable>(&mut self) -> Result<&'a T, PackageError> {
        let (r, rest) = T::ref_from_prefix(self.rest)
            .map_err(|_| self.bad("section is shorter than its header"))?;
        self.rest = rest;
        Ok(r)
    }

    fn slice<T: FromBytes + Immutable>(&mut self, count: u32) -> Result<&'a [T], PackageError> {
        let (r, rest) = <[T]>::ref_from_prefix_with_elems(self.rest, count as usize)
            .map_err(|_| self.bad("section is shorter than its counts say"))?;
        self.rest = rest;
        Ok(r)
    }

    fn bytes(&mut self, len: u32) -> Result<&'a [u8], PackageError> {
        self.slice::<u8>(len)
    }

    fn finish(self) -> Result<(), PackageError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.bad("section is longer than its counts say"))
        }
    }
}

fn string(strings: &[u8], r: StrRef) -> Option<&str> {
    let start = r.offset as usize;
    let bytes = strings.get(start..start.checked_add(r.len as usize)?)?;
    core::str::from_utf8(bytes).ok()
}

fn check_string(strings: &[u8], r: StrRef, section: SectionKind) -> Result<(), PackageError> {
    let start = r.offset as usize;
    let bytes = start
        .checked_add(r.len as usize)
        .and_then(|end| strings.get(start..end))
        .ok_or(PackageError::BadRecord {
            section,
            reason: "string lies outside the string table",
        })?;
    core::str::from_utf8(bytes).map_err(|_| PackageError::BadRecord {
        section,
        reason: "string is not UTF-8",
    })?;
    Ok(())
}

fn parse_spec(bytes: &[u8]) -> Result<Spec<'_>, PackageError> {
    const S: SectionKind = SectionKind::Spec;
    let mut c = Cursor::new(bytes, S);
    let h: &SpecHeader = c.record()?;
    let inputs = c.slice::<IoRecord>(h.input_count)?;
    let outputs = c.slice::<IoRecord>(h.output_count)?;
    let strings = c.bytes(h.strings_len)?;
    c.finish()?;
    let bad = |reason| PackageError::BadRecord { section: S, reason };
    for r in inputs.iter().chain(outputs) {
        check_string(strings, r.name, S)?;
        DType::from_code(r.dtype).ok_or(bad("unknown dtype"))?;
        NanPolicy::from_code(r.nan_policy).ok_or(bad("unknown NaN policy"))?;
        let dims: &[DimRecord] = r
            .dims
            .get(..r.rank as usize)
            .ok_or(bad("rank above the maximum"))?;
        for d in dims {
            match d.symbolic {
                0 => {}
                1 => check_string(strings, d.symbol, S)?,
                _ => return Err(bad("unknown dim kind")),
            }
        }
    }
    if inputs.is_empty() {
        return Err(bad("the model has no inputs"));
    }
    if outputs.is_empty() {
        return Err(bad("the model has no outputs"));
    }
    let spec = Spec {
        inputs,
        outputs,
        strings,
    };
    for (i, a) in inputs.iter().enumerate() {
        let name = spec.io(a).name();
        if inputs[..i].iter().any(|b| spec.io(b).name() == name) {
            return Err(bad("two inputs share a name"));
        }
    }
    for (i, a) in outputs.iter().enumerate() {
        let name = spec.io(a).name();
        if outputs[..i].iter().any(|b| spec.io(b).name() == name) {
            return Err(bad("two outputs share a name"));
        }
    }
    Ok(spec)
}

fn parse_plan<'a>(
    bytes: &'a [u8],
    weights: &'a [u8],
) -> Result<(Plan<'a>, &'a PlanHeader), PackageError> {
    const S: SectionKind = SectionKind::Plan;
    let mut c = Cursor::new(bytes, S);
    let h: &PlanHeader = c.record()?;
    let tensors = c.slice::<TensorRecord>(h.tensor_count)?;
    let steps = c.slice::<StepRecord>(h.step_count)?;
    let names = c.bytes(h.names_len)?;
    c.finish()?;
    let bad = |reason| PackageError::BadRecord { section: S, reason };
    if !h.alignment.is_power_of_two() || h.alignment as usize > SECTION_ALIGN {
        return Err(bad("alignment is not a power of two up to 64"));
    }
    if h.arena_lower_bound_bytes > h.arena_bytes {
        return Err(bad("arena is smaller than its own lower bound"));
    }
    for step in steps {
        let r = StrRef {
            offset: step.name_offset,
            len: step.name_len,
        };
        check_string(names, r, S)?;
    }
    let plan = Plan {
        tensors,
        steps,
        names,
        weights,
        arena_bytes: h.arena_bytes as usize,
    };
    Ok((plan, h))
}

fn check_bindings(spec: &Spec<'_>, plan: &Plan<'_>) -> Result<(), PackageError> {
    let ios = spec
        .inputs
        .iter()
        .enumerate()
        .map(|(i, r)| (IoSlot::Input(i), r));
    let ios = ios.chain(
        spec.outputs
            .iter()
            .enumerate()
            .map(|(i, r)| (IoSlot::Output(i), r)),
    );
    for (io, r) in ios {
        let t = plan
            .tensors
            .get(r.tensor as usize)
            .ok_or(PackageError::SpecTensorOutOfRange {
                io,
                tensor: r.tensor,
                tensor_count: plan.tensors.len(),
            })?;
        let mismatch = |reason| PackageError::SpecMismatch { io, reason };
        if t.dtype != r.dtype {
            return Err(mismatch("dtypes differ"));
        }
        if t.storage() != Some(Storage::Arena) {
            return Err(mismatch("the tensor is not in the arena"));
        }
        let rank = r.rank as usize;
        let same = t.rank == r.rank
            && t.dims[..rank]
                .iter()
                .zip(&r.dims[..rank])
                .all(|(a, b)| *a == b.value);
        if !same {
            return Err(mismatch("shapes differ"));
        }
    }
    Ok(())
}

fn parse_vectors<'a>(
    bytes: &'a [u8],
    spec: &Spec<'a>,
) -> Result<(&'a VectorsHeader, &'a [f32]), PackageError> {
    const S: SectionKind = SectionKind::TestVectors;
    let mut c = Cursor::new(bytes, S);
    let h: &VectorsHeader = c.record()?;
    let bad = |reason| PackageError::BadRecord { section: S, reason };
    if h.input_count as usize != spec.inputs.len() || h.output_count as usize != spec.outputs.len()
    {
        return Err(bad("input or output count differs from the spec"));
    }
    let tolerance_ok = |t: f32| t.is_finite() && t >= 0.0;
    if !tolerance_ok(h.abs_tolerance) || !tolerance_ok(h.rel_tolerance) {
        return Err(bad("tolerance is negative or not finite"));
    }
    let per_case = volume_sum(spec.inputs)
        .checked_add(volume_sum(spec.outputs))
        .ok_or(bad("vector sizes overflow"))?;
    let total = per_case
        .checked_mul(h.case_count as usize)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(bad("vector sizes overflow"))?;
    let data = c.slice::<f32>(total)?;
    c.finish()?;
    Ok((h, data))
}

fn parse_provenance(bytes: &[u8]) -> Result<Provenance<'_>, PackageError> {
    const S: SectionKind = SectionKind::Provenance;
    let mut c = Cursor::new(bytes, S);
    let record: &ProvenanceRecord = c.record()?;
    let strings = c.bytes(record.strings_len)?;
    c.finish()?;
    for r in [
        record.source_name,
        record.compiler_version,
        record.git_commit,
    ] {
        check_string(strings, r, S)?;
    }
    Ok(Provenance { record, strings })
}

fn parse_metadata(bytes: &[u8]) -> Result<Metadata<'_>, PackageError> {
    const S: SectionKind = SectionKind::Metadata;
    let mut c = Cursor::new(bytes, S);
    let h: &MetadataHeader = c.record()?;
    let pairs = c.slice::<KeyValueRecord>(h.pair_count)?;
    let strings = c.bytes(h.strings_len)?;
    c.finish()?;
    let bad = |reason| PackageError::BadRecord { section: S, reason };
    for kv in pairs {
        check_string(strings, kv.key, S)?;
        check_string(strings, kv.value, S)?;
    }
    Ok(Metadata {
        family: ModelFamily::from_code(h.family).ok_or(bad("unknown model family"))?,
        preprocess: Preprocess::decode(h.preprocess, &h.preprocess_params)
            .ok_or(bad("unknown pre-processing"))?,
        pairs,
        strings,
    })
}
