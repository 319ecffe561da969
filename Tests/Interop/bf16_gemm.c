// bf16 vs f32 matmul in oneDNN (Debian libdnnl-dev 2.6) on the FastConformer-L feed-forward shape
// 4096×512 · 512×2048, best of 10 after 2 warm-up calls: the measurement issue 11 asks for before
// any bf16 path (`make bench-bf16`; OMP_NUM_THREADS sets the threads). Not part of nest-train.
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define CHECK(x) do { if ((x) != dnnl_success) { printf("fail %s\n", #x); exit(1); } } while (0)
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static double run(dnnl_engine_t eng, dnnl_stream_t s, dnnl_data_type_t dt, int M, int N, int K) {
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = {M, K}, db = {K, N}, dc = {M, N};
    CHECK(dnnl_memory_desc_init_by_tag(&a, 2, da, dt, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&b, 2, db, dt, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&c, 2, dc, dnnl_f32, dnnl_ab));
    dnnl_primitive_desc_t pd; dnnl_primitive_t p;
    dnnl_matmul_desc_t md;
    CHECK(dnnl_matmul_desc_init(&md, &a, &b, NULL, &c));
    CHECK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
    const char *impl; dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    CHECK(dnnl_primitive_create(&p, pd));
    dnnl_memory_t ma, mb, mc;
    CHECK(dnnl_memory_create(&ma, &a, eng, DNNL_MEMORY_ALLOCATE)); CHECK(dnnl_memory_create(&mb, &b, eng, DNNL_MEMORY_ALLOCATE)); CHECK(dnnl_memory_create(&mc, &c, eng, DNNL_MEMORY_ALLOCATE));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    double best = 1e9;
    for (int r = 0; r < 12; r++) { double t = now(); CHECK(dnnl_primitive_execute(p, s, 3, args)); CHECK(dnnl_stream_wait(s)); t = now() - t; if (r > 1 && t < best) best = t; }
    printf("  %s %s: %.1f GFLOP/s\n", dt == dnnl_bf16 ? "bf16" : "f32 ", impl, 2.0 * M * N * K / best / 1e9);
    return best;
}
int main(void) {
    dnnl_engine_t eng; dnnl_stream_t s;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0)); CHECK(dnnl_stream_create(&s, eng, dnnl_stream_default_flags));
    double f = run(eng, s, dnnl_f32, 4096, 2048, 512), b = run(eng, s, dnnl_bf16, 4096, 2048, 512);
    printf("  bf16 speed-up %.2fx\n", f / b);
    return 0;
}
