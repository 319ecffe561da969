// Dropout with the CPU kernel's counter-based mask (Tensor.applyDropout): element i of a batch
// row hashes its index with two rounds of MurmurHash3's fmix32 keyed by the seed's halves, and
// is dropped when the 32 bits fall below p·2³². The same bits on any device: bit-identical.
// `rows` (may be null) maps leading row b of this tensor to its row in the whole batch.

__device__ __forceinline__ unsigned mix32(unsigned h) {
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; return h ^ (h >> 16);
}

extern "C" __global__ void dropout_forward(const float *x, float *y, long n, long rowSize, const long *rows,
                                           unsigned threshold, float scale, unsigned k0, unsigned k1) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long row = i / rowSize;
        unsigned shift = (unsigned)(((rows ? rows[row] : row) - row) * rowSize);
        unsigned bits = mix32(mix32(((unsigned)i + shift) ^ k0) ^ k1);
        y[i] = bits < threshold ? 0.0f : x[i] * scale;
    }
}
