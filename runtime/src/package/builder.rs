//! Writing packages (host only): the compiler fills a [`PackageBuilder`] and calls
//! [`PackageBuilder::to_bytes`].
//!
//! The builder re-parses what it wrote before handing it back, so a package it returns
//! is one every runtime of this format version accepts.

use std::fmt;

use cadence_hal::plan::{StepRecord, TENSOR_ALIGN, TensorRecord};
use cadence_hal::{DType, MAX_RANK};
use zerocopy::IntoBytes;

use super::format::{
    DimRecord, FORMAT_MAJOR, FORMAT_MINOR, FileHeader, IoRecord, KeyValueRecord, MAGIC,
    MetadataHeader, PlanHeader, ProvenanceRecord, SECTION_ALIGN, SectionEntry, SpecHeader, StrRef,
    TABLE_CRC_OFFSET, VectorsHeader,
};
use super::{
    AlignedBytes, IoSlot, ModelFamily, NanPolicy, Package, PackageError, Preprocess, SectionKind,
    Tolerance,
};

/// One dimension of a declared input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimDecl {
    /// A fixed extent.
    Fixed(u32),
    /// A symbolic extent and the value it was pinned to.
    Symbolic {
        /// The symbol (`N`, `num_points`).
        name: String,
        /// The pinned value.
        value: u32,
    },
}

impl DimDecl {
    /// The concrete extent.
    pub fn value(&self) -> u32 {
        match *self {
            Self::Fixed(v) | Self::Symbolic { value: v, .. } => v,
        }
    }
}

/// A model input or output to declare.
#[derive(Clone, Debug, PartialEq)]
pub struct IoDecl {
    /// The name callers use.
    pub name: String,
    /// Element type; must equal the bound tensor's.
    pub dtype: DType,
    /// Dims, outermost first; must equal the bound tensor's.
    pub dims: Vec<DimDecl>,
    /// Index of the plan tensor it binds to.
    pub tensor: u32,
    /// NaN policy (meaningful for inputs; outputs store it too).
    pub nan_policy: NanPolicy,
}

impl IoDecl {
    fn volume(&self) -> usize {
        self.dims.iter().map(|d| d.value() as usize).product()
    }
}

/// One self-test case: every input then every output, in spec order, as `f32`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TestCase {
    /// Input tensors, row-major.
    pub inputs: Vec<Vec<f32>>,
    /// Reference output tensors, row-major.
    pub outputs: Vec<Vec<f32>>,
}

/// Provenance to record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProvenanceDecl {
    /// SHA-256 of the source ONNX file.
    pub source_sha256: [u8; 32],
    /// Source file name.
    pub source_name: String,
    /// Compiler version.
    pub compiler_version: String,
    /// Git commit of the compiler.
    pub git_commit: String,
    /// Creation time, Unix seconds.
    pub created_unix: u64,
    /// Multiply-accumulates per frame.
    pub macs: u64,
    /// Parameter count.
    pub parameters: u64,
}

/// Metadata to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataDecl {
    /// Model family.
    pub family: ModelFamily,
    /// Pre-processing the model expects.
    pub preprocess: Preprocess,
    /// Free-form key/value pairs.
    pub pairs: Vec<(String, String)>,
}

impl Default for MetadataDecl {
    fn default() -> Self {
        Self {
            family: ModelFamily::None,
            preprocess: Preprocess::None,
            pairs: Vec::new(),
        }
    }
}

