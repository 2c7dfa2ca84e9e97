//! `.cpk` packages: `Package::parse`, then `Engine::load` on the CPU backend, then one
//! frame. Each input is tried as given and again with every checksum recomputed, so
//! the fuzzer reaches the section parsers and the plan validation behind the CRCs.
//!
//! Contract: a parse either fails with a `PackageError` or yields a package whose every
//! accessor is safe to read; such a package either loads or fails with an
//! `EngineError`; a loaded engine refuses an arena one byte short, and its frame either
//! fails with an error or yields outputs of exactly their declared sizes.
#![no_main]

use cadence_hal::cpu::CpuBackend;
use cadence_runtime::engine::{Engine, EngineError};
use cadence_runtime::package::format::{FileHeader, SectionEntry, TABLE_CRC_OFFSET};
use cadence_runtime::package::{AlignedBytes, Package};
use libfuzzer_sys::fuzz_target;
use zerocopy::{FromBytes, IntoBytes};

/// Largest arena a fuzzed package may ask for: enough for the seed packages, small
/// enough that a damaged plan cannot make one frame run for seconds.
const MAX_ARENA_BYTES: usize = 4 << 20;

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(resealed) = reseal(data) {
        check(&resealed);
    }
});

fn check(data: &[u8]) {
    let file = AlignedBytes::from_slice(data);
    let Ok(package) = Package::parse(file.as_slice()) else {
        return;
    };
    let _ = (
        package.format_version(),
        package.file_len(),
        package.sections().count(),
    );
    for io in package.inputs().chain(package.outputs()) {
        let _ = (
            io.name(),
            io.dtype(),
            io.shape(),
            io.dims().count(),
            io.nan_policy(),
        );
    }
    for case in package.test_vectors() {
        let _ = (case.inputs().count(), case.outputs().count());
    }
    let _ = (
        package.metadata().pairs().count(),
        package.provenance().git_commit(),
    );

    let arena_bytes = package.arena_bytes();
    if arena_bytes > MAX_ARENA_BYTES {
        return;
    }
    let mut arena = AlignedBytes::zeroed(arena_bytes);
    let Ok(mut engine) = Engine::load(&package, CpuBackend, arena.as_mut_slice()) else {
        return;
    };
    if engine.run().is_ok() {
        for (index, io) in package.outputs().enumerate() {
            let output = engine
                .output_at(index)
                .expect("a frame that ran has its outputs");
            assert_eq!(output.len(), io.shape().volume(), "output `{}`", io.name());
        }
    }
    if arena_bytes > 0 {
        let short = &mut arena.as_mut_slice()[..arena_bytes - 1];
        let refused = Engine::load(&package, CpuBackend, short);
        assert!(
            matches!(refused, Err(EngineError::ArenaTooSmall { .. })),
            "an arena one byte short is refused: {refused:?}"
        );
    }
}

/// `data` with every section CRC and the table CRC recomputed, when its header and
/// section table are whole.
fn reseal(data: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = data.to_vec();
    let (header, rest) = FileHeader::ref_from_prefix(&bytes).ok()?;
    let (table, _) =
        <[SectionEntry]>::ref_from_prefix_with_elems(rest, header.section_count as usize).ok()?;
    let mut table = table.to_vec();
    for entry in &mut table {
        let start = usize::try_from(entry.offset).ok()?;
        let end = start.checked_add(usize::try_from(entry.len).ok()?)?;
        if let Some(payload) = bytes.get(start..end) {
            entry.crc = crc32fast::hash(payload);
        }
    }
    let table_start = size_of::<FileHeader>();
    let table_bytes = table.as_bytes();
    bytes[table_start..table_start + table_bytes.len()].copy_from_slice(table_bytes);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..TABLE_CRC_OFFSET]);
    crc.update(table_bytes);
    let (header, _) = FileHeader::mut_from_prefix(&mut bytes).ok()?;
    header.table_crc = crc.finalize();
    (bytes != data).then_some(bytes)
}
