// BatchNorm over the last dimension c of [rows, c] (channels-last, as the Conformer's convolution
// module keeps it). The CPU references are CPUBackend.batchNorm* (Sources/Tensor/Kernels/RowKernels.swift).
// The per-channel sums are one thread per channel over the rows in order, in double, so they are
// the same on every launch; the host finishes the statistics, as on the CPU.

// sums = [Σx (c), Σx² (c)].
extern "C" __global__ void batchnorm_sums(const float *x, double *sums, long rows, int c) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < c; i += gridDim.x * blockDim.x) {
        double s = 0.0, q = 0.0;
        for (long r = 0; r < rows; r++) { double v = x[r * c + i]; s += v; q += v * v; }
        sums[i] = s;
        sums[c + i] = q;
    }
}

extern "C" __global__ void batchnorm_apply(const float *x, float *y, const float *scale, const float *shift, long n, int c) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int k = (int)(i % c);
        y[i] = x[i] * scale[k] + shift[k];
    }
}

// sums = [Σg (c), Σg·x̂ (c)], x̂ = (x − mean)·rstd (in float, as the CPU forms it).
extern "C" __global__ void batchnorm_backward_sums(const float *x, const float *g, const float *mean, const float *rstd,
                                                   double *sums, long rows, int c) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < c; i += gridDim.x * blockDim.x) {
        double sg = 0.0, sgx = 0.0;
        for (long r = 0; r < rows; r++) {
            double gi = g[r * c + i];
            sg += gi;
            sgx += gi * (double)((x[r * c + i] - mean[i]) * rstd[i]);
        }
        sums[i] = sg;
        sums[c + i] = sgx;
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
