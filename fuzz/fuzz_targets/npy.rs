//! `.npy` tensors: `cadence_host::npy::parse` on arbitrary bytes.
//!
//! Contract: a parse either fails with an `NpyError` or yields a tensor whose bytes
//! are exactly its shape times its dtype (never more than the file held), and which
//! npyz writes back to a file that parses to the same tensor.
#![no_main]

use cadence_hal::DType;
use cadence_host::npy::{self, NpyTensor};
use libfuzzer_sys::fuzz_target;
use npyz::WriterBuilder;

fuzz_target!(|data: &[u8]| {
    let Ok(tensor) = npy::parse(data) else {
        return;
    };
    let volume: usize = tensor.shape.iter().product();
    assert_eq!(tensor.bytes.len(), volume * tensor.dtype.size());
    assert!(tensor.bytes.len() <= data.len());
    let written = match tensor.dtype {
        DType::F32 => write(&tensor, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        DType::U8 => write(&tensor, |b| b[0]),
        DType::I8 => write(&tensor, |b| i8::from_le_bytes([b[0]])),
        DType::I32 => write(&tensor, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        DType::I64 => write(&tensor, |b| {
            i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        }),
    };
    assert_eq!(
        npy::parse(&written).expect("a written tensor parses"),
        tensor
    );
});

/// `tensor` as npyz writes it, elements decoded by `element`.
fn write<T: npyz::AutoSerialize>(tensor: &NpyTensor, element: fn(&[u8]) -> T) -> Vec<u8> {
    let shape: Vec<u64> = tensor.shape.iter().map(|&d| d as u64).collect();
    let mut out = Vec::new();
    let mut writer = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()
        .expect("npyz starts a file");
    writer
        .extend(tensor.bytes.chunks_exact(tensor.dtype.size()).map(element))
        .expect("npyz writes the elements");
    writer.finish().expect("npyz finishes the file");
    out
}
