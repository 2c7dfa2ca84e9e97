// Cadence's plan kernels for the CUDA backend: one kernel per `Op`, each the CPU
// backend's semantics (hal/src/cpu/kernels) computed one output element per thread.
//
// Compiled at load by NVRTC with `--fmad=false`, so no multiply-add is contracted and
// coordinate arithmetic (resize, pooling) rounds exactly as the Rust kernels do;
// `cadence_exp` is the CPU backend's polynomial, so softmax and sigmoid match too.
// Sums run in a different order than the CPU's vectorised loops: results agree within
// the package's tolerance, not bit for bit.
//
// Every kernel takes the same three arguments: the device arena, the device copy of
// the weights section, and the step's `StepArgs` by value (see hal/src/cuda/launch.rs,
// whose `#[repr(C)]` twin the generated prelude checks by size). The prelude defines
// CADENCE_MAX_RANK, CADENCE_MAX_INPUTS, CADENCE_PARAM_WORDS, CADENCE_STEP_ARGS_BYTES,
// the slot codes CADENCE_SLOT_ARENA / _WEIGHTS / _ABSENT, CADENCE_INF, and the op
// table's names (hal/src/cuda/source.rs `op_defines`): where each op's fields start
// in the parameter words (CADENCE_CONV2D_GROUPS, CADENCE_CONV2D_WINDOW_STRIDE, ...)
// and the codes of activations and operators (CADENCE_ACTIVATION_RELU, ...). No
// parameter word or code is written here as a bare number.

typedef unsigned int u32;
typedef unsigned long long u64;

struct StepArgs {
    u32 total;
    u32 out_offset;
    u32 in_offset[CADENCE_MAX_INPUTS];
    u32 in_space[CADENCE_MAX_INPUTS];
    u32 in_rank[CADENCE_MAX_INPUTS];
    u32 in_dims[CADENCE_MAX_INPUTS][CADENCE_MAX_RANK];
    u32 out_rank;
    u32 out_dims[CADENCE_MAX_RANK];
    u32 params[CADENCE_PARAM_WORDS];
};

static_assert(sizeof(StepArgs) == CADENCE_STEP_ARGS_BYTES,
              "StepArgs differs from its Rust twin in hal/src/cuda/launch.rs");

#define FOR_EACH_ITEM(i)                                                          \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)a.total; \
         i += (u64)gridDim.x * blockDim.x)

#define KERNEL(name) \
    extern "C" __global__ void name(float* arena, const float* weights, const StepArgs a)

__device__ __forceinline__ const float* input(const StepArgs& a, int slot, const float* arena,
                                              const float* weights) {
    return (a.in_space[slot] == CADENCE_SLOT_WEIGHTS ? weights : arena) + a.in_offset[slot];
}

__device__ __forceinline__ bool present(const StepArgs& a, int slot) {
    return a.in_space[slot] != CADENCE_SLOT_ABSENT;
}

__device__ __forceinline__ float word_f32(u32 w) { return __uint_as_float(w); }

// `floor` exact for |x| < 2^31, as `op::floor`.
__device__ __forceinline__ float cadence_floor(float x) {
    float t = (float)(int)x;
    return t > x ? t - 1.0f : t;
}

// `op::exp`: range reduction to 2^k e^r and a degree-6 polynomial.
__device__ __forceinline__ float cadence_exp(float x) {
    const float LN2_HI = 0.693145751953125f;
    const float LN2_LO = 1.428606765330187e-06f;
    const float LOG2_E = 1.44269502162933349609375f;
    x = fminf(fmaxf(x, -87.3f), 88.7f);
    float k = cadence_floor(x * LOG2_E + 0.5f);
    float r = x - k * LN2_HI - k * LN2_LO;
    float p = 1.0f +
              r * (1.0f +
                   r * (0.5f +
                        r * (1.0f / 6.0f +
                             r * (1.0f / 24.0f + r * (1.0f / 120.0f + r * (1.0f / 720.0f))))));
    return p * __uint_as_float((u32)((int)k + 127) << 23);
}

__device__ __forceinline__ float cadence_sigmoid(float x) { return 1.0f / (1.0f + cadence_exp(-x)); }

__device__ __forceinline__ float clamp01(float x) { return fminf(fmaxf(x, 0.0f), 1.0f); }

