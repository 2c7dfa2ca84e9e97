// Sensor pre-processing on the GPU, the same arithmetic as cadence-models' CPU code
// (models/src/camera.rs, models/src/lidar.rs) so a frame never leaves the device
// between the sensor buffer and the model input. Host side: hal/src/cuda/preprocess.rs,
// which validates every argument before a launch.

// Camera normalisation: out = (v / 255 - mean[c]) / std[c].
struct CameraArgs {
    unsigned int src_width, src_height, dst_width, dst_height;
    float mean[3];
    float std[3];
};

// `camera::tap`: half-pixel centres, clamped at the edges.
__device__ __forceinline__ void camera_tap(unsigned int o, unsigned int out_len, unsigned int in_len,
                                           unsigned int* i0, unsigned int* i1, float* frac) {
    float s = ((float)o + 0.5f) * ((float)in_len / (float)out_len) - 0.5f;
    s = fmaxf(s, 0.0f);
    unsigned int lo = (unsigned int)s;
    lo = lo < in_len - 1 ? lo : in_len - 1;
    *i0 = lo;
    *i1 = lo + 1 < in_len - 1 ? lo + 1 : in_len - 1;
    *frac = s - (float)lo;
}

// Interleaved 8-bit RGB [H, W, 3] to planar normalised f32 [3, dst_height, dst_width];
// one thread per output pixel.
extern "C" __global__ void cadence_camera_preprocess(const unsigned char* pixels, float* out,
                                                     const CameraArgs a) {
    const unsigned long long plane = (unsigned long long)a.dst_width * a.dst_height;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < plane;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        const unsigned int ox = (unsigned int)(i % a.dst_width), oy = (unsigned int)(i / a.dst_width);
        unsigned int y0, y1, x0, x1;
        float fy, fx;
        camera_tap(oy, a.dst_height, a.src_height, &y0, &y1, &fy);
        camera_tap(ox, a.dst_width, a.src_width, &x0, &x1, &fx);
        for (int c = 0; c < 3; ++c) {
            const float p00 = pixels[((unsigned long long)y0 * a.src_width + x0) * 3 + c];
            const float p01 = pixels[((unsigned long long)y0 * a.src_width + x1) * 3 + c];
            const float p10 = pixels[((unsigned long long)y1 * a.src_width + x0) * 3 + c];
            const float p11 = pixels[((unsigned long long)y1 * a.src_width + x1) * 3 + c];
            const float top = (1.0f - fx) * p00 + fx * p01;
            const float bottom = (1.0f - fx) * p10 + fx * p11;
            const float v = (1.0f - fy) * top + fy * bottom;
            out[c * plane + i] = (v / 255.0f - a.mean[c]) / a.std[c];
        }
    }
}

// The pillar grid (`PillarGrid`), already validated on the host.
struct LidarGridArgs {
    float x_min, x_max, y_min, y_max, z_min, z_max, voxel;
    unsigned int nx, ny, max_pillars, max_points;
};

// Neither NaN nor infinite: the exponent bits are not all ones.
__device__ __forceinline__ bool finite(float x) { return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u; }

#define LIDAR_FEATURES 9
#define LIDAR_PILLAR_BITS 24
#define LIDAR_PILLAR_MASK ((1u << LIDAR_PILLAR_BITS) - 1u)
#define LIDAR_KEY_OUT_OF_RANGE -1
#define LIDAR_KEY_NON_FINITE -2

// Counters `cadence_lidar_assign` writes, in `PillarStats` order.
enum LidarStat {
    STAT_IN_RANGE, STAT_KEPT, STAT_OUT_OF_RANGE, STAT_NON_FINITE, STAT_PILLAR_FULL,
    STAT_TOO_MANY_PILLARS, STAT_PILLARS, STAT_MAX_POINTS_IN_PILLAR, STAT_COUNT
};

// Pass 0, parallel: each point's cell key, or why it has none.
extern "C" __global__ void cadence_lidar_cells(const float* points, unsigned int n, const LidarGridArgs g,
                                               int* keys) {
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const float x = points[4 * i], y = points[4 * i + 1], z = points[4 * i + 2], v = points[4 * i + 3];
        if (!(finite(x) && finite(y) && finite(z) && finite(v))) {
            keys[i] = LIDAR_KEY_NON_FINITE;
        } else if (!(x >= g.x_min && x < g.x_max && y >= g.y_min && y < g.y_max && z >= g.z_min && z < g.z_max)) {
            keys[i] = LIDAR_KEY_OUT_OF_RANGE;
        } else {
            unsigned int ix = (unsigned int)((x - g.x_min) / g.voxel);
            unsigned int iy = (unsigned int)((y - g.y_min) / g.voxel);
            ix = ix < g.nx - 1 ? ix : g.nx - 1;
            iy = iy < g.ny - 1 ? iy : g.ny - 1;
            keys[i] = (int)(iy * g.nx + ix);
        }
    }
}

