// The NEST targets and loss on the device: the quantizer's normalisation and code search, the
// log-probability of each target and its gradient, and the decoder's predictions. The CPU
// references are in Sources/Tensor/Kernels/TargetKernels.swift. Indices travel as floats
// (exact below 2^24).

#define GRID_STRIDE(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)gridDim.x * blockDim.x)

// Each group of `width` values scaled to unit L2 norm (the norm summed in order, at least 1e-12).
extern "C" __global__ void l2_normalize_groups(const float *x, float *out, long groups, int width) {
    GRID_STRIDE(v, groups) {
        const float *p = x + v * width;
        float norm = 0.0f;
        for (int j = 0; j < width; j++) norm += p[j] * p[j];
        float inv = 1.0f / fmaxf(sqrtf(norm), 1e-12f);
        for (int j = 0; j < width; j++) out[v * width + j] = p[j] * inv;
    }
}

// Group i (book i % books) of x against its book's `classes` codes (double), in double: the
// first nearest by squared distance, or with `cosine` by the largest dot product.
__device__ double code_distance(const float *q, const double *e, int width, int cosine) {
    double d = 0.0;
    for (int j = 0; j < width; j++) {
        if (cosine) { d -= (double)q[j] * e[j]; } else { double diff = (double)q[j] - e[j]; d += diff * diff; }
    }
    return d;
}

extern "C" __global__ void nearest_codes(const float *x, const double *codes, float *out, long groups, int books, int classes, int width,
                                         int cosine) {
    GRID_STRIDE(i, groups) {
        const float *q = x + i * width;
        const double *book = codes + (long)(i % books) * classes * width;
        int best = 0;
        double bestDistance = code_distance(q, book, width, cosine);
        for (int code = 1; code < classes; code++) {
            double d = code_distance(q, book + (long)code * width, width, cosine);
            if (d < bestDistance) { bestDistance = d; best = code; }
        }
        out[i] = (float)best;
    }
}

// out[r] = x[r, columns[r]].
extern "C" __global__ void gather_columns(const float *x, const float *columns, float *out, long rows, long width) {
    GRID_STRIDE(r, rows) out[r] = x[r * width + (long)columns[r]];
}

// out[r, columns[r]] += scale·value[0].
extern "C" __global__ void add_to_columns(const float *value, float scale, const float *columns, float *out, long rows, long width) {
    GRID_STRIDE(r, rows) out[r * width + (long)columns[r]] += scale * value[0];
}

// out[r] = the first column of the largest value of row r.
extern "C" __global__ void row_argmax(const float *x, float *out, long rows, long width) {
    GRID_STRIDE(r, rows) {
        const float *p = x + r * width;
        long best = 0;
        for (long c = 1; c < width; c++) if (p[c] > p[best]) best = c;
        out[r] = (float)best;
    }
}
