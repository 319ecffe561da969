// Pointwise activations: y = f(x) and dx = g · f'(x), and the GLU. The CPU references are
// CPUBackend.activationForward/Backward and gluForward/Backward (Sources/Tensor/Kernels).

// f: 0 ReLU, 1 sigmoid, 2 SiLU, 3 exact GELU x·Φ(x) (erf form, torch's default).
__device__ float activation(int f, float v) {
    switch (f) {
    case 0: return v > 0.0f ? v : 0.0f;
    case 1: return 1.0f / (1.0f + expf(-v));
    case 2: return v / (1.0f + expf(-v));
    default: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}

// f′ from the saved value: y for ReLU and sigmoid, x for SiLU and GELU.
__device__ float activation_derivative(int f, float v) {
    switch (f) {
    case 0: return v > 0.0f ? 1.0f : 0.0f;
    case 1: return v * (1.0f - v);
    case 2: { float s = 1.0f / (1.0f + expf(-v)); return s * (1.0f + v * (1.0f - s)); }
    default: return 0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * 0.39894228040143268f * expf(-0.5f * v * v);
    }
}

extern "C" __global__ void activation_forward(const float *x, float *y, long n, int f) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] = activation(f, x[i]);
}

extern "C" __global__ void activation_backward(const float *saved, const float *g, float *dx, long n, int f) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        dx[i] = g[i] * activation_derivative(f, saved[i]);
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
