// The optimizer's kernels: torch.optim.AdamW's single-tensor step in float32, in the CPU kernel's operation order
// (AdamW.updateLoop): decoupled decay, m ← m + (1 − β1)(g − m), v ← β2·v + (1 − β2)·g²,
// p ← p·decay − stepSize · m / (√v / √(1 − β2ᵗ) + ε). The scalars come from the host.

extern "C" __global__ void adamw_update(float *p, const float *g, float *m, float *v, long n, float decay, float w1, float b2,
                                        float w2, float bc2Sqrt, float eps, float stepSize) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float gi = g[i];
        float mi = m[i] + w1 * (gi - m[i]);
        float vi = v[i] * b2 + w2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2Sqrt + eps;
        p[i] = p[i] * decay + (-stepSize) * (mi / denom);
    }
}

// Σx² in double: block b sums elements b, b + grid, … of the grid-stride walk per thread, then
// over its threads in a fixed tree; the host adds the blocks' partial sums in order.
extern "C" __global__ void sum_of_squares(const float *x, long n, double *partial) {
    extern __shared__ double lanes[];
    double s = 0.0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) s += (double)x[i] * x[i];
    lanes[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) lanes[threadIdx.x] += lanes[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = lanes[0];
}
