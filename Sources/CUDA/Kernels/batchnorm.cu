// BatchNorm over the last dimension c of [rows, c] (channels-last, as the Conformer's convolution
// module keeps it). The CPU references are CPUBackend.batchNorm* (Sources/Tensor/Kernels/RowKernels.swift).
// The per-channel sums are layout.cu's column sums (terms 1 and 2), in double and in a fixed order;
// the host finishes the statistics, as on the CPU.

extern "C" __global__ void batchnorm_apply(const float *x, float *y, const float *scale, const float *shift, long n, int c) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int k = (int)(i % c);
        y[i] = x[i] * scale[k] + shift[k];
    }
}

// terms = [w, mean, rstd, meanG, meanGXh, scale] (c each). Training: dx = w·rstd·(g − meanG − x̂·meanGXh);
// evaluation: dx = g·scale.
extern "C" __global__ void batchnorm_backward_input(const float *x, const float *g, const float *terms, float *dx, long n, int c,
                                                    int training) {
    const float *w = terms, *mean = terms + c, *rstd = terms + 2 * c, *meanG = terms + 3 * c, *meanGXh = terms + 4 * c, *k = terms + 5 * c;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int j = (int)(i % c);
        if (training) {
            float xh = (x[i] - mean[j]) * rstd[j];
            dx[i] = w[j] * rstd[j] * (g[i] - meanG[j] - xh * meanGXh[j]);
        } else {
            dx[i] = g[i] * k[j];
        }
    }
}
