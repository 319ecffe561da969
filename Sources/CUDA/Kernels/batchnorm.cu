// BatchNorm over the last dimension c of [rows, c] (channels-last, as the Conformer's convolution
// module keeps it). The CPU references are CPUBackend.batchNorm* (Sources/Tensor/Kernels/RowKernels.swift).
// The per-channel sums are layout.cu's column sums (terms 1 and 2), in double and in a fixed order,
// kept on the device; stats = [mean (c), 1/σ (c)].

#define GRID_STRIDE(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)gridDim.x * blockDim.x)

// Training (`training` 1): the statistics from sums = [Σx (c), Σx² (c)] over `rows` rows, and the
// running statistics moved by `momentum` (unbiased variance); no rows: stats 0, running kept.
// Evaluation: the running statistics themselves.
extern "C" __global__ void batchnorm_statistics(const double *sums, float *stats, float *runningMean, float *runningVar, int c, long rows,
                                                float momentum, float eps, int training) {
    GRID_STRIDE(i, c) {
        if (!training) {
            stats[i] = runningMean[i];
            stats[c + i] = 1.0f / sqrtf(runningVar[i] + eps);
        } else if (rows <= 0) {
            stats[i] = 0.0f;
            stats[c + i] = 0.0f;
        } else {
            double n = (double)rows, mu = sums[i] / n, variance = sums[c + i] / n - mu * mu;
            if (variance < 0.0) variance = 0.0;
            stats[i] = (float)mu;
            stats[c + i] = 1.0f / sqrtf((float)variance + eps);
            double unbiased = rows > 1 ? variance * n / (n - 1.0) : variance;
            runningMean[i] = (1.0f - momentum) * runningMean[i] + momentum * (float)mu;
            runningVar[i] = (1.0f - momentum) * runningVar[i] + momentum * (float)unbiased;
        }
    }
}

// y = x·k + o per channel, k = rstd·w, o = b − mean·rstd·w.
extern "C" __global__ void batchnorm_apply(const float *x, float *y, const float *w, const float *b, const float *stats, long n, int c) {
    GRID_STRIDE(i, n) {
        int k = (int)(i % c);
        float mean = stats[k], rstd = stats[c + k];
        y[i] = x[i] * (rstd * w[k]) + (b[k] - mean * rstd * w[k]);
    }
}

// sums = [Σg (c), Σg·x̂ (c)] over `rows` rows. Training: dx = w·rstd·(g − Σg/rows − x̂·Σg·x̂/rows);
// evaluation: dx = g·rstd·w.
extern "C" __global__ void batchnorm_backward_input(const float *x, const float *g, const float *w, const float *stats, const double *sums,
                                                    float *dx, long n, int c, long rows, int training) {
    GRID_STRIDE(i, n) {
        int j = (int)(i % c);
        float mean = stats[j], rstd = stats[c + j];
        if (training) {
            float meanG = (float)(sums[j] / (double)rows), meanGXh = (float)(sums[c + j] / (double)rows);
            float xh = (x[i] - mean) * rstd;
            dx[i] = w[j] * rstd * (g[i] - meanG - xh * meanGXh);
        } else {
            dx[i] = g[i] * (rstd * w[j]);
        }
    }
}