// `Activation::apply`, decoded from its parameter words (kind, then two parameters).
__device__ __forceinline__ float activate(float x, const u32* w) {
    float p0 = word_f32(w[CADENCE_ACTIVATION_PARAMS]), p1 = word_f32(w[CADENCE_ACTIVATION_PARAMS + 1]);
    switch (w[CADENCE_ACTIVATION_KIND]) {
        case CADENCE_ACTIVATION_RELU: return fmaxf(x, 0.0f);
        case CADENCE_ACTIVATION_CLIP: return fminf(fmaxf(x, p0), p1);
        case CADENCE_ACTIVATION_SIGMOID: return cadence_sigmoid(x);
        case CADENCE_ACTIVATION_HARD_SIGMOID: return clamp01(p0 * x + p1);
        case CADENCE_ACTIVATION_HARD_SWISH: return x * clamp01(x / 6.0f + 0.5f);
        case CADENCE_ACTIVATION_LEAKY_RELU: return x >= 0.0f ? x : p0 * x;
        case CADENCE_ACTIVATION_TANH: return 2.0f * cadence_sigmoid(2.0f * x) - 1.0f;
        default: return x;
    }
}

__device__ __forceinline__ u32 in_dim(const StepArgs& a, int slot, int axis) {
    return a.in_dims[slot][axis];
}

// Splits flat index `i` of a tensor with `rank` dims into coordinates.
__device__ __forceinline__ void unflatten(u64 i, const u32* dims, u32 rank, u32* coord) {
    for (int d = (int)rank - 1; d >= 0; --d) {
        coord[d] = (u32)(i % dims[d]);
        i /= dims[d];
    }
}

__device__ __forceinline__ u64 flatten(const u32* coord, const u32* dims, u32 rank) {
    u64 i = 0;
    for (u32 d = 0; d < rank; ++d) i = i * dims[d] + coord[d];
    return i;
}

// Conv2d: window, groups and fused activation.
KERNEL(cadence_conv2d) {
    const float* x = input(a, 0, arena, weights);
    const float* w = input(a, 1, arena, weights);
    const float* bias = present(a, 2) ? input(a, 2, arena, weights) : nullptr;
    const u32 C = in_dim(a, 0, 1), H = in_dim(a, 0, 2), W = in_dim(a, 0, 3);
    const u32 M = in_dim(a, 1, 0), CG = in_dim(a, 1, 1), KH = in_dim(a, 1, 2), KW = in_dim(a, 1, 3);
    const u32 OH = a.out_dims[2], OW = a.out_dims[3];
    const u32* win = a.params + CADENCE_CONV2D_WINDOW;
    const u32 sy = win[CADENCE_WINDOW_STRIDE], sx = win[CADENCE_WINDOW_STRIDE + 1];
    const u32 dy = win[CADENCE_WINDOW_DILATION], dx = win[CADENCE_WINDOW_DILATION + 1];
    const int pt = (int)win[CADENCE_WINDOW_PADS], pl = (int)win[CADENCE_WINDOW_PADS + 1];
    const u32 mpg = M / a.params[CADENCE_CONV2D_GROUPS];
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        const u32 ox = (u32)(i % OW), oy = (u32)(i / OW % OH), m = (u32)(i / ((u64)OW * OH) % M);
        const u32 n = (u32)(i / ((u64)OW * OH * M));
        const u32 c0 = m / mpg * CG;
        float acc = bias ? bias[m] : 0.0f;
        for (u32 c = 0; c < CG; ++c) {
            const float* plane = x + ((u64)n * C + c0 + c) * H * W;
            const float* taps = w + ((u64)m * CG + c) * KH * KW;
            for (u32 ky = 0; ky < KH; ++ky) {
                const int iy = (int)(oy * sy + ky * dy) - pt;
                if (iy < 0 || iy >= (int)H) continue;
                for (u32 kx = 0; kx < KW; ++kx) {
                    const int ix = (int)(ox * sx + kx * dx) - pl;
                    if (ix < 0 || ix >= (int)W) continue;
                    acc += plane[(u64)iy * W + ix] * taps[ky * KW + kx];
                }
            }
        }
        y[i] = activate(acc, a.params + CADENCE_CONV2D_ACTIVATION);
    }
}

