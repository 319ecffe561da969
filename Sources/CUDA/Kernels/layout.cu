// Moving values: block copies, row gathers and scatters, strided reads (expand, permute),
// broadcast sums, and the pointwise arithmetic of two operands with NumPy broadcasting. The CPU
// references are CPUBackend's kernels of the same names (Sources/Tensor/Kernels/CPUBackend.swift).
// Shapes come as one array of 64-bit words: `meta` = dims[rank], then one or two stride arrays.
// Every kernel is grid-stride, so any grid covers any size; sums run in a fixed order per output.

#define GRID_STRIDE(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)gridDim.x * blockDim.x)

// dst[o·dstStride + dstOffset + r] = src[o·srcStride + srcOffset + r] for r < block.
extern "C" __global__ void copy_blocks(const float *src, float *dst, long outer, long block, long srcStride, long srcOffset,
                                       long dstStride, long dstOffset) {
    GRID_STRIDE(i, outer * block) {
        long o = i / block, r = i % block;
        dst[o * dstStride + dstOffset + r] = src[o * srcStride + srcOffset + r];
    }
}

extern "C" __global__ void gather_rows(const float *x, const long *indices, float *out, long rows, long rowSize) {
    GRID_STRIDE(i, rows * rowSize) out[i] = x[indices[i / rowSize] * rowSize + i % rowSize];
}

// out[indices[r]] += g[r], rows in order (rows may repeat; no atomics, so the sums are the
// CPU's, in its order). `plan` lists the D distinct targets, then D + 1 offsets into the source
// rows that follow (each target's in ascending order): one thread per target and column.
extern "C" __global__ void scatter_add_rows(const float *g, const long *plan, float *out, long distinct, long rowSize) {
    const long *targets = plan, *starts = plan + distinct, *sources = plan + 2 * distinct + 1;
    GRID_STRIDE(i, distinct * rowSize) {
        long t = i / rowSize, c = i % rowSize;
        float *o = out + targets[t] * rowSize + c;
        float v = *o;
        for (long k = starts[t]; k < starts[t + 1]; k++) v += g[sources[k] * rowSize + c];
        *o = v;
    }
}

// out[i] = x[Σ index_d(i) · stride_d]: expand (zero strides) and permute (permuted strides).
extern "C" __global__ void strided_copy(const float *x, float *out, long n, int rank, const long *meta) {
    const long *dims = meta, *strides = meta + rank;
    GRID_STRIDE(i, n) {
        long rest = i, offset = 0;
        for (int d = rank - 1; d >= 0; d--) { offset += (rest % dims[d]) * strides[d]; rest /= dims[d]; }
        out[i] = x[offset];
    }
}

// out = x summed over the dimensions where out (given as `outDims`, x's rank, 1 where summed)
// is broadcast to x's `dims`; each output sums its inputs in row-major order, in double.
extern "C" __global__ void sum_to_shape(const float *x, float *out, long outCount, long perOutput, int rank, const long *meta) {
    const long *dims = meta, *outDims = meta + rank, *strides = meta + 2 * rank;
    GRID_STRIDE(o, outCount) {
        long rest = o, base = 0;
        for (int d = rank - 1; d >= 0; d--) { base += (rest % outDims[d]) * strides[d]; rest /= outDims[d]; }
        double sum = 0.0;
        for (long j = 0; j < perOutput; j++) {
            long r = j, offset = base;
            for (int d = rank - 1; d >= 0; d--) {
                if (outDims[d] == 1 && dims[d] > 1) { offset += (r % dims[d]) * strides[d]; r /= dims[d]; }
            }
            sum += x[offset];
        }
        out[o] = (float)sum;
    }
}

extern "C" __global__ void scale(const float *x, float *out, long n, float s) {
    GRID_STRIDE(i, n) out[i] = x[i] * s;
}

// out = f(a, b), f: 0 add, 1 subtract, 2 multiply, 3 divide, 4 `fill` where b ≠ 0, else a.
// meta = dims[rank], a's strides[rank], b's strides[rank] (0 along broadcast dimensions), with
// the host's merged dimensions; rank 0: both operands have out's shape (no index arithmetic,
// the common case of residual sums and products).
extern "C" __global__ void binary(const float *a, const float *b, float *out, long n, int rank, const long *meta, int f, float fill) {
    const long *dims = meta, *sa = meta + rank, *sb = meta + 2 * rank;
    GRID_STRIDE(i, n) {
        long rest = i, oa = rank == 0 ? i : 0, ob = rank == 0 ? i : 0;
        for (int d = rank - 1; d >= 0; d--) { long k = rest % dims[d]; oa += k * sa[d]; ob += k * sb[d]; rest /= dims[d]; }
        float x = a[oa], y = b[ob];
        out[i] = f == 0 ? x + y : f == 1 ? x - y : f == 2 ? x * y : f == 3 ? x / y : (y != 0.0f ? fill : x);
    }
}

// Column sums of a [rows, cols] matrix in two deterministic passes, so that few columns over many
// rows (bias gradients, normalisation statistics) still use the whole GPU: each thread sums a
// chunk of `chunkRows` rows of one column in double, in row order; then each column adds its
// chunks in order. `term` says what is summed per element (a[], b[] per column, or per row):
//   0: x                                      (1 sum per column)
//   1: x, x²                                  (BatchNorm's statistics)
//   2: g, g·(x − a[col])·b[col]               (BatchNorm's backward: a mean, b 1/σ)
//   3: g·(x − a[2r])·a[2r + 1], g             (LayerNorm's weight and bias gradients: a the row stats)
// partial is [chunks, sums, cols].
extern "C" __global__ void column_sums_partial(const float *x, const float *g, const float *a, const float *b, double *partial, long rows,
                                               long cols, long chunkRows, int term) {
    long chunks = (rows + chunkRows - 1) / chunkRows, sums = term == 0 ? 1 : 2;
    GRID_STRIDE(n, chunks * cols) {
        long col = n % cols, chunk = n / cols, end = (chunk + 1) * chunkRows < rows ? (chunk + 1) * chunkRows : rows;
        double s0 = 0.0, s1 = 0.0;
        for (long r = chunk * chunkRows; r < end; r++) {
            double v = x[r * cols + col];
            if (term == 0) { s0 += v; }
            else if (term == 1) { s0 += v; s1 += v * v; }
            else if (term == 2) { double gv = g[r * cols + col]; s0 += gv; s1 += gv * (double)((x[r * cols + col] - a[col]) * b[col]); }
            else { double gv = g[r * cols + col]; s0 += gv * (double)((x[r * cols + col] - a[2 * r]) * a[2 * r + 1]); s1 += gv; }
        }
        partial[(chunk * sums) * cols + col] = s0;
        if (sums == 2) partial[(chunk * sums + 1) * cols + col] = s1;
    }
}

// out[i] (+)= Σ_chunk partial[chunk, i] over width = sums·cols values, chunks in order; into
// floats (`accumulate` adds to them), into doubles, or both (a null pointer skips one).
extern "C" __global__ void column_sums_finish(const double *partial, float *outFloat, double *outDouble, long chunks, long width, int accumulate) {
    GRID_STRIDE(i, width) {
        double s = 0.0;
        for (long c = 0; c < chunks; c++) s += partial[c * width + i];
        if (outFloat) outFloat[i] = accumulate ? outFloat[i] + (float)s : (float)s;
        if (outDouble) outDouble[i] = s;
    }
}
