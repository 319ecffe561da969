// Relative-position attention (Transformer-XL's scores as NeMo's RelPositionMultiHeadAttention
// computes them) and the attention-weighted sum, full and banded. q, k, v are [B, T, H, dk]
// (heads in the projections' layout), positions p are [2T − 1, H, dk] (or the band's W rows
// from T − 1 − left), scores [B, H, T, T] or [B, H, T, W]. The CPU references are
// CPUBackend.relPositionScores*, bandedScores* and bandedContext* (Sources/Tensor/Kernels).
// The banded kernels are one thread per output element, each summing in a fixed order: results
// do not depend on the launch, and no two threads write one element.

#define GRID_STRIDE(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)gridDim.x * blockDim.x)

// The full-context products go through cuBLAS as the CPU computes them (CUDABackend+Products:
// AC = (q + u)·kᵀ and BD = (q + v)·pᵀ per head, then the relative shift; the attention-weighted
// sum); these kernels are the steps between the products. Each product is one strided-batched
// call over every head of every utterance, so its operands are copied into head layouts: [B, H,
// T, dk] (entry-major: head (b, h) is block b·H + h, as the scores are laid out) or [H, B, T, dk]
// (head-major: head h's B·T rows contiguous, for the products with the positions, which every
// utterance shares). `headMajor` names the layout.

__device__ long head_offset(int b, int h, int i, int B, int T, int H, int dk, int headMajor) {
    long block = headMajor ? (long)h * B + b : (long)b * H + h;
    return (block * T + i) * dk;
}

// out[head layout][b, h, i, e] = x[b, i, h, e] + bias[h, e] (no bias: a copy).
extern "C" __global__ void to_heads(const float *x, const float *bias, float *out, int B, int T, int H, int dk, int headMajor) {
    GRID_STRIDE(n, (long)B * T * H * dk) {
        int e = n % dk, h = (n / dk) % H, i = (n / ((long)dk * H)) % T, b = n / ((long)dk * H * T);
        out[head_offset(b, h, i, B, T, H, dk, headMajor) + e] = x[n] + (bias ? bias[h * dk + e] : 0.0f);
    }
}

// y[b, i, h, e] = (y[b, i, h, e] +) x[head layout][b, h, i, e].
extern "C" __global__ void from_heads(const float *x, float *y, int B, int T, int H, int dk, int headMajor, int accumulate) {
    GRID_STRIDE(n, (long)B * T * H * dk) {
        int e = n % dk, h = (n / dk) % H, i = (n / ((long)dk * H)) % T, b = n / ((long)dk * H * T);
        float value = x[head_offset(b, h, i, B, T, H, dk, headMajor) + e];
        y[n] = accumulate ? y[n] + value : value;
    }
}

// out[h, e] += Σ_b Σ_i x[head layout][b, h, i, e], in (b, i) order.
extern "C" __global__ void add_head_sums(const float *x, float *out, int B, int T, int H, int dk, int headMajor) {
    GRID_STRIDE(n, (long)H * dk) {
        int e = n % dk, h = n / dk;
        float sum = 0.0f;
        for (int b = 0; b < B; b++) for (int i = 0; i < T; i++) sum += x[head_offset(b, h, i, B, T, H, dk, headMajor) + e];
        out[n] += sum;
    }
}

// s[b, h, i, j] = (s[b, h, i, j] + bd[h, b, i, T − 1 − i + j]) · scale (bd head-major).
extern "C" __global__ void rel_shift_add(float *s, const float *bd, int B, int H, int T, float scale) {
    long np = 2L * T - 1;
    GRID_STRIDE(n, (long)B * H * T * T) {
        int j = n % T, i = (n / T) % T, h = (n / ((long)T * T)) % H, b = n / ((long)T * T * H);
        s[n] = (s[n] + bd[(((long)h * B + b) * T + i) * np + (T - 1 - i + j)]) * scale;
    }
}

// The shift's transpose, head-major: gs[h, b, i, m] = g[b, h, i, m − (T − 1 − i)] where that
// column exists, else 0.
extern "C" __global__ void rel_shift_grad(const float *g, float *gs, int B, int H, int T) {
    long np = 2L * T - 1;
    GRID_STRIDE(n, (long)H * B * T * np) {
        long m = n % np, i = (n / np) % T;
        int b = (n / (np * T)) % B, h = n / (np * T * B);
        long j = m - (T - 1 - i);
        gs[n] = j >= 0 && j < T ? g[(((long)b * H + h) * T + i) * T + j] : 0.0f;
    }
}

// The band of query i: columns c with key j = i − left + c inside [0, T) and c < W.
__device__ int band_first(int i, int left) { return left - i > 0 ? left - i : 0; }
__device__ int band_end(int i, int T, int left, int W) { return W < T - i + left ? W : T - i + left; }
__device__ bool in_band(int i, int c, int T, int left, int W) { return i >= 0 && i < T && c >= band_first(i, left) && c < band_end(i, T, left, W); }

// s[b, h, i, c] = scale · ((q_i + u)·k_j + (q_i + v)·p[T − 1 − left + c]) inside the band (s is
// zero outside it on entry).
extern "C" __global__ void banded_scores_forward(const float *q, const float *k, const float *p, const float *u, const float *v,
                                                 float *s, int B, int T, int H, int dk, int W, int left, float scale) {
    long ld = (long)H * dk;
    GRID_STRIDE(n, (long)B * H * T * W) {
        int c = n % W, i = (n / W) % T, h = (n / ((long)W * T)) % H, b = n / ((long)W * T * H);
        if (!in_band(i, c, T, left, W)) continue;
        int j = i - left + c;
        const float *qi = q + (b * (long)T + i) * ld + h * dk, *kj = k + (b * (long)T + j) * ld + h * dk;
        const float *pm = p + (long)(T - 1 - left + c) * ld + h * dk, *uh = u + h * dk, *vh = v + h * dk;
        float sum = 0.0f;
        for (int e = 0; e < dk; e++) sum += (qi[e] + uh[e]) * kj[e] + (qi[e] + vh[e]) * pm[e];
        s[n] = sum * scale;
    }
}