// ConvTranspose2d: as Conv2d, plus output padding (already in the output shape). Gathers each output from the inputs whose scatter would reach it.
KERNEL(cadence_conv_transpose2d) {
    const float* x = input(a, 0, arena, weights);
    const float* w = input(a, 1, arena, weights);
    const float* bias = present(a, 2) ? input(a, 2, arena, weights) : nullptr;
    const u32 C = in_dim(a, 0, 1), H = in_dim(a, 0, 2), W = in_dim(a, 0, 3);
    const u32 MG = in_dim(a, 1, 1), KH = in_dim(a, 1, 2), KW = in_dim(a, 1, 3);
    const u32 M = a.out_dims[1], OH = a.out_dims[2], OW = a.out_dims[3];
    const u32* win = a.params + CADENCE_CONV_TRANSPOSE2D_WINDOW;
    const int sy = (int)win[CADENCE_WINDOW_STRIDE], sx = (int)win[CADENCE_WINDOW_STRIDE + 1];
    const int dy = (int)win[CADENCE_WINDOW_DILATION], dx = (int)win[CADENCE_WINDOW_DILATION + 1];
    const int pt = (int)win[CADENCE_WINDOW_PADS], pl = (int)win[CADENCE_WINDOW_PADS + 1];
    const u32 CG = C / a.params[CADENCE_CONV_TRANSPOSE2D_GROUPS];
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        const u32 ox = (u32)(i % OW), oy = (u32)(i / OW % OH), m = (u32)(i / ((u64)OW * OH) % M);
        const u32 n = (u32)(i / ((u64)OW * OH * M));
        const u32 g = m / MG, mm = m % MG;
        float acc = bias ? bias[m] : 0.0f;
        for (u32 c = g * CG; c < (g + 1) * CG; ++c) {
            const float* plane = x + ((u64)n * C + c) * H * W;
            const float* taps = w + ((u64)c * MG + mm) * KH * KW;
            for (int ky = 0; ky < (int)KH; ++ky) {
                const int ty = (int)oy + pt - ky * dy;
                if (ty < 0 || ty % sy != 0 || ty / sy >= (int)H) continue;
                for (int kx = 0; kx < (int)KW; ++kx) {
                    const int tx = (int)ox + pl - kx * dx;
                    if (tx < 0 || tx % sx != 0 || tx / sx >= (int)W) continue;
                    acc += plane[(u64)(ty / sy) * W + tx / sx] * taps[ky * KW + kx];
                }
            }
        }
        y[i] = activate(acc, a.params + CADENCE_CONV_TRANSPOSE2D_ACTIVATION);
    }
}

// MatMul: a [..., M, K] times b [K, N] (shared) or [..., K, N]; bias [N]; fused
// activation.
KERNEL(cadence_matmul) {
    const float* A = input(a, 0, arena, weights);
    const float* B = input(a, 1, arena, weights);
    const float* bias = present(a, 2) ? input(a, 2, arena, weights) : nullptr;
    const u32 ra = a.in_rank[0];
    const u32 M = in_dim(a, 0, ra - 2), K = in_dim(a, 0, ra - 1);
    const u32 N = a.out_dims[a.out_rank - 1];
    const bool batched_b = a.in_rank[1] > 2;
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        const u32 col = (u32)(i % N), row = (u32)(i / N % M);
        const u64 batch = i / ((u64)N * M);
        const float* arow = A + (batch * M + row) * K;
        const float* bcol = B + (batched_b ? batch * K * N : 0) + col;
        float acc = 0.0f;
        for (u32 k = 0; k < K; ++k) acc += arow[k] * bcol[(u64)k * N];
        if (bias) acc += bias[col];
        y[i] = activate(acc, a.params + CADENCE_MATMUL_ACTIVATION);
    }
}

KERNEL(cadence_activation) {
    const float* x = input(a, 0, arena, weights);
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) { y[i] = activate(x[i], a.params + CADENCE_ACTIVATION_ACTIVATION); }
}

// Index into an operand broadcast to the output: NumPy rules, dims aligned at the end.
__device__ __forceinline__ u64 broadcast_index(const StepArgs& a, int slot, const u32* coord) {
    const u32 rank = a.in_rank[slot];
    const u32 lead = a.out_rank - rank;
    u64 i = 0;
    for (u32 d = 0; d < rank; ++d) {
        const u32 dim = a.in_dims[slot][d];
        i = i * dim + (dim == 1 ? 0 : coord[lead + d]);
    }
    return i;
}

