// Softmax over rows of n with NeMo's attention mask: masked scores become −10000 before the
// softmax and masked probabilities 0 after it. One block per row; the CPU reference is
// Tensor.softmax (Sources/Tensor/Ops/Softmax.swift). Block size: a power of two ≤ 1024.
// `mask` (may be null) has one row per (b, i); score row r = (b, h, i) reads mask row
// (r / (heads · maskRowsPerBatch)) · maskRowsPerBatch + r % maskRowsPerBatch.

__device__ float block_reduce(float v, float *scratch, bool takeMax) {
    int t = threadIdx.x;
    scratch[t] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) scratch[t] = takeMax ? fmaxf(scratch[t], scratch[t + s]) : scratch[t] + scratch[t + s];
        __syncthreads();
    }
    float out = scratch[0];
    __syncthreads();
    return out;
}

extern "C" __global__ void softmax_forward(const float *x, const float *mask, float *y, int n, int heads, int maskRowsPerBatch) {
    extern __shared__ float scratch[];
    long row = blockIdx.x;
    const float *xr = x + row * n;
    float *yr = y + row * n;
    const float *mr = mask ? mask + ((row / (heads * maskRowsPerBatch)) * maskRowsPerBatch + row % maskRowsPerBatch) * (long)n : 0;
    float mx = __int_as_float(0xff800000);   // −∞
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, mr && mr[j] != 0.0f ? -10000.0f : xr[j]);
    mx = block_reduce(mx, scratch, true);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float e = expf((mr && mr[j] != 0.0f ? -10000.0f : xr[j]) - mx);
        yr[j] = e;
        sum += e;
    }
    float inv = 1.0f / block_reduce(sum, scratch, false);
    for (int j = threadIdx.x; j < n; j += blockDim.x) yr[j] = mr && mr[j] != 0.0f ? 0.0f : yr[j] * inv;
}

// dx = y ⊙ (g − Σ y·g); masked entries have y = 0 and get no gradient.
extern "C" __global__ void softmax_backward(const float *y, const float *g, float *dx, int n) {
    extern __shared__ float scratch[];
    long row = blockIdx.x;
    const float *yr = y + row * n, *gr = g + row * n;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) dot += yr[j] * gr[j];
    dot = block_reduce(dot, scratch, false);
    for (int j = threadIdx.x; j < n; j += blockDim.x) dx[row * n + j] = yr[j] * (gr[j] - dot);
}

// log-softmax over rows of n: y = x − max − log Σ exp(x − max); dx = g − exp(y)·Σg.
extern "C" __global__ void log_softmax_forward(const float *x, float *y, int n) {
    extern __shared__ float scratch[];
    long row = blockIdx.x;
    const float *xr = x + row * n;
    float mx = __int_as_float(0xff800000);
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, xr[j]);
    mx = block_reduce(mx, scratch, true);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) sum += expf(xr[j] - mx);
    float lse = mx + logf(block_reduce(sum, scratch, false));
    for (int j = threadIdx.x; j < n; j += blockDim.x) y[row * n + j] = xr[j] - lse;
}

extern "C" __global__ void log_softmax_backward(const float *y, const float *g, float *dx, int n) {
    extern __shared__ float scratch[];
    long row = blockIdx.x;
    const float *yr = y + row * n, *gr = g + row * n;
    float total = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) total += gr[j];
    total = block_reduce(total, scratch, false);
    for (int j = threadIdx.x; j < n; j += blockDim.x) dx[row * n + j] = gr[j] - expf(yr[j]) * total;
}