// Pass 1, one thread: assigns points to pillars in sensor order, which decides which
// points a full scene keeps. Deterministic by construction (no atomics racing for
// slots), and integer work only: the floats are copied, not computed on.
extern "C" __global__ void cadence_lidar_assign(const float* points, const int* keys, unsigned int n,
                                                const LidarGridArgs g, unsigned int* cells, float* pillars,
                                                int* coords, unsigned int* stats) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    for (int s = 0; s < STAT_COUNT; ++s) stats[s] = 0;
    const unsigned int pillar_len = g.max_points * LIDAR_FEATURES;
    for (unsigned int i = 0; i < n; ++i) {
        const int key = keys[i];
        if (key == LIDAR_KEY_NON_FINITE) { ++stats[STAT_NON_FINITE]; continue; }
        if (key == LIDAR_KEY_OUT_OF_RANGE) { ++stats[STAT_OUT_OF_RANGE]; continue; }
        ++stats[STAT_IN_RANGE];
        const unsigned int entry = cells[key];
        unsigned int pillar, count;
        if (entry == 0) {
            if (stats[STAT_PILLARS] == g.max_pillars) { ++stats[STAT_TOO_MANY_PILLARS]; continue; }
            pillar = stats[STAT_PILLARS]++;
            coords[2 * pillar] = key / (int)g.nx;
            coords[2 * pillar + 1] = key % (int)g.nx;
            count = 0;
        } else {
            pillar = (entry & LIDAR_PILLAR_MASK) - 1;
            count = entry >> LIDAR_PILLAR_BITS;
        }
        if (count == g.max_points) { ++stats[STAT_PILLAR_FULL]; continue; }
        float* slot = pillars + (unsigned long long)pillar * pillar_len + count * LIDAR_FEATURES;
        for (int f = 0; f < 4; ++f) slot[f] = points[4 * i + f];
        cells[key] = (pillar + 1) | ((count + 1) << LIDAR_PILLAR_BITS);
        ++stats[STAT_KEPT];
    }
}

// Pass 2, one thread per pillar: derived features, zero padding, clearing the cell
// table for the next sweep; unused pillars are zeroed with coordinates (-1, -1).
extern "C" __global__ void cadence_lidar_features(const LidarGridArgs g, unsigned int* cells, float* pillars,
                                                  int* coords, unsigned int* stats) {
    const unsigned int pillar_len = g.max_points * LIDAR_FEATURES;
    const float cx0 = g.x_min + g.voxel * 0.5f, cy0 = g.y_min + g.voxel * 0.5f;
    for (unsigned int p = blockIdx.x * blockDim.x + threadIdx.x; p < g.max_pillars; p += gridDim.x * blockDim.x) {
        float* block = pillars + (unsigned long long)p * pillar_len;
        unsigned int count = 0;
        if (p < stats[STAT_PILLARS]) {
            const int row = coords[2 * p], col = coords[2 * p + 1];
            const unsigned int key = (unsigned int)row * g.nx + (unsigned int)col;
            count = cells[key] >> LIDAR_PILLAR_BITS;
            cells[key] = 0;
            atomicMax(&stats[STAT_MAX_POINTS_IN_PILLAR], count);
            float sum[3] = {0.0f, 0.0f, 0.0f};
            for (unsigned int s = 0; s < count; ++s)
                for (int c = 0; c < 3; ++c) sum[c] += block[s * LIDAR_FEATURES + c];
            const float n = (float)count;
            const float mean[3] = {sum[0] / n, sum[1] / n, sum[2] / n};
            const float cx = (float)col * g.voxel + cx0, cy = (float)row * g.voxel + cy0;
            for (unsigned int s = 0; s < count; ++s) {
                float* slot = block + s * LIDAR_FEATURES;
                slot[4] = slot[0] - mean[0];
                slot[5] = slot[1] - mean[1];
                slot[6] = slot[2] - mean[2];
                slot[7] = slot[0] - cx;
                slot[8] = slot[1] - cy;
            }
        } else {
            coords[2 * p] = -1;
            coords[2 * p + 1] = -1;
        }
        for (unsigned int j = count * LIDAR_FEATURES; j < pillar_len; ++j) block[j] = 0.0f;
    }
}

// Clears `n` floats (the BEV canvas before a scatter).
extern "C" __global__ void cadence_fill_zero(float* x, unsigned long long n) {
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x)
        x[i] = 0.0f;
}

// `lidar::scatter`: bev[c, row, col] = features[c, p] for every used pillar; one thread
// per (channel, pillar). Rows outside the grid are skipped and counted in `rejected`
// (coordinates from `cadence_lidar_assign` never are).
extern "C" __global__ void cadence_lidar_scatter(const LidarGridArgs g, const float* features, const int* coords,
                                                 unsigned int pillars, unsigned int channels, float* bev,
                                                 unsigned int* rejected) {
    const unsigned long long total = (unsigned long long)pillars * channels;
    const unsigned long long cells = (unsigned long long)g.nx * g.ny;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        const unsigned int p = (unsigned int)(i % pillars), c = (unsigned int)(i / pillars);
        const int row = coords[2 * p], col = coords[2 * p + 1];
        if (row < 0 && col < 0) continue;
        if (row < 0 || col < 0 || row >= (int)g.ny || col >= (int)g.nx) {
            if (c == 0) atomicAdd(rejected, 1u);
            continue;
        }
        bev[c * cells + (unsigned long long)row * g.nx + col] = features[(unsigned long long)c * pillars + p];
    }
}