// Binary: the operator is a `BinaryKind`.
KERNEL(cadence_binary) {
    const float* p = input(a, 0, arena, weights);
    const float* q = input(a, 1, arena, weights);
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        u32 coord[CADENCE_MAX_RANK];
        unflatten(i, a.out_dims, a.out_rank, coord);
        const float u = p[broadcast_index(a, 0, coord)], v = q[broadcast_index(a, 1, coord)];
        float r;
        switch (a.params[CADENCE_BINARY_KIND]) {
            case CADENCE_BINARY_ADD: r = u + v; break;
            case CADENCE_BINARY_SUB: r = u - v; break;
            case CADENCE_BINARY_MUL: r = u * v; break;
            case CADENCE_BINARY_DIV: r = u / v; break;
            case CADENCE_BINARY_MAX: r = fmaxf(u, v); break;
            default: r = fminf(u, v); break;
        }
        y[i] = r;
    }
}

// Max and average pooling share the window walk (both store the window first); `avg`
// selects the latter, whose count_include_pad divides by the kernel area, else by the
// taps inside.
static_assert(CADENCE_MAX_POOL2D_WINDOW == CADENCE_AVG_POOL2D_WINDOW,
              "max and average pooling read their window from the same words");
__device__ __forceinline__ void pool(const StepArgs& a, float* arena, const float* weights, bool avg) {
    const float* x = input(a, 0, arena, weights);
    const u32 H = in_dim(a, 0, 2), W = in_dim(a, 0, 3);
    const u32 OH = a.out_dims[2], OW = a.out_dims[3];
    const u32* win = a.params + CADENCE_MAX_POOL2D_WINDOW;
    const u32 KH = win[CADENCE_WINDOW_KERNEL], KW = win[CADENCE_WINDOW_KERNEL + 1];
    const u32 sy = win[CADENCE_WINDOW_STRIDE], sx = win[CADENCE_WINDOW_STRIDE + 1];
    const u32 dy = win[CADENCE_WINDOW_DILATION], dx = win[CADENCE_WINDOW_DILATION + 1];
    const int pt = (int)win[CADENCE_WINDOW_PADS], pl = (int)win[CADENCE_WINDOW_PADS + 1];
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        const u32 ox = (u32)(i % OW), oy = (u32)(i / OW % OH);
        const float* plane = x + i / ((u64)OW * OH) * H * W;
        float max = -CADENCE_INF, sum = 0.0f;
        u32 inside = 0;
        for (u32 ky = 0; ky < KH; ++ky) {
            const int iy = (int)(oy * sy + ky * dy) - pt;
            if (iy < 0 || iy >= (int)H) continue;
            for (u32 kx = 0; kx < KW; ++kx) {
                const int ix = (int)(ox * sx + kx * dx) - pl;
                if (ix < 0 || ix >= (int)W) continue;
                const float v = plane[(u64)iy * W + ix];
                max = fmaxf(max, v);
                sum += v;
                ++inside;
            }
        }
        y[i] = !avg ? max : sum / (float)(a.params[CADENCE_AVG_POOL2D_COUNT_INCLUDE_PAD] ? KH * KW : inside);
    }
}

KERNEL(cadence_max_pool2d) { pool(a, arena, weights, false); }

KERNEL(cadence_avg_pool2d) { pool(a, arena, weights, true); }

KERNEL(cadence_global_avg_pool) {
    const float* x = input(a, 0, arena, weights);
    const u32 HW = in_dim(a, 0, 2) * in_dim(a, 0, 3);
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        const float* plane = x + i * HW;
        float sum = 0.0f;
        for (u32 j = 0; j < HW; ++j) sum += plane[j];
        y[i] = sum / (float)HW;
    }
}

// CopyInto: one thread per input element, placed at the offset along the axis.
KERNEL(cadence_copy_into) {
    const float* x = input(a, 0, arena, weights);
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        u32 coord[CADENCE_MAX_RANK];
        unflatten(i, a.in_dims[0], a.in_rank[0], coord);
        coord[a.params[CADENCE_COPY_INTO_AXIS]] += a.params[CADENCE_COPY_INTO_OFFSET];
        y[flatten(coord, a.out_dims, a.out_rank)] = x[i];
    }
}

