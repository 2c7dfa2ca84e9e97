//! The `.cpk` format: round trip, and every way a damaged file must be refused.

mod common;

use std::ops::Range;

use cadence_hal::Op;
use cadence_runtime::package::builder::{BuildError, DimDecl, assemble};
use cadence_runtime::package::format::{
    FORMAT_MAJOR, FileHeader, IoRecord, MetadataHeader, SectionEntry, SpecHeader, TABLE_CRC_OFFSET,
    VectorsHeader,
};
use cadence_runtime::package::{
    AlignedBytes, Dim, IoSlot, NanPolicy, Package, PackageError, Preprocess, SectionKind, Tolerance,
};
use proptest::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

fn table(bytes: &[u8]) -> Vec<SectionEntry> {
    let (h, rest) = FileHeader::ref_from_prefix(bytes).unwrap();
    let (t, _) =
        <[SectionEntry]>::ref_from_prefix_with_elems(rest, h.section_count as usize).unwrap();
    t.to_vec()
}

fn section(bytes: &[u8], kind: SectionKind) -> Range<usize> {
    let e = table(bytes)
        .into_iter()
        .find(|e| e.kind == kind.code())
        .unwrap();
    e.offset as usize..(e.offset + e.len) as usize
}

/// Recomputes every checksum, as a buggy compiler writing a bad record would have.
fn reseal(bytes: &mut [u8]) {
    let entries = table(bytes);
    let mut fixed = entries.clone();
    for e in &mut fixed {
        e.crc = crc32fast::hash(&bytes[e.offset as usize..(e.offset + e.len) as usize]);
    }
    let table_bytes = fixed.as_bytes().to_vec();
    let start = size_of::<FileHeader>();
    bytes[start..start + table_bytes.len()].copy_from_slice(&table_bytes);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..TABLE_CRC_OFFSET]);
    crc.update(&table_bytes);
    let (h, _) = FileHeader::mut_from_prefix(bytes).unwrap();
    h.table_crc = crc.finalize();
}

/// Parses the fixture after `patch` edits it and every checksum is recomputed.
fn parse_patched(patch: impl FnOnce(&mut [u8])) -> Result<(), PackageError> {
    let mut bytes = common::package_bytes();
    patch(&mut bytes);
    reseal(&mut bytes);
    Package::parse(&bytes).map(|_| ())
}