/// Everything a package holds, filled in by the compiler.
#[derive(Clone, Debug, PartialEq)]
pub struct PackageBuilder {
    /// Model inputs.
    pub inputs: Vec<IoDecl>,
    /// Model outputs.
    pub outputs: Vec<IoDecl>,
    /// Plan tensors.
    pub tensors: Vec<TensorRecord>,
    /// Plan steps; `name_offset` and `name_len` are overwritten from `step_names`.
    pub steps: Vec<StepRecord>,
    /// One name per step (its source node).
    pub step_names: Vec<String>,
    /// Arena bytes the plan needs.
    pub arena_bytes: u32,
    /// Liveness lower bound of the arena.
    pub arena_lower_bound_bytes: u32,
    /// The weights section: `f32` data addressed by weights-storage tensors.
    pub weights: Vec<u8>,
    /// Self-test cases.
    pub test_cases: Vec<TestCase>,
    /// Self-test tolerance.
    pub tolerance: Tolerance,
    /// Provenance.
    pub provenance: ProvenanceDecl,
    /// Metadata.
    pub metadata: MetadataDecl,
    /// The source ONNX file, to embed for the tract backend.
    pub source_onnx: Option<Vec<u8>>,
}

/// Why a builder cannot produce a package.
#[derive(Clone, Debug, PartialEq)]
pub enum BuildError {
    /// `step_names` and `steps` differ in length.
    StepNames {
        /// Steps.
        steps: usize,
        /// Names.
        names: usize,
    },
    /// An input or output has more dims than a plan allows.
    RankTooHigh {
        /// The input or output.
        io: IoSlot,
        /// Its rank.
        rank: usize,
    },
    /// A test case has the wrong number of tensors or a tensor of the wrong length.
    TestVector {
        /// Case index.
        case: usize,
        /// The input or output (`None`: the count of tensors is wrong).
        io: Option<IoSlot>,
        /// Elements (or tensors) expected.
        expected: usize,
        /// Elements (or tensors) given.
        got: usize,
    },
    /// A count or size does not fit the format's 32-bit fields.
    TooLarge {
        /// What overflowed.
        what: &'static str,
    },
    /// What was written does not parse back: the declarations are inconsistent.
    Invalid(PackageError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StepNames { steps, names } => {
                write!(f, "{steps} steps but {names} step names")
            }
            Self::RankTooHigh { io, rank } => {
                write!(f, "{io} has rank {rank}; at most {MAX_RANK} is supported")
            }
            Self::TestVector {
                case,
                io: None,
                expected,
                got,
            } => write!(f, "test case {case} has {got} tensors, expected {expected}"),
            Self::TestVector {
                case,
                io: Some(io),
                expected,
                got,
            } => write!(
                f,
                "test case {case}: {io} has {got} elements, its shape has {expected}"
            ),
            Self::TooLarge { what } => write!(f, "{what} does not fit the package format"),
            Self::Invalid(e) => write!(f, "the package would not load: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

fn len32(n: usize, what: &'static str) -> Result<u32, BuildError> {
    u32::try_from(n).map_err(|_| BuildError::TooLarge { what })
}

/// A string table under construction.
#[derive(Default)]
struct Strings(Vec<u8>);

impl Strings {
    fn add(&mut self, s: &str) -> Result<StrRef, BuildError> {
        let r = StrRef {
            offset: len32(self.0.len(), "string table")?,
            len: len32(s.len(), "string")?,
        };
        self.0.extend_from_slice(s.as_bytes());
        Ok(r)
    }

    fn len(&self) -> Result<u32, BuildError> {
        len32(self.0.len(), "string table")
    }
}

impl PackageBuilder {
    /// Serialises the package, then parses it back to prove it loads.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BuildError> {
        let spec = self.spec_section()?;
        let plan = self.plan_section()?;
        let vectors = self.vectors_section()?;
        let provenance = self.provenance_section()?;
        let metadata = self.metadata_section()?;
        let mut sections: Vec<(SectionKind, &[u8])> = vec![
            (SectionKind::Spec, &spec),
            (SectionKind::Plan, &plan),
            (SectionKind::Weights, &self.weights),
            (SectionKind::TestVectors, &vectors),
            (SectionKind::Provenance, &provenance),
            (SectionKind::Metadata, &metadata),
        ];
        if let Some(source) = &self.source_onnx {
            sections.push((SectionKind::Source, source));
        }
        let bytes = assemble(&sections)?;
        Package::parse(&AlignedBytes::from_slice(&bytes)).map_err(BuildError::Invalid)?;
        Ok(bytes)
    }

    fn spec_section(&self) -> Result<Vec<u8>, BuildError> {
        let mut strings = Strings::default();
        let mut records = Vec::with_capacity(self.inputs.len() + self.outputs.len());
        let slots = (0..self.inputs.len()).map(IoSlot::Input);
        let slots = slots.chain((0..self.outputs.len()).map(IoSlot::Output));
        for (io, decl) in slots.zip(self.inputs.iter().chain(&self.outputs)) {
            if decl.dims.len() > MAX_RANK {
                return Err(BuildError::RankTooHigh {
                    io,
                    rank: decl.dims.len(),
                });
            }
            let mut dims = [DimRecord::default(); MAX_RANK];
            for (slot, d) in dims.iter_mut().zip(&decl.dims) {
                *slot = match d {
                    DimDecl::Fixed(value) => DimRecord {
                        value: *value,
                        ..DimRecord::default()
                    },
                    DimDecl::Symbolic { name, value } => DimRecord {
                        value: *value,
                        symbolic: 1,
                        symbol: strings.add(name)?,
                    },
                };
            }
            records.push(IoRecord {
                name: strings.add(&decl.name)?,
                dtype: decl.dtype as u32,
                tensor: decl.tensor,
                nan_policy: decl.nan_policy.code(),
                rank: decl.dims.len() as u32,
                dims,
            });
        }
        let header = SpecHeader {
            input_count: len32(self.inputs.len(), "input count")?,
            output_count: len32(self.outputs.len(), "output count")?,
            strings_len: strings.len()?,
            reserved: 0,
        };
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(records.as_bytes());
        out.extend_from_slice(&strings.0);
        Ok(out)
    }

    fn plan_section(&self) -> Result<Vec<u8>, BuildError> {
        if self.step_names.len() != self.steps.len() {
            return Err(BuildError::StepNames {
                steps: self.steps.len(),
                names: self.step_names.len(),
            });
        }
        let mut names = Strings::default();
        let mut steps = self.steps.clone();
        for (step, name) in steps.iter_mut().zip(&self.step_names) {
            let r = names.add(name)?;
            step.name_offset = r.offset;
            step.name_len = r.len;
        }
        let header = PlanHeader {
            tensor_count: len32(self.tensors.len(), "tensor count")?,
            step_count: len32(steps.len(), "step count")?,
            names_len: names.len()?,
            arena_bytes: self.arena_bytes,
            arena_lower_bound_bytes: self.arena_lower_bound_bytes,
            alignment: TENSOR_ALIGN as u32,
            reserved: [0; 2],
        };
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(self.tensors.as_bytes());
        out.extend_from_slice(steps.as_bytes());
        out.extend_from_slice(&names.0);
        Ok(out)
    }

    fn vectors_section(&self) -> Result<Vec<u8>, BuildError> {
        let header = VectorsHeader {
            case_count: len32(self.test_cases.len(), "test case count")?,
            input_count: len32(self.inputs.len(), "input count")?,
            output_count: len32(self.outputs.len(), "output count")?,
            abs_tolerance: self.tolerance.abs,
            rel_tolerance: self.tolerance.rel,
            reserved: [0; 3],
        };
        let mut out = header.as_bytes().to_vec();
        for (case, tc) in self.test_cases.iter().enumerate() {
            check_case(case, &tc.inputs, &self.inputs, IoSlot::Input)?;
            check_case(case, &tc.outputs, &self.outputs, IoSlot::Output)?;
            for blob in tc.inputs.iter().chain(&tc.outputs) {
                out.extend_from_slice(blob.as_bytes());
            }
        }
        Ok(out)
    }

    fn provenance_section(&self) -> Result<Vec<u8>, BuildError> {
        let p = &self.provenance;
        let mut strings = Strings::default();
        let record = ProvenanceRecord {
            source_sha256: p.source_sha256,
            created_unix: p.created_unix,
            macs: p.macs,
            parameters: p.parameters,
            source_name: strings.add(&p.source_name)?,
            compiler_version: strings.add(&p.compiler_version)?,
            git_commit: strings.add(&p.git_commit)?,
            strings_len: strings.len()?,
            reserved: 0,
        };
        let mut out = record.as_bytes().to_vec();
        out.extend_from_slice(&strings.0);
        Ok(out)
    }

    fn metadata_section(&self) -> Result<Vec<u8>, BuildError> {
        let m = &self.metadata;
        let mut strings = Strings::default();
        let mut pairs = Vec::with_capacity(m.pairs.len());
        for (k, v) in &m.pairs {
            pairs.push(KeyValueRecord {
                key: strings.add(k)?,
                value: strings.add(v)?,
            });
        }
        let (preprocess, preprocess_params) = m.preprocess.encode();
        let header = MetadataHeader {
            family: m.family.code(),
            preprocess,
            preprocess_params,
            pair_count: len32(pairs.len(), "metadata pair count")?,
            strings_len: strings.len()?,
        };
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(pairs.as_bytes());
        out.extend_from_slice(&strings.0);
        Ok(out)
    }
}

fn check_case(
    case: usize,
    blobs: &[Vec<f32>],
    decls: &[IoDecl],
    slot: fn(usize) -> IoSlot,
) -> Result<(), BuildError> {
    if blobs.len() != decls.len() {
        return Err(BuildError::TestVector {
            case,
            io: None,
            expected: decls.len(),
            got: blobs.len(),
        });
    }
    for (i, (blob, decl)) in blobs.iter().zip(decls).enumerate() {
        if blob.len() != decl.volume() {
            return Err(BuildError::TestVector {
                case,
                io: Some(slot(i)),
                expected: decl.volume(),
                got: blob.len(),
            });
        }
    }
    Ok(())
}

/// Lays out a file from section payloads, in the order given: header, table, then each
/// payload at the next 64-byte boundary, with every checksum filled in. Does not check
/// the payloads; [`PackageBuilder::to_bytes`] is the checked way to write a package.
/// Exposed so tools can rewrite one section (say, metadata) of an existing package.
pub fn assemble(sections: &[(SectionKind, &[u8])]) -> Result<Vec<u8>, BuildError> {
    let table_end = size_of::<FileHeader>() + sections.len() * size_of::<SectionEntry>();
    let mut table = Vec::with_capacity(sections.len());
    let mut at = table_end.next_multiple_of(SECTION_ALIGN);
    for (kind, payload) in sections {
        table.push(SectionEntry {
            kind: kind.code(),
            flags: 0,
            offset: at as u64,
            len: payload.len() as u64,
            crc: crc32fast::hash(payload),
            reserved: 0,
        });
        at = (at + payload.len()).next_multiple_of(SECTION_ALIGN);
    }
    let file_len = table.last().map_or(table_end as u64, |e| e.offset + e.len);
    let mut header = FileHeader {
        magic: MAGIC,
        version_major: FORMAT_MAJOR,
        version_minor: FORMAT_MINOR,
        header_len: size_of::<FileHeader>() as u32,
        section_count: len32(sections.len(), "section count")?,
        flags: 0,
        file_len,
        reserved: 0,
        table_crc: 0,
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header.as_bytes()[..TABLE_CRC_OFFSET]);
    crc.update(table.as_bytes());
    header.table_crc = crc.finalize();

    let mut out = Vec::with_capacity(file_len as usize);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(table.as_bytes());
    for (entry, (_, payload)) in table.iter().zip(sections) {
        out.resize(entry.offset as usize, 0);
        out.extend_from_slice(payload);
    }
    Ok(out)
}
