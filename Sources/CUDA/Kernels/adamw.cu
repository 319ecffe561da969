// torch.optim.AdamW's single-tensor step in float32, in the CPU kernel's operation order
// (AdamW.updateLoop): decoupled decay, m ← m + (1 − β1)(g − m), v ← β2·v + (1 − β2)·g²,
// p ← p·decay − stepSize · m / (√v / √(1 − β2ᵗ) + ε). The scalars come from the host.

extern "C" __global__ void adamw_update(float *p, const float *g, float *m, float *v, long n, float decay, float w1, float b2,
                                        float w2, float bc2Sqrt, float eps, float stepSize) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float gi = g[i];
        float mi = m[i] + w1 * (gi - m[i]);
        float vi = v[i] * b2 + w2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2Sqrt + eps;
        p[i] = p[i] * decay + (-stepSize) * (mi / denom);
    }
}
