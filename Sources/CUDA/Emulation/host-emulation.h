// The CUDA C++ that nest-train's kernels use, for running them on host threads (HostKernelRuntime).
// Each family's source is compiled with this in front of it into a shared library: a launch runs
// the grid's blocks one after another, each block as blockDim.x threads that meet at
// __syncthreads on one barrier; `__shared__` memory is shared by being static (one block runs at
// a time), and `extern __shared__` arrays are rewritten to point at the launch's dynamic buffer.
// It checks kernel logic and launch geometry against the CPU kernels, not speed.
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct dim3 { unsigned x, y, z; };
static thread_local dim3 threadIdx = {0, 0, 0}, blockIdx = {0, 0, 0};
static dim3 blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
static char *emulated_shared = nullptr;
static pthread_barrier_t emulated_barrier;

#define __global__
#define __device__ static inline
#define __forceinline__
#define __restrict__
#define __shared__ static

static inline void __syncthreads() { pthread_barrier_wait(&emulated_barrier); }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

typedef void (*emulated_kernel)(void **arguments);
struct emulated_thread { unsigned index; emulated_kernel kernel; void **arguments; };

static void *emulated_thread_main(void *p) {
    emulated_thread *t = (emulated_thread *)p;
    threadIdx.x = t->index;
    for (unsigned b = 0; b < gridDim.x; b++) {
        blockIdx.x = b;
        t->kernel(t->arguments);
        pthread_barrier_wait(&emulated_barrier);   // the block ends when all its threads have
    }
    return nullptr;
}

static int emulated_launch(emulated_kernel kernel, unsigned grid, unsigned block, unsigned sharedBytes, void **arguments) {
    gridDim.x = grid;
    blockDim.x = block;
    emulated_shared = (char *)calloc(sharedBytes + 16, 1);
    pthread_barrier_init(&emulated_barrier, nullptr, block);
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setstacksize(&attributes, 256 << 10);
    pthread_t *threads = (pthread_t *)calloc(block, sizeof(pthread_t));
    emulated_thread *states = (emulated_thread *)calloc(block, sizeof(emulated_thread));
    int failed = 0;
    for (unsigned t = 0; t < block; t++) {
        states[t] = emulated_thread{t, kernel, arguments};
        if (pthread_create(&threads[t], &attributes, emulated_thread_main, &states[t]) != 0) { failed = 1; abort(); }
    }
    for (unsigned t = 0; t < block; t++) pthread_join(threads[t], nullptr);
    pthread_barrier_destroy(&emulated_barrier);
    pthread_attr_destroy(&attributes);
    free(threads);
    free(states);
    free(emulated_shared);
    return failed;
}
