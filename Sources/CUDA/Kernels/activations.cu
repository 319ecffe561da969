// Pointwise activations: y = f(x) and dx = g · f'(x). The CPU reference is
// Tensor.activation (Sources/Tensor/Ops/Activations.swift); SiLU's derivative is taken from x.

extern "C" __global__ void silu_forward(const float *x, float *y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        y[i] = v / (1.0f + expf(-v));
    }
}

extern "C" __global__ void silu_backward(const float *x, const float *g, float *dx, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i], s = 1.0f / (1.0f + expf(-v));
        dx[i] = g[i] * s * (1.0f + v * (1.0f - s));
    }
}
