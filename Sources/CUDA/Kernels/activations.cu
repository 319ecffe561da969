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

// Exact GELU x·Φ(x) (erf form, as torch's default); dx = g · (Φ(x) + x·φ(x)).
extern "C" __global__ void gelu_forward(const float *x, float *y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}

extern "C" __global__ void gelu_backward(const float *x, const float *g, float *dx, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        dx[i] = g[i] * (0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * 0.39894228040143268f * expf(-0.5f * v * v));
    }
}

// Gated linear unit over rows of 2C: y = a · σ(b) with a the first half, b the second
// (PyTorch's order); da = g·σ(b), db = g·a·σ(b)(1 − σ(b)). The CPU reference is Tensor.glu.
extern "C" __global__ void glu_forward(const float *x, float *y, long rows, int c) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < rows * c; i += (long)gridDim.x * blockDim.x) {
        long row = i / c; int k = (int)(i % c);
        const float *a = x + row * 2 * c;
        y[i] = a[k] / (1.0f + expf(-a[c + k]));
    }
}

extern "C" __global__ void glu_backward(const float *x, const float *g, float *dx, long rows, int c) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < rows * c; i += (long)gridDim.x * blockDim.x) {
        long row = i / c; int k = (int)(i % c);
        const float *a = x + row * 2 * c;
        float s = 1.0f / (1.0f + expf(-a[c + k]));
        dx[row * 2 * c + k] = g[i] * s;
        dx[row * 2 * c + c + k] = g[i] * a[k] * s * (1.0f - s);
    }
}
