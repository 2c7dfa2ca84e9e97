//! `.npy` reading: what numpy writes is read back exactly; every other file is refused
//! with its own error, and a header is never trusted for more data than the file holds.

use cadence_hal::DType;
use cadence_host::npy::{self, NpyError, ReadNpyError};
use npyz::WriterBuilder;

/// A file as numpy writes it, with `descr` as its Python literal (`"'<f4'"`, ...).
fn file(descr: &str, fortran_order: bool, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let order = if fortran_order { "True" } else { "False" };
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let trailing_comma = if shape.len() == 1 { "," } else { "" };
    let mut header = format!(
        "{{'descr': {descr}, 'fortran_order': {order}, 'shape': ({}{trailing_comma}), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn what_npyz_writes_is_read_back() {
    let values = [1.5f32, -2.0, 0.25, 8.0, 3.0, -0.5];
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[2, 3])
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    writer.extend(values.iter().copied()).unwrap();
    writer.finish().unwrap();

    let tensor = npy::parse(&bytes).unwrap();
    assert_eq!(tensor.shape, [2, 3]);
    assert_eq!(tensor.dtype, DType::F32);
    assert_eq!(tensor.to_f32().unwrap(), values);
}

#[test]
fn every_supported_dtype_is_read_and_big_endian_is_swapped() {
    let cases: [(&str, DType, Vec<u8>, Vec<u8>); 6] = [
        ("'|u1'", DType::U8, vec![1, 255], vec![1, 255]),
        ("'|i1'", DType::I8, vec![1, 0x80], vec![1, 0x80]),
        (
            "'<i4'",
            DType::I32,
            vec![1, 0, 0, 0, 2, 0, 0, 0],
            vec![1, 0, 0, 0, 2, 0, 0, 0],
        ),
        (
            "'>i4'",
            DType::I32,
            vec![0, 0, 0, 1, 0, 0, 0, 2],
            vec![1, 0, 0, 0, 2, 0, 0, 0],
        ),
        (
            "'<i8'",
            DType::I64,
            7i64.to_le_bytes().repeat(2),
            7i64.to_le_bytes().repeat(2),
        ),
        (
            "'>f4'",
            DType::F32,
            2.5f32.to_be_bytes().repeat(2),
            2.5f32.to_le_bytes().repeat(2),
        ),
    ];
    for (descr, dtype, stored, expected) in cases {
        let tensor = npy::parse(&file(descr, false, &[2], &stored)).unwrap();
        assert_eq!(
            (tensor.dtype, &tensor.shape[..]),
            (dtype, &[2][..]),
            "{descr}"
        );
        assert_eq!(tensor.bytes, expected, "{descr}");
    }
    assert!(npy::parse(&file("'<u1'", false, &[2], &[1, 2])).is_ok());
}

#[test]
fn a_scalar_and_an_empty_array_are_tensors() {
    let scalar = npy::parse(&file("'<f4'", false, &[], &1.0f32.to_le_bytes())).unwrap();
    assert_eq!((scalar.shape.len(), scalar.bytes.len()), (0, 4));
    let empty = npy::parse(&file("'<f4'", false, &[0, 4], &[])).unwrap();
    assert_eq!((empty.shape, empty.bytes.len()), (vec![0, 4], 0));
}

