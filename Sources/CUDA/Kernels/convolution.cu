// 2-D convolution (NCHW, grouped; the subsampling's stride-2 and depthwise convolutions) and
// the channels-last depthwise 1-D convolution of the Conformer's convolution module, computed
// directly: one thread per output element (or per chunk of a gradient's sum), summing in a
// fixed order. The CPU references are
// CPUBackend.conv2d* and depthwiseConv1d* (Sources/Tensor/Kernels/ConvolutionKernels.swift).
// geometry = [B, Cin, H, W, Cout, Cg, KH, KW, Ho, Wo, strideH, strideW, padH, padW, groups].

#define GRID_STRIDE(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)gridDim.x * blockDim.x)

struct Conv { long B, Cin, H, W, Cout, Cg, KH, KW, Ho, Wo, sh, sw, ph, pw, groups; };

__device__ Conv conv_geometry(const long *g) {
    Conv c = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14]};
    return c;
}

extern "C" __global__ void conv2d_forward(const float *x, const float *w, const float *bias, float *y, const long *geometry) {
    Conv c = conv_geometry(geometry);
    long og = c.Cout / c.groups;
    GRID_STRIDE(n, c.B * c.Cout * c.Ho * c.Wo) {
        long ow = n % c.Wo, oh = (n / c.Wo) % c.Ho, co = (n / (c.Wo * c.Ho)) % c.Cout, b = n / (c.Wo * c.Ho * c.Cout);
        long first = (co / og) * c.Cg;
        float sum = 0.0f;
        for (long ci = 0; ci < c.Cg; ci++) {
            for (long ki = 0; ki < c.KH; ki++) {
                long ih = oh * c.sh - c.ph + ki;
                if (ih < 0 || ih >= c.H) continue;
                for (long kj = 0; kj < c.KW; kj++) {
                    long iw = ow * c.sw - c.pw + kj;
                    if (iw < 0 || iw >= c.W) continue;
                    sum += w[((co * c.Cg + ci) * c.KH + ki) * c.KW + kj] * x[((b * c.Cin + first + ci) * c.H + ih) * c.W + iw];
                }
            }
        }
        y[n] = sum + (bias ? bias[co] : 0.0f);
    }
}

// dx[b, ci, ih, iw] = Σ over the outputs that read it (written).
extern "C" __global__ void conv2d_backward_input(const float *w, const float *g, float *dx, const long *geometry) {
    Conv c = conv_geometry(geometry);
    long og = c.Cout / c.groups;
    GRID_STRIDE(n, c.B * c.Cin * c.H * c.W) {
        long iw = n % c.W, ih = (n / c.W) % c.H, ci = (n / (c.W * c.H)) % c.Cin, b = n / (c.W * c.H * c.Cin);
        long group = ci / c.Cg, cl = ci % c.Cg;
        float sum = 0.0f;
        for (long co = group * og; co < (group + 1) * og; co++) {
            for (long ki = 0; ki < c.KH; ki++) {
                long t = ih + c.ph - ki;
                if (t < 0 || t % c.sh != 0 || t / c.sh >= c.Ho) continue;
                for (long kj = 0; kj < c.KW; kj++) {
                    long s = iw + c.pw - kj;
                    if (s < 0 || s % c.sw != 0 || s / c.sw >= c.Wo) continue;
                    sum += w[((co * c.Cg + cl) * c.KH + ki) * c.KW + kj] * g[((b * c.Cout + co) * c.Ho + t / c.sh) * c.Wo + s / c.sw];
                }
            }
        }
        dx[n] = sum;
    }
}

// The weight and bias gradients sum over every output row (b, oh): each thread sums one chunk of
// `chunkRows` rows for one gradient entry i into partial[chunk, i], and column_sums_finish adds
// the chunks in order, so the thousands of entries of a subsampling kernel are summed by
// hundreds of thousands of threads, deterministically.