#[test]
fn round_trip_keeps_every_field() {
    let b = common::builder();
    let bytes = common::package_bytes();
    let p = Package::parse(&bytes).unwrap();

    assert_eq!(p.format_version(), (FORMAT_MAJOR, 0));
    assert_eq!(p.file_len(), bytes.len() as u64);
    for (io, decl) in p.inputs().zip(&b.inputs).chain(p.outputs().zip(&b.outputs)) {
        assert_eq!(io.name(), decl.name);
        assert_eq!(io.dtype(), decl.dtype);
        assert_eq!(io.tensor_index(), decl.tensor);
        assert_eq!(io.nan_policy(), decl.nan_policy);
        assert_eq!(io.shape().dims(), &[1, 4]);
        let dims: Vec<Dim<'_>> = io.dims().collect();
        assert_eq!(
            dims,
            [
                Dim::Symbolic {
                    name: "N",
                    value: 1
                },
                Dim::Fixed(4)
            ]
        );
    }
    assert_eq!(p.inputs().len(), 2);
    assert_eq!(p.outputs().len(), 2);
    assert_eq!(p.input(1).unwrap().nan_policy(), NanPolicy::Allow);
    assert!(p.input(2).is_none());

    let plan = p.plan();
    assert_eq!(plan.tensors, &b.tensors[..]);
    assert_eq!(plan.steps.len(), b.steps.len());
    for ((step, want), name) in plan.steps.iter().zip(&b.steps).zip(&b.step_names) {
        assert_eq!(plan.step_name(step), name);
        assert_eq!(
            (step.op, step.inputs, step.output, step.params),
            (want.op, want.inputs, want.output, want.params)
        );
    }
    assert_eq!(plan.weights, &b.weights[..]);
    assert_eq!(
        plan.weights.as_ptr() as usize % 64,
        0,
        "weights are used in place, aligned"
    );
    assert_eq!(p.arena_bytes(), b.arena_bytes as usize);
    assert_eq!(
        p.arena_lower_bound_bytes(),
        b.arena_lower_bound_bytes as usize
    );
    assert_eq!(p.alignment(), 64);
    plan.validate().unwrap();

    assert_eq!(p.tolerance(), b.tolerance);
    assert_eq!(p.test_vectors().len(), b.test_cases.len());
    for (case, want) in p.test_vectors().zip(&b.test_cases) {
        assert_eq!(
            case.inputs().collect::<Vec<_>>(),
            want.inputs.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        assert_eq!(
            case.outputs().collect::<Vec<_>>(),
            want.outputs.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        assert_eq!(case.input(1), Some(&want.inputs[1][..]));
        assert_eq!(case.output(0), Some(&want.outputs[0][..]));
        assert_eq!(case.output(2), None);
    }

    let prov = p.provenance();
    let want = &b.provenance;
    assert_eq!(prov.source_sha256(), &want.source_sha256);
    assert_eq!(prov.source_name(), want.source_name);
    assert_eq!(prov.compiler_version(), want.compiler_version);
    assert_eq!(prov.git_commit(), want.git_commit);
    assert_eq!(prov.created_unix(), want.created_unix);
    assert_eq!(prov.macs(), want.macs);
    assert_eq!(prov.parameters(), want.parameters);

    let meta = p.metadata();
    assert_eq!(meta.family(), b.metadata.family);
    assert_eq!(meta.preprocess(), b.metadata.preprocess);
    let pairs: Vec<(String, String)> = meta.pairs().map(|(k, v)| (k.into(), v.into())).collect();
    assert_eq!(pairs, b.metadata.pairs);
    assert_eq!(meta.get("dataset"), Some("none"));
    assert_eq!(meta.get("missing"), None);

    assert_eq!(p.source_onnx(), b.source_onnx.as_deref());
    let kinds: Vec<SectionKind> = p.sections().map(|s| s.kind).collect();
    assert_eq!(kinds[..6], SectionKind::REQUIRED);
    assert_eq!(kinds[6], SectionKind::Source);
    for s in p.sections() {
        assert_eq!(s.offset % 64, 0);
        let payload = &bytes[s.offset as usize..(s.offset + s.len) as usize];
        assert_eq!(crc32fast::hash(payload), s.crc);
    }
}

#[test]
fn package_without_source_has_none() {
    let mut b = common::builder();
    b.source_onnx = None;
    let bytes = AlignedBytes::from_slice(&b.to_bytes().unwrap());
    let p = Package::parse(&bytes).unwrap();
    assert_eq!(p.source_onnx(), None);
    assert_eq!(p.sections().len(), 6);
}

#[test]
fn aligned_bytes_reads_a_file() {
    let bytes = common::builder().to_bytes().unwrap();
    let path =
        std::env::temp_dir().join(format!("cadence-runtime-test-{}.cpk", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let read = AlignedBytes::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(&read[..], &bytes[..]);
    assert_eq!(read.as_ptr() as usize % 64, 0);
    Package::parse(&read).unwrap();
}

#[test]
fn every_prefix_is_truncated() {
    let bytes = common::package_bytes();
    for n in 0..bytes.len() {
        match Package::parse(&bytes[..n]) {
            Err(PackageError::Truncated { needed, len }) => {
                assert_eq!(len, n);
                assert!(needed > n as u64);
            }
            other => panic!("prefix of {n} bytes: {other:?}"),
        }
    }
    let e = Package::parse(&bytes[..100]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("package is truncated: it has 100 bytes"),
        "{e}"
    );
}

#[test]
fn a_flipped_byte_in_each_section_names_that_section() {
    let clean = common::package_bytes();
    for entry in table(&clean) {
        let kind = SectionKind::from_code(entry.kind);
        for at in [0, entry.len / 2, entry.len - 1] {
            let mut bytes = clean.clone();
            bytes[(entry.offset + at) as usize] ^= 0x10;
            assert_eq!(
                Package::parse(&bytes).unwrap_err(),
                PackageError::Checksum { section: kind },
                "section {kind} byte {at}"
            );
        }
    }
    assert_eq!(
        PackageError::Checksum {
            section: SectionKind::Weights
        }
        .to_string(),
        "checksum mismatch in section `weights`: the file is corrupted"
    );
}

#[test]
fn a_flipped_byte_in_the_header_or_table_is_a_header_checksum() {
    let clean = common::package_bytes();
    let table_end = size_of::<FileHeader>() + table(&clean).len() * size_of::<SectionEntry>();
    // Past magic and version, which are refused by name before the checksum.
    for at in 12..table_end {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x01;
        assert_eq!(
            Package::parse(&bytes).unwrap_err(),
            PackageError::HeaderChecksum,
            "byte {at}"
        );
    }
}

#[test]
fn wrong_magic_is_refused() {
    let mut bytes = common::package_bytes();
    bytes[0] = b'P';
    let e = Package::parse(&bytes).unwrap_err();
    assert_eq!(e, PackageError::BadMagic);
    assert!(e.to_string().contains("not a Cadence package"));
    assert_eq!(
        Package::parse(&AlignedBytes::from_slice(b"PK\x03\x04")).unwrap_err(),
        PackageError::BadMagic
    );
}

#[test]
fn other_versions_are_refused_by_name() {
    let set_version = |major: u16, minor: u16| {
        let mut bytes = common::package_bytes();
        let (h, _) = FileHeader::mut_from_prefix(&mut bytes[..]).unwrap();
        h.version_major = major;
        h.version_minor = minor;
        reseal(&mut bytes);
        Package::parse(&bytes).map(|_| ()).unwrap_err()
    };
    let future = set_version(FORMAT_MAJOR + 1, 0);
    assert_eq!(
        future,
        PackageError::UnsupportedVersion {
            major: FORMAT_MAJOR + 1,
            minor: 0
        }
    );
    assert!(
        future.to_string().contains("newer than this runtime reads"),
        "{future}"
    );
    assert!(future.to_string().contains("update the runtime"));

    let newer_minor = set_version(FORMAT_MAJOR, 7);
    assert!(
        newer_minor.to_string().contains("needs a newer runtime"),
        "{newer_minor}"
    );

    let old = set_version(FORMAT_MAJOR - 1, 3);
    assert!(old.to_string().contains("recompile"), "{old}");
}

#[test]
fn misaligned_buffer_is_refused_not_copied() {
    let bytes = common::package_bytes();
    let mut shifted = AlignedBytes::zeroed(bytes.len() + 64);
    shifted[4..4 + bytes.len()].copy_from_slice(&bytes);
    let e = Package::parse(&shifted[4..4 + bytes.len()]).unwrap_err();
    assert_eq!(e, PackageError::Misaligned { address_mod: 4 });
    assert!(e.to_string().contains("AlignedBytes"));
}

#[test]
fn trailing_bytes_are_refused() {
    let bytes = common::builder().to_bytes().unwrap();
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 3]);
    let e = Package::parse(&AlignedBytes::from_slice(&longer)).unwrap_err();
    assert_eq!(
        e,
        PackageError::TrailingBytes {
            expected: bytes.len() as u64,
            len: bytes.len() + 3
        }
    );
}

fn spec_record(bytes: &mut [u8], index: usize) -> &mut IoRecord {
    let r = section(bytes, SectionKind::Spec);
    let rest = &mut bytes[r.start + size_of::<SpecHeader>()..r.end];
    let (records, _) = <[IoRecord]>::mut_from_prefix_with_elems(rest, 4).unwrap();
    &mut records[index]
}

#[test]
fn a_string_outside_its_table_is_a_record_error() {
    let e = parse_patched(|b| spec_record(b, 1).name.offset = 10_000).unwrap_err();
    assert_eq!(
        e,
        PackageError::BadRecord {
            section: SectionKind::Spec,
            reason: "string lies outside the string table"
        }
    );
    assert!(e.to_string().contains("section `spec` is inconsistent"));
    let e = parse_patched(|b| spec_record(b, 0).dims[0].symbol.len = u32::MAX).unwrap_err();
    assert!(
        matches!(
            e,
            PackageError::BadRecord {
                section: SectionKind::Spec,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn invalid_utf8_is_a_record_error() {
    let e = parse_patched(|b| {
        let r = section(b, SectionKind::Spec);
        b[r.end - 1] = 0xff;
    })
    .unwrap_err();
    assert_eq!(
        e,
        PackageError::BadRecord {
            section: SectionKind::Spec,
            reason: "string is not UTF-8"
        }
    );
}

#[test]
fn a_spec_tensor_out_of_range_is_named() {
    let e = parse_patched(|b| spec_record(b, 3).tensor = 99).unwrap_err();
    assert_eq!(
        e,
        PackageError::SpecTensorOutOfRange {
            io: IoSlot::Output(1),
            tensor: 99,
            tensor_count: 5
        }
    );
    assert!(
        e.to_string().starts_with("output 1 binds to tensor 99"),
        "{e}"
    );
}

#[test]
fn a_spec_that_disagrees_with_its_tensor_is_refused() {
    let e = parse_patched(|b| spec_record(b, 0).dims[1].value = 5).unwrap_err();
    assert_eq!(
        e,
        PackageError::SpecMismatch {
            io: IoSlot::Input(0),
            reason: "shapes differ"
        }
    );
    let e = parse_patched(|b| spec_record(b, 0).tensor = 4).unwrap_err();
    assert_eq!(
        e,
        PackageError::SpecMismatch {
            io: IoSlot::Input(0),
            reason: "the tensor is not in the arena"
        }
    );
    let e = parse_patched(|b| spec_record(b, 0).rank = 9).unwrap_err();
    assert_eq!(
        e,
        PackageError::BadRecord {
            section: SectionKind::Spec,
            reason: "rank above the maximum"
        }
    );
}

#[test]
fn counts_that_disagree_with_the_section_length_are_refused() {
    let e = parse_patched(|b| {
        let r = section(b, SectionKind::Spec);
        let (h, _) = SpecHeader::mut_from_prefix(&mut b[r]).unwrap();
        h.input_count = 1_000_000;
    })
    .unwrap_err();
    assert_eq!(
        e,
        PackageError::BadRecord {
            section: SectionKind::Spec,
            reason: "section is shorter than its counts say"
        }
    );
    let e = parse_patched(|b| {
        let r = section(b, SectionKind::TestVectors);
        let (h, _) = VectorsHeader::mut_from_prefix(&mut b[r]).unwrap();
        h.case_count = 1;
    })
    .unwrap_err();
    assert_eq!(
        e,
        PackageError::BadRecord {
            section: SectionKind::TestVectors,
            reason: "section is longer than its counts say"
        }
    );
    let e = parse_patched(|b| {
        let r = section(b, SectionKind::TestVectors);
        let (h, _) = VectorsHeader::mut_from_prefix(&mut b[r]).unwrap();
        h.rel_tolerance = f32::NAN;
    })
    .unwrap_err();
    assert!(matches!(
        e,
        PackageError::BadRecord {
            section: SectionKind::TestVectors,
            ..
        }
    ));
}

#[test]
fn unknown_enum_codes_are_refused() {
    let e = parse_patched(|b| {
        let r = section(b, SectionKind::Metadata);
        let (h, _) = MetadataHeader::mut_from_prefix(&mut b[r]).unwrap();
        h.family = 42;
    })
    .unwrap_err();
    assert_eq!(
        e,
        PackageError::BadRecord {
            section: SectionKind::Metadata,
            reason: "unknown model family"
        }
    );
    let e = parse_patched(|b| spec_record(b, 0).nan_policy = 3).unwrap_err();
    assert_eq!(
        e,
        PackageError::BadRecord {
            section: SectionKind::Spec,
            reason: "unknown NaN policy"
        }
    );
}

fn sections_of(bytes: &[u8]) -> Vec<(SectionKind, Vec<u8>)> {
    table(bytes)
        .iter()
        .map(|e| {
            (
                SectionKind::from_code(e.kind),
                bytes[e.offset as usize..(e.offset + e.len) as usize].to_vec(),
            )
        })
        .collect()
}

fn reassemble(sections: &[(SectionKind, Vec<u8>)]) -> Result<(), PackageError> {
    let refs: Vec<(SectionKind, &[u8])> = sections.iter().map(|(k, v)| (*k, &v[..])).collect();
    let bytes = AlignedBytes::from_slice(&assemble(&refs).unwrap());
    Package::parse(&bytes).map(|_| ())
}

#[test]
fn unknown_sections_are_skipped_missing_and_duplicate_ones_refused() {
    let mut sections = sections_of(&common::package_bytes());
    sections.insert(
        2,
        (
            SectionKind::Unknown(99),
            b"from a later minor version".to_vec(),
        ),
    );
    reassemble(&sections).unwrap();

    let without: Vec<_> = sections
        .iter()
        .filter(|(k, _)| *k != SectionKind::Provenance)
        .cloned()
        .collect();
    assert_eq!(
        reassemble(&without).unwrap_err(),
        PackageError::MissingSection {
            section: SectionKind::Provenance
        }
    );

    let mut twice = sections.clone();
    twice.push(twice[0].clone());
    assert_eq!(
        reassemble(&twice).unwrap_err(),
        PackageError::DuplicateSection {
            section: SectionKind::Spec
        }
    );
}

#[test]
fn sections_outside_the_file_or_misaligned_are_refused() {
    let mut bytes = common::package_bytes();
    let table_start = size_of::<FileHeader>();
    let (t, _) =
        <[SectionEntry]>::mut_from_prefix_with_elems(&mut bytes[table_start..], 7).unwrap();
    t[2].len = u64::MAX - 10;
    reseal_header_only(&mut bytes);
    assert_eq!(
        Package::parse(&bytes).unwrap_err(),
        PackageError::SectionOutOfBounds {
            section: SectionKind::Weights
        }
    );

    let mut bytes = common::package_bytes();
    let (t, _) =
        <[SectionEntry]>::mut_from_prefix_with_elems(&mut bytes[table_start..], 7).unwrap();
    t[1].offset += 4;
    reseal_header_only(&mut bytes);
    let e = Package::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            e,
            PackageError::MisalignedSection {
                section: SectionKind::Plan,
                ..
            }
        ),
        "{e:?}"
    );
}

fn reseal_header_only(bytes: &mut [u8]) {
    let n = table(bytes).len();
    let end = size_of::<FileHeader>() + n * size_of::<SectionEntry>();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..TABLE_CRC_OFFSET]);
    crc.update(&bytes[size_of::<FileHeader>()..end]);
    let (h, _) = FileHeader::mut_from_prefix(bytes).unwrap();
    h.table_crc = crc.finalize();
}

#[test]
fn the_builder_refuses_what_the_reader_would() {
    let mut b = common::builder();
    b.test_cases[1].outputs[0].pop();
    let e = b.to_bytes().unwrap_err();
    assert_eq!(
        e,
        BuildError::TestVector {
            case: 1,
            io: Some(IoSlot::Output(0)),
            expected: 4,
            got: 3
        }
    );

    let mut b = common::builder();
    b.outputs[0].tensor = 17;
    assert!(matches!(
        b.to_bytes().unwrap_err(),
        BuildError::Invalid(PackageError::SpecTensorOutOfRange {
            io: IoSlot::Output(0),
            tensor: 17,
            ..
        })
    ));

    let mut b = common::builder();
    b.step_names.pop();
    assert_eq!(
        b.to_bytes().unwrap_err(),
        BuildError::StepNames { steps: 2, names: 1 }
    );

    let mut b = common::builder();
    b.inputs[0].dims = vec![DimDecl::Fixed(1); 7];
    assert_eq!(
        b.to_bytes().unwrap_err(),
        BuildError::RankTooHigh {
            io: IoSlot::Input(0),
            rank: 7
        }
    );

    let mut b = common::builder();
    b.steps.push(Op::Copy.to_record(&[0], 1));
    b.step_names.push("/extra".into());
    b.to_bytes()
        .expect("the reader does not validate the plan; Engine::load does");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn damaged_files_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = common::package_bytes();
        for (at, mask) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        let len = if truncate { cut.index(bytes.len()) } else { bytes.len() };
        if let Ok(p) = Package::parse(&bytes[..len]) {
            // Survivors must still be safe to look at end to end.
            let _ = p.plan().validate();
            for io in p.inputs().chain(p.outputs()) {
                let _ = (io.name(), io.shape(), io.dims().count());
            }
            for case in p.test_vectors() {
                let _ = (case.inputs().count(), case.outputs().count());
            }
            let _ = (p.metadata().pairs().count(), p.provenance().git_commit());
        }
        if !flips.is_empty() && truncate && len < bytes.len() {
            prop_assert!(Package::parse(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn garbage_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..512), magic in any::<bool>()) {
        if magic && data.len() >= 8 {
            data[..8].copy_from_slice(b"CADENCE\x1a");
        }
        let bytes = AlignedBytes::from_slice(&data);
        prop_assert!(Package::parse(&bytes).is_err());
    }
}

#[test]
fn tolerance_and_preprocessing_read_as_words() {
    let tolerance = Tolerance {
        abs: 1e-4,
        rel: 1e-3,
    };
    assert_eq!(tolerance.to_string(), "abs 1e-4, rel 1e-3");
    let cases = [
        (Preprocess::None, "none (the caller supplies the tensor)"),
        (
            Preprocess::CameraImagenet {
                height: 320,
                width: 320,
            },
            "camera image 320x320, scaled to [0, 1], ImageNet mean and std",
        ),
        (
            Preprocess::CameraUnit {
                height: 480,
                width: 640,
            },
            "camera image 480x640, scaled to [0, 1]",
        ),
        (
            Preprocess::LidarPillars {
                max_pillars: 12000,
                max_points: 32,
            },
            "lidar pillars: up to 12000 of up to 32 points each",
        ),
    ];
    for (preprocess, words) in cases {
        assert_eq!(preprocess.to_string(), words);
    }
}