#[test]
fn unusable_layouts_and_dtypes_are_refused_by_name() {
    let err = npy::parse(&file("'<f4'", true, &[1], &[0; 4])).unwrap_err();
    assert!(matches!(err, NpyError::FortranOrder), "{err:?}");
    let err = npy::parse(&file("'<f8'", false, &[1], &[0; 8])).unwrap_err();
    assert!(
        matches!(err, NpyError::UnsupportedDType { size: 8, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("use float32"), "{err}");
    let structured = file("[('a', '<f4')]", false, &[1], &[0; 4]);
    let err = npy::parse(&structured).unwrap_err();
    assert!(matches!(err, NpyError::Structured), "{err:?}");
}

#[test]
fn data_shorter_or_longer_than_the_shape_is_refused_with_both_lengths() {
    let err = npy::parse(&file("'<f4'", false, &[2, 2], &[0; 15])).unwrap_err();
    assert!(
        matches!(
            err,
            NpyError::DataLength {
                expected: 16,
                got: 15,
                ..
            }
        ),
        "{err:?}"
    );
    let err = npy::parse(&file("'<f4'", false, &[2, 2], &[0; 17])).unwrap_err();
    assert!(
        matches!(
            err,
            NpyError::DataLength {
                expected: 16,
                got: 17,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_shape_claiming_more_than_the_file_holds_allocates_nothing() {
    let huge = 1u64 << 40;
    let err = npy::parse(&file("'<f4'", false, &[huge, 1024], &[0; 8])).unwrap_err();
    assert!(
        matches!(err, NpyError::DataLength { got: 8, .. }),
        "{err:?}"
    );
}

/// Found by the `npy` fuzz target: a version-3 preamble whose header length says 3.7 GB,
/// which npyz allocates before reading.
#[test]
fn a_header_length_past_the_end_of_the_file_is_refused_before_allocating() {
    let fuzzed = b"\x93NUMPY\x03\x00\x20\x20\xe0\xdf\xdf\xdf\xdf\xdf\xdf\xda\x20\x0a\x0a\x62\xf5\x4b\x42\x1f";
    let err = npy::parse(fuzzed).unwrap_err();
    assert!(
        matches!(
            err,
            NpyError::HeaderLength {
                claimed: 0xdfe0_2020,
                available: 14
            }
        ),
        "{err:?}"
    );
    let whole = file("'<f4'", false, &[1], &[0; 4]);
    assert!(matches!(
        npy::parse(&whole[..20]).unwrap_err(),
        NpyError::HeaderLength { available: 10, .. }
    ));
}

/// Found by the `npy` fuzz target: npyz multiplies the dims unchecked (for the element
/// count, and for the strides in the other order), so a zero dim does not save a
/// shape whose other dims overflow.
#[test]
fn a_shape_whose_dims_multiply_past_u64_is_refused() {
    for shape in [
        [1u64 << 40, 1 << 40, 1],
        [0, 1 << 40, 1 << 40],
        [1 << 63, 4, 0],
    ] {
        let err = npy::parse(&file("'<f4'", false, &shape, &[])).unwrap_err();
        assert!(
            matches!(&err, NpyError::ShapeOverflow { shape: s } if s[..] == shape),
            "{shape:?}: {err:?}"
        );
    }
    let err = npy::parse(&file("'<f4'", false, &[u64::MAX, 1], &[])).unwrap_err();
    assert!(
        matches!(err, NpyError::ShapeOverflow { .. }),
        "the byte count overflows: {err:?}"
    );
}

#[test]
fn a_shape_that_is_not_decimal_integers_is_refused() {
    let mut bytes = file("'<f4'", false, &[4], &[0; 16]);
    let at = bytes.windows(4).position(|w| w == b"(4,)").unwrap();
    bytes[at..at + 4].copy_from_slice(b"(x,)");
    let err = npy::parse(&bytes).unwrap_err();
    assert!(matches!(err, NpyError::ShapeSyntax { .. }), "{err:?}");
}

/// Found by the `npy` fuzz target: a 118-byte header of nested braces that npyz's
/// literal parser took over 10 s on.
#[test]
fn a_deeply_nested_header_is_refused_before_parsing() {
    let fuzzed = b"\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00\x7b\x27\x64\x65\x63\x63\
        \x72\x27\x3a\x20\x27\x7c\x75\x31\x27\x2c\x20\x27\x20\x20\x20\x20\
        \x20\x20\x0b\x20\x61\x63\x70\x65\x27\x3a\x20\x28\x34\x2c\x20\x20\
        \x20\x20\x20\x20\x20\x20\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\
        \x30\x65\x30\x30\x30\x30\x2b\x34\x2c\x7b\x7b\x7b\x7b\x7b\x7b\x7b\
        \x7b\x7b\x7b\x7b\x7b\x27\x64\x65\x64\x65\x63\x63\x72\x27\x3a\x20\
        \x27\x7c\x75\x31\x27\x2c\x20\x27\x66\x6f\x3a\x33\x29\x2c\x20\x7d\
        \x20\x20\x20\x20\x20\x3f\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\
        \x20\x20\x20\x0b\x20\x61\x70\x65\x27\x3a\x20\x28\x30\x30\x3a\x33\
        \x38\x33\x32\x00\x36\x31\x30\x38\x36\x6f\x72\x64\x65\x72\x33\x27";
    let err = npy::parse(fuzzed).unwrap_err();
    assert!(
        matches!(err, NpyError::HeaderNesting { depth } if depth > npy::MAX_HEADER_NESTING),
        "{err:?}"
    );
    let structured = file("[('a', '<f4')]", false, &[1], &[0; 4]);
    assert!(
        matches!(npy::parse(&structured).unwrap_err(), NpyError::Structured),
        "the deepest header a writer makes for a structured array still gets its own error"
    );
}

#[test]
fn a_header_longer_than_numpy_reads_is_refused() {
    let padded = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': (1,), {}}}",
        " ".repeat(npy::MAX_HEADER_LEN)
    );
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&u16::try_from(padded.len()).unwrap().to_le_bytes());
    bytes.extend_from_slice(padded.as_bytes());
    bytes.extend_from_slice(&[0; 4]);
    let err = npy::parse(&bytes).unwrap_err();
    assert!(
        matches!(err, NpyError::HeaderTooLong { len } if len == padded.len()),
        "{err:?}"
    );
}

#[test]
fn a_cut_or_foreign_header_is_a_header_error() {
    let whole = file("'<f4'", false, &[1], &[0; 4]);
    for len in [0, 5, 9] {
        let err = npy::parse(&whole[..len]).unwrap_err();
        assert!(matches!(err, NpyError::Header(_)), "{len}: {err:?}");
    }
    let err = npy::parse(b"PK\x03\x04 this is a zip, not an array").unwrap_err();
    assert!(matches!(err, NpyError::Header(_)), "{err:?}");
}

#[test]
fn a_missing_file_and_a_bad_file_are_named() {
    let err = npy::read("no/such/input.npy".as_ref()).unwrap_err();
    assert!(matches!(err, ReadNpyError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no/such/input.npy"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.npy");
    std::fs::write(&path, file("'<f4'", false, &[3], &[0; 4])).unwrap();
    let err = npy::read(&path).unwrap_err();
    assert!(
        matches!(
            err,
            ReadNpyError::Format {
                reason: NpyError::DataLength { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("short.npy"), "{err}");
}
