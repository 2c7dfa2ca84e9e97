//! Float initializers as the pruner needs them: per-channel L1 norms to rank filters,
//! and slicing along one axis to drop channels. Data stays in the field it came in
//! (`raw_data` or `float_data`), so the pruned file looks like the original.

use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::{DataLocation, DataType};

/// Whether the pruner can read and rewrite `tensor`: float32, data inside the file.
pub(super) fn is_editable(tensor: &pb::TensorProto) -> bool {
    tensor.data_type == DataType::Float as i32
        && tensor.data_location != Some(DataLocation::External as i32)
        && !tensor.dims.iter().any(|&d| d < 0)
}

fn dims(tensor: &pb::TensorProto) -> Vec<usize> {
    tensor.dims.iter().map(|&d| d as usize).collect()
}

fn values(tensor: &pb::TensorProto) -> Vec<f32> {
    if tensor.raw_data.is_empty() {
        tensor.float_data.clone()
    } else {
        tensor
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

fn set_values(tensor: &mut pb::TensorProto, data: Vec<f32>) {
    if tensor.raw_data.is_empty() {
        tensor.float_data = data;
    } else {
        tensor.raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    }
}

/// `(outer, extent, inner)` of `shape` around `axis`: element `[o, c, i]` is at
/// `(o * extent + c) * inner + i`.
fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// The L1 norm of each slice of `tensor` along `axis` (a conv's filters when `axis` is
/// its output-channel axis).
pub(super) fn channel_l1(tensor: &pb::TensorProto, axis: usize) -> Vec<f64> {
    let shape = dims(tensor);
    let data = values(tensor);
    let (outer, extent, inner) = split_at_axis(&shape, axis);
    let mut norms = vec![0.0f64; extent];
    for o in 0..outer {
        for (c, norm) in norms.iter_mut().enumerate() {
            let start = (o * extent + c) * inner;
            *norm += data[start..start + inner]
                .iter()
                .map(|v| f64::from(v.abs()))
                .sum::<f64>();
        }
    }
    norms
}

/// Keeps only the slices `keep` (ascending indices) of `tensor` along `axis`.
pub(super) fn retain_along(tensor: &mut pb::TensorProto, axis: usize, keep: &[usize]) {
    let shape = dims(tensor);
    let data = values(tensor);
    let (outer, extent, inner) = split_at_axis(&shape, axis);
    let mut kept = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &c in keep {
            let start = (o * extent + c) * inner;
            kept.extend_from_slice(&data[start..start + inner]);
        }
    }
    tensor.dims[axis] = keep.len() as i64;
    set_values(tensor, kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: &[i64], data: Vec<f32>, raw: bool) -> pb::TensorProto {
        let mut t = pb::TensorProto {
            dims: shape.to_vec(),
            data_type: DataType::Float as i32,
            ..Default::default()
        };
        if raw {
            t.raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        } else {
            t.float_data = data;
        }
        t
    }

    #[test]
    fn l1_norms_per_output_and_input_channel() {
        // [2, 3]: rows are output channels.
        let t = tensor(&[2, 3], vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0], true);
        assert_eq!(channel_l1(&t, 0), vec![6.0, 15.0]);
        assert_eq!(channel_l1(&t, 1), vec![5.0, 7.0, 9.0]);
    }

    #[test]
    fn retain_keeps_the_field_and_the_order() {
        for raw in [false, true] {
            let mut t = tensor(&[2, 3, 2], (0..12).map(|v| v as f32).collect(), raw);
            retain_along(&mut t, 1, &[0, 2]);
            assert_eq!(t.dims, vec![2, 2, 2]);
            assert_eq!(values(&t), vec![0.0, 1.0, 4.0, 5.0, 6.0, 7.0, 10.0, 11.0]);
            assert_eq!(t.raw_data.is_empty(), !raw);
        }
    }
}