// dw[co, ci, ki, kj] = Σ_b Σ_(oh, ow) g · x.
extern "C" __global__ void conv2d_backward_weight_partial(const float *x, const float *g, double *partial, const long *geometry, long chunkRows) {
    Conv c = conv_geometry(geometry);
    long og = c.Cout / c.groups, width = c.Cout * c.Cg * c.KH * c.KW, rows = c.B * c.Ho, chunks = (rows + chunkRows - 1) / chunkRows;
    GRID_STRIDE(n, chunks * width) {
        long i = n % width, chunk = n / width, end = (chunk + 1) * chunkRows < rows ? (chunk + 1) * chunkRows : rows;
        long kj = i % c.KW, ki = (i / c.KW) % c.KH, cl = (i / (c.KW * c.KH)) % c.Cg, co = i / (c.KW * c.KH * c.Cg);
        long ci = (co / og) * c.Cg + cl;
        float sum = 0.0f;
        for (long r = chunk * chunkRows; r < end; r++) {
            long b = r / c.Ho, oh = r % c.Ho, ih = oh * c.sh - c.ph + ki;
            if (ih < 0 || ih >= c.H) continue;
            const float *gRow = g + ((b * c.Cout + co) * c.Ho + oh) * c.Wo, *xRow = x + ((b * c.Cin + ci) * c.H + ih) * c.W;
            for (long ow = 0; ow < c.Wo; ow++) {
                long iw = ow * c.sw - c.pw + kj;
                if (iw >= 0 && iw < c.W) sum += gRow[ow] * xRow[iw];
            }
        }
        partial[chunk * width + i] = sum;
    }
}

// db[co] = Σ_b Σ_(oh, ow) g.
extern "C" __global__ void conv2d_backward_bias_partial(const float *g, double *partial, const long *geometry, long chunkRows) {
    Conv c = conv_geometry(geometry);
    long rows = c.B * c.Ho, chunks = (rows + chunkRows - 1) / chunkRows;
    GRID_STRIDE(n, chunks * c.Cout) {
        long co = n % c.Cout, chunk = n / c.Cout, end = (chunk + 1) * chunkRows < rows ? (chunk + 1) * chunkRows : rows;
        float sum = 0.0f;
        for (long r = chunk * chunkRows; r < end; r++) {
            const float *gRow = g + ((r / c.Ho * c.Cout + co) * c.Ho + r % c.Ho) * c.Wo;
            for (long ow = 0; ow < c.Wo; ow++) sum += gRow[ow];
        }
        partial[chunk * c.Cout + co] = sum;
    }
}

// y[b, i, ch] = bias[ch] + Σ_j w[ch, j]·x[b, i + j − left, ch]; x [B, T, C], y [B, To, C], w [C, 1, K].
extern "C" __global__ void depthwise_conv1d_forward(const float *x, const float *w, const float *bias, float *y, int B, int T, int To,
                                                    int C, int K, int left) {
    GRID_STRIDE(n, (long)B * To * C) {
        int ch = n % C, i = (n / C) % To, b = n / ((long)C * To);
        float sum = bias ? bias[ch] : 0.0f;
        for (int j = 0; j < K; j++) {
            int s = i + j - left;
            if (s >= 0 && s < T) sum += w[ch * K + j] * x[((long)b * T + s) * C + ch];
        }
        y[n] = sum;
    }
}

// dx[b, s, ch] += Σ_j w[ch, j]·g[b, s − j + left, ch].
extern "C" __global__ void depthwise_conv1d_backward_input(const float *w, const float *g, float *dx, int B, int T, int To, int C, int K,
                                                           int left) {
    GRID_STRIDE(n, (long)B * T * C) {
        int ch = n % C, s = (n / C) % T, b = n / ((long)C * T);
        float sum = 0.0f;
        for (int j = 0; j < K; j++) {
            int i = s - j + left;
            if (i >= 0 && i < To) sum += w[ch * K + j] * g[((long)b * To + i) * C + ch];
        }
        dx[n] += sum;
    }
}

// dw[ch, j] = Σ_b Σ_i g[b, i, ch]·x[b, i + j − left, ch], over chunks of `chunkRows` rows (b, i)
// into partial[chunk, ch·K + j], as the 2-D weight gradient.
extern "C" __global__ void depthwise_conv1d_backward_weight_partial(const float *x, const float *g, double *partial, int B, int T, int To,
                                                                    int C, int K, int left, long chunkRows) {
    long width = (long)C * K, rows = (long)B * To, chunks = (rows + chunkRows - 1) / chunkRows;
    GRID_STRIDE(n, chunks * width) {
        long w = n % width, chunk = n / width, end = (chunk + 1) * chunkRows < rows ? (chunk + 1) * chunkRows : rows;
        int j = w % K, ch = w / K;
        float sum = 0.0f;
        for (long r = chunk * chunkRows; r < end; r++) {
            long b = r / To, s = r % To + j - left;
            if (s >= 0 && s < T) sum += g[r * C + ch] * x[(b * T + s) * C + ch];
        }
        partial[chunk * width + w] = sum;
    }
}