// The two halves of dq[b, i, h, e]: Σ_c g·scale·k_j (`position` 0) or Σ_c g·scale·p_m (1), written;
// the backend adds both to dq and sums each over (b, i) for du and dv.
extern "C" __global__ void banded_scores_backward_q(const float *k, const float *p, const float *g, float *half, int B, int T, int H,
                                                    int dk, int W, int left, float scale, int position) {
    long ld = (long)H * dk;
    GRID_STRIDE(n, (long)B * T * ld) {
        int e = n % dk, h = (n / dk) % H, i = (n / ld) % T, b = n / (ld * T);
        const float *gr = g + ((b * (long)H + h) * T + i) * W;
        float sum = 0.0f;
        for (int c = band_first(i, left); c < band_end(i, T, left, W); c++) {
            float gs = gr[c] * scale;
            sum += gs * (position ? p[(long)(T - 1 - left + c) * ld + h * dk + e] : k[(b * (long)T + i - left + c) * ld + h * dk + e]);
        }
        half[n] = sum;
    }
}

// dk[b, j, h, e] += Σ over the queries i whose band holds j: g·scale·(q_i + u).
extern "C" __global__ void banded_scores_backward_k(const float *q, const float *u, const float *g, float *dk_, int B, int T, int H,
                                                    int dk, int W, int left, float scale) {
    long ld = (long)H * dk;
    GRID_STRIDE(n, (long)B * T * ld) {
        int e = n % dk, h = (n / dk) % H, j = (n / ld) % T, b = n / (ld * T);
        float sum = 0.0f;
        for (int c = 0; c < W; c++) {
            int i = j + left - c;
            if (!in_band(i, c, T, left, W)) continue;
            sum += g[((b * (long)H + h) * T + i) * W + c] * scale * (q[(b * (long)T + i) * ld + h * dk + e] + u[h * dk + e]);
        }
        dk_[n] += sum;
    }
}

// dp[T − 1 − left + c, h, e] += Σ_b Σ_i g[b, h, i, c]·scale·(q_i + v), one thread per (c, h, e).
extern "C" __global__ void banded_scores_backward_p(const float *q, const float *v, const float *g, float *dp, int B, int T, int H,
                                                    int dk, int W, int left, float scale) {
    long ld = (long)H * dk;
    GRID_STRIDE(n, (long)W * ld) {
        int e = n % dk, h = (n / dk) % H, c = n / ld;
        float sum = 0.0f;
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < T; i++) {
                if (!in_band(i, c, T, left, W)) continue;
                sum += g[((b * (long)H + h) * T + i) * W + c] * scale * (q[(b * (long)T + i) * ld + h * dk + e] + v[h * dk + e]);
            }
        }
        dp[(long)(T - 1 - left + c) * ld + h * dk + e] += sum;
    }
}

// out[b, i, h, e] = Σ_c a[b, h, i, c]·v[b, i − left + c, h, e] (out is zero on entry).
extern "C" __global__ void banded_context_forward(const float *a, const float *v, float *out, int B, int T, int H, int dk, int W, int left) {
    long ld = (long)H * dk;
    GRID_STRIDE(n, (long)B * T * ld) {
        int e = n % dk, h = (n / dk) % H, i = (n / ld) % T, b = n / (ld * T);
        const float *ar = a + ((b * (long)H + h) * T + i) * W;
        float sum = 0.0f;
        for (int c = band_first(i, left); c < band_end(i, T, left, W); c++) sum += ar[c] * v[(b * (long)T + i - left + c) * ld + h * dk + e];
        out[n] += sum;
    }
}

// da[b, h, i, c] = g_i · v_j inside the band (written).
extern "C" __global__ void banded_context_backward_a(const float *v, const float *g, float *da, int B, int T, int H, int dk, int W, int left) {
    long ld = (long)H * dk;
    GRID_STRIDE(n, (long)B * H * T * W) {
        int c = n % W, i = (n / W) % T, h = (n / ((long)W * T)) % H, b = n / ((long)W * T * H);
        if (!in_band(i, c, T, left, W)) continue;
        const float *gi = g + (b * (long)T + i) * ld + h * dk, *vj = v + (b * (long)T + i - left + c) * ld + h * dk;
        float sum = 0.0f;
        for (int e = 0; e < dk; e++) sum += gi[e] * vj[e];
        da[n] = sum;
    }
}

// dv[b, j, h, e] += Σ over the queries i whose band holds j: a[b, h, i, c]·g_i.
extern "C" __global__ void banded_context_backward_v(const float *a, const float *g, float *dv, int B, int T, int H, int dk, int W, int left) {
    long ld = (long)H * dk;
    GRID_STRIDE(n, (long)B * T * ld) {
        int e = n % dk, h = (n / dk) % H, j = (n / ld) % T, b = n / (ld * T);
        float sum = 0.0f;
        for (int c = 0; c < W; c++) {
            int i = j + left - c;
            if (!in_band(i, c, T, left, W)) continue;
            sum += a[((b * (long)H + h) * T + i) * W + c] * g[(b * (long)T + i) * ld + h * dk + e];
        }
        dv[n] += sum;
    }
}