// Transpose: output axis d is input axis perm[d].
KERNEL(cadence_transpose) {
    const float* x = input(a, 0, arena, weights);
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        u32 out[CADENCE_MAX_RANK], in[CADENCE_MAX_RANK];
        unflatten(i, a.out_dims, a.out_rank, out);
        for (u32 d = 0; d < a.out_rank; ++d) in[a.params[CADENCE_TRANSPOSE_PERM + d]] = out[d];
        y[i] = x[flatten(in, a.in_dims[0], a.in_rank[0])];
    }
}

// Slice: every step-th index along the axis from start.
KERNEL(cadence_slice) {
    const float* x = input(a, 0, arena, weights);
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        u32 coord[CADENCE_MAX_RANK];
        unflatten(i, a.out_dims, a.out_rank, coord);
        const u32 axis = a.params[CADENCE_SLICE_AXIS];
        coord[axis] = a.params[CADENCE_SLICE_START] + coord[axis] * a.params[CADENCE_SLICE_STEP];
        y[i] = x[flatten(coord, a.in_dims[0], a.in_rank[0])];
    }
}

// Resize's source coordinate (`resize::source`) under a `CoordinateTransform`.
__device__ __forceinline__ float resize_source(u32 t, u32 o, float scale, u32 out_len, u32 in_len) {
    const float of = (float)o;
    switch (t) {
        case CADENCE_TRANSFORM_HALF_PIXEL: return (of + 0.5f) / scale - 0.5f;
        case CADENCE_TRANSFORM_ASYMMETRIC: return of / scale;
        case CADENCE_TRANSFORM_ALIGN_CORNERS:
            return out_len > 1 ? of * (float)(in_len - 1) / (float)(out_len - 1) : 0.0f;
        default: return out_len > 1 ? (of + 0.5f) / scale - 0.5f : 0.0f;
    }
}

// `resize::nearest` under a `NearestRounding`.
__device__ __forceinline__ u32 resize_nearest(u32 rounding, float x, u32 len) {
    float r;
    switch (rounding) {
        case CADENCE_ROUNDING_ROUND_PREFER_FLOOR: r = -cadence_floor(0.5f - x); break;
        case CADENCE_ROUNDING_ROUND_PREFER_CEIL: r = cadence_floor(x + 0.5f); break;
        case CADENCE_ROUNDING_FLOOR: r = cadence_floor(x); break;
        default: r = -cadence_floor(-x); break;
    }
    const u32 idx = (u32)fmaxf(r, 0.0f);
    return idx < len - 1 ? idx : len - 1;
}

// `resize::linear`: clamped source, lower index, upper index, fraction.
__device__ __forceinline__ void resize_linear(float x, u32 len, u32* i0, u32* i1, float* frac) {
    x = fminf(fmaxf(x, 0.0f), (float)(len - 1));
    u32 lo = (u32)x;
    lo = lo < len - 1 ? lo : len - 1;
    *i0 = lo;
    *i1 = lo + 1 < len - 1 ? lo + 1 : len - 1;
    *frac = x - (float)lo;
}

// Resize: mode (linear, or nearest with a rounding), coordinate transform, and the
// scales (f32 bits).
KERNEL(cadence_resize) {
    const float* x = input(a, 0, arena, weights);
    const u32 H = in_dim(a, 0, 2), W = in_dim(a, 0, 3);
    const u32 OH = a.out_dims[2], OW = a.out_dims[3];
    const u32 mode = a.params[CADENCE_RESIZE_MODE], t = a.params[CADENCE_RESIZE_TRANSFORM];
    const float scale_y = word_f32(a.params[CADENCE_RESIZE_SCALE]);
    const float scale_x = word_f32(a.params[CADENCE_RESIZE_SCALE + 1]);
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        const u32 ox = (u32)(i % OW), oy = (u32)(i / OW % OH);
        const float* plane = x + i / ((u64)OW * OH) * H * W;
        const float sy = resize_source(t, oy, scale_y, OH, H);
        const float sx = resize_source(t, ox, scale_x, OW, W);
        if (mode != CADENCE_RESIZE_MODE_LINEAR) {
            const u32 rounding = mode - CADENCE_RESIZE_MODE_NEAREST_BASE;
            y[i] = plane[(u64)resize_nearest(rounding, sy, H) * W + resize_nearest(rounding, sx, W)];
            continue;
        }
        u32 y0, y1, x0, x1;
        float fy, fx;
        resize_linear(sy, H, &y0, &y1, &fy);
        resize_linear(sx, W, &x0, &x1, &fx);
        const float* r0 = plane + (u64)y0 * W;
        const float* r1 = plane + (u64)y1 * W;
        const float top = r0[x0] + (r0[x1] - r0[x0]) * fx;
        const float bottom = r1[x0] + (r1[x1] - r1[x0]) * fx;
        y[i] = top + (bottom - top) * fy;
    }
}

