// PyTorch's LayerNorm over rows of d (biased variance, eps inside the square root), with the
// per-row mean and 1/σ kept for backward. The CPU reference is Tensor.layerNorm and
// Vector.layerNormRowBackward. One block per row (a power of two ≤ 1024 threads); the weight and
// bias gradients are layout.cu's column sums (term 3).

__device__ float block_sum(float v, float *scratch) {
    int t = threadIdx.x;
    scratch[t] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) scratch[t] += scratch[t + s];
        __syncthreads();
    }
    float out = scratch[0];
    __syncthreads();
    return out;
}

extern "C" __global__ void layernorm_forward(const float *x, const float *w, const float *b, float *y, float *stats, int d, float eps) {
    extern __shared__ float scratch[];
    long row = blockIdx.x;
    const float *xr = x + row * d;
    float s = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
    float mu = block_sum(s, scratch) / d;
    float q = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) { float c = xr[i] - mu; q += c * c; }
    float rs = rsqrtf(block_sum(q, scratch) / d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) y[row * d + i] = (xr[i] - mu) * rs * w[i] + b[i];
    if (threadIdx.x == 0) { stats[2 * row] = mu; stats[2 * row + 1] = rs; }
}

// dx = rs · (h − mean(h) − x̂ · mean(h·x̂)) with h = g·w.
extern "C" __global__ void layernorm_backward(const float *x, const float *g, const float *w, const float *stats, float *dx, int d) {
    extern __shared__ float scratch[];
    long row = blockIdx.x;
    const float *xr = x + row * d, *gr = g + row * d;
    float mu = stats[2 * row], rs = stats[2 * row + 1];
    float sh = 0.0f, shx = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float xh = (xr[i] - mu) * rs, h = gr[i] * w[i];
        sh += h;
        shx += h * xh;
    }
    float a = block_sum(sh, scratch) / d, c = block_sum(shx, scratch) / d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float xh = (xr[i] - mu) * rs, h = gr[i] * w[i];
        dx[row * d + i] = rs * (h - a - xh * c);
    }
}
