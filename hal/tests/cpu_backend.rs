//! End to end through the `Accelerator` trait: a plan built by hand, validated, run by
//! the CPU backend over an aligned arena, checked against plain loops.

use cadence_hal::cpu::CpuBackend;
use cadence_hal::op::Window;
use cadence_hal::plan::TENSOR_ALIGN;
use cadence_hal::{
    Accelerator, Activation, DType, Op, Plan, Shape, StepRecord, Storage, TensorRecord,
};
use zerocopy::{FromBytes, IntoBytes};

const ARENA: usize = 8192;

#[repr(align(64))]
struct Arena([u8; ARENA]);

#[repr(align(64))]
struct Weights([f32; 256]);

/// Bump allocation at [`TENSOR_ALIGN`] boundaries.
struct Layout {
    next: usize,
}

impl Layout {
    fn take(&mut self, bytes: usize) -> u32 {
        let at = self.next;
        self.next = (at + bytes).next_multiple_of(TENSOR_ALIGN);
        at as u32
    }
}

fn shape(dims: &[usize]) -> Shape {
    Shape::new(dims).unwrap()
}

fn values(n: usize, scale: f32, shift: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7 + shift) % 13) as f32 - 6.0) * scale)
        .collect()
}

#[test]
fn conv_pool_matmul_chain_and_concat() {
    let (x_s, w_s, b_s) = (shape(&[1, 2, 6, 6]), shape(&[4, 2, 3, 3]), shape(&[4]));
    let (conv_s, pool_s) = (shape(&[1, 4, 6, 6]), shape(&[1, 4, 3, 3]));
    let (mw_s, mm_s, cat_s) = (shape(&[3, 5]), shape(&[1, 4, 3, 5]), shape(&[1, 6, 6, 6]));

    // Weights section: conv weights, conv bias, matmul weights.
    let mut weights = Weights([0.0; 256]);
    let (cw, cb, mw) = (values(72, 0.1, 1), values(4, 0.2, 2), values(15, 0.3, 3));
    let mut wl = Layout { next: 0 };
    let (cw_off, cb_off, mw_off) = (wl.take(72 * 4), wl.take(4 * 4), wl.take(15 * 4));
    for (off, vals) in [(cw_off, &cw), (cb_off, &cb), (mw_off, &mw)] {
        weights.0[off as usize / 4..][..vals.len()].copy_from_slice(vals);
    }

    let conv = Op::Conv2d {
        groups: 1,
        window: Window {
            kernel: [0, 0],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [1, 1, 1, 1],
        },
        activation: Activation::Relu,
    };
    let pool = Op::MaxPool2d(Window {
        kernel: [2, 2],
        stride: [2, 2],
        dilation: [1, 1],
        pads: [0; 4],
    });
    let matmul = Op::MatMul {
        activation: Activation::Identity,
    };

    let mut al = Layout { next: 0 };
    let x_off = al.take(x_s.volume() * 4);
    let conv_off = al.take(conv_s.volume() * 4);
    let scratch_bytes = conv.scratch_bytes(&[x_s, w_s, b_s], &conv_s);
    let scratch_off = al.take(scratch_bytes);
    let pool_off = al.take(pool_s.volume() * 4);
    let mm_off = al.take(mm_s.volume() * 4);
    let cat_off = al.take(cat_s.volume() * 4);
    assert!(al.next <= ARENA);

    let arena_t = |off, s: &Shape| TensorRecord::new(Storage::Arena, DType::F32, off, s);
    let weight_t = |off, s: &Shape| TensorRecord::new(Storage::Weights, DType::F32, off, s);
    let tensors = [
        arena_t(x_off, &x_s),       // 0
        weight_t(cw_off, &w_s),     // 1
        weight_t(cb_off, &b_s),     // 2
        arena_t(conv_off, &conv_s), // 3
        arena_t(pool_off, &pool_s), // 4
        weight_t(mw_off, &mw_s),    // 5
        arena_t(mm_off, &mm_s),     // 6
        arena_t(cat_off, &cat_s),   // 7
    ];
    let mut conv_step = conv.to_record(&[0, 1, 2], 3);
    conv_step.scratch_offset = scratch_off;
    conv_step.scratch_bytes = scratch_bytes as u32;
    let steps: [StepRecord; 5] = [
        conv_step,
        pool.to_record(&[3], 4),
        matmul.to_record(&[4, 5], 6),
        Op::CopyInto { axis: 1, offset: 0 }.to_record(&[0], 7),
        Op::CopyInto { axis: 1, offset: 2 }.to_record(&[3], 7),
    ];
    let plan = Plan {
        tensors: &tensors,
        steps: &steps,
        names: &[],
        weights: weights.0.as_bytes(),
        arena_bytes: al.next,
    };
    plan.validate().expect("hand-built plan validates");

    let x = values(72, 0.25, 5);
    let mut arena = Arena([0; ARENA]);
    <[f32]>::mut_from_bytes(&mut arena.0[x_off as usize..][..72 * 4])
        .unwrap()
        .copy_from_slice(&x);
    let mut backend = CpuBackend;
    backend.prepare(&plan).unwrap();
    backend.run(&plan, &mut arena.0).unwrap();
    let read = |off: u32, n: usize| {
        <[f32]>::ref_from_bytes(&arena.0[off as usize..][..n * 4])
            .unwrap()
            .to_vec()
    };

    // Conv 3x3, pad 1, + bias, ReLU.
    let mut want_conv = vec![0.0f32; 144];
    for m in 0..4 {
        for oy in 0..6 {
            for ox in 0..6 {
                let mut s = cb[m];
                for c in 0..2 {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = (oy + ky, ox + kx);
                            if (1..7).contains(&iy) && (1..7).contains(&ix) {
                                s += x[(c * 6 + iy - 1) * 6 + ix - 1]
                                    * cw[((m * 2 + c) * 3 + ky) * 3 + kx];
                            }
                        }
                    }
                }
                want_conv[(m * 6 + oy) * 6 + ox] = s.max(0.0);
            }
        }
    }
    let close = |got: &[f32], want: &[f32]| {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "got {g}, want {w}");
        }
    };
    close(&read(conv_off, 144), &want_conv);

    let mut want_pool = vec![0.0f32; 36];
    for m in 0..4 {
        for oy in 0..3 {
            for ox in 0..3 {
                let at = |dy: usize, dx: usize| want_conv[(m * 6 + 2 * oy + dy) * 6 + 2 * ox + dx];
                want_pool[(m * 3 + oy) * 3 + ox] =
                    at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
            }
        }
    }
    close(&read(pool_off, 36), &want_pool);

    let mut want_mm = vec![0.0f32; 60];
    for row in 0..12 {
        for j in 0..5 {
            want_mm[row * 5 + j] = (0..3).map(|k| want_pool[row * 3 + k] * mw[k * 5 + j]).sum();
        }
    }
    close(&read(mm_off, 60), &want_mm);

    let mut want_cat = x.clone();
    want_cat.extend(&want_conv);
    close(&read(cat_off, 216), &want_cat);
}