// (outer, axis length, inner) of input 0 split at `axis`.
__device__ __forceinline__ void split_at_axis(const StepArgs& a, u32 axis, u64* len, u64* inner) {
    *len = a.in_dims[0][axis];
    *inner = 1;
    for (u32 d = axis + 1; d < a.in_rank[0]; ++d) *inner *= a.in_dims[0][d];
}

// Softmax along its axis; one thread per (outer, inner) line.
KERNEL(cadence_softmax) {
    const float* x = input(a, 0, arena, weights);
    float* y = arena + a.out_offset;
    u64 len, inner;
    split_at_axis(a, a.params[CADENCE_SOFTMAX_AXIS], &len, &inner);
    FOR_EACH_ITEM(i) {
        const u64 base = i / inner * len * inner + i % inner;
        float max = -CADENCE_INF, sum = 0.0f;
        for (u64 j = 0; j < len; ++j) max = fmaxf(max, x[base + j * inner]);
        for (u64 j = 0; j < len; ++j) {
            const float e = cadence_exp(x[base + j * inner] - max);
            y[base + j * inner] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (u64 j = 0; j < len; ++j) y[base + j * inner] *= inv;
    }
}

// Reduce: a `ReduceKind` along one axis.
KERNEL(cadence_reduce) {
    const float* x = input(a, 0, arena, weights);
    float* y = arena + a.out_offset;
    u64 len, inner;
    split_at_axis(a, a.params[CADENCE_REDUCE_AXIS], &len, &inner);
    const u32 kind = a.params[CADENCE_REDUCE_KIND];
    FOR_EACH_ITEM(i) {
        const u64 base = i / inner * len * inner + i % inner;
        float acc = kind == CADENCE_REDUCE_MAX ? -CADENCE_INF : 0.0f;
        for (u64 j = 0; j < len; ++j) {
            const float v = x[base + j * inner];
            acc = kind == CADENCE_REDUCE_MAX ? fmaxf(acc, v) : acc + v;
        }
        y[i] = kind == CADENCE_REDUCE_MEAN ? acc / (float)len : acc;
    }
}

KERNEL(cadence_copy) {
    const float* x = input(a, 0, arena, weights);
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) { y[i] = x[i]; }
}

// PointwiseConvMax: out[n, m, h] = max over w of act(bias[m] + sum_c x[n, c, h, w] w[m, c]).
KERNEL(cadence_pointwise_conv_max) {
    const float* x = input(a, 0, arena, weights);
    const float* w = input(a, 1, arena, weights);
    const float* bias = present(a, 2) ? input(a, 2, arena, weights) : nullptr;
    const u32 C = in_dim(a, 0, 1), H = in_dim(a, 0, 2), W = in_dim(a, 0, 3);
    const u32 M = in_dim(a, 1, 0);
    float* y = arena + a.out_offset;
    FOR_EACH_ITEM(i) {
        const u32 h = (u32)(i % H), m = (u32)(i / H % M);
        const u64 n = i / ((u64)H * M);
        const float* taps = w + (u64)m * C;
        float best = -CADENCE_INF;
        for (u32 col = 0; col < W; ++col) {
            float acc = bias ? bias[m] : 0.0f;
            for (u32 c = 0; c < C; ++c) acc += x[((n * C + c) * H + h) * W + col] * taps[c];
            best = fmaxf(best, activate(acc, a.params + CADENCE_POINTWISE_CONV_MAX_ACTIVATION));
        }
        y[i] = best;
    }
}
