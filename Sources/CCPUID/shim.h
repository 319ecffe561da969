// The x86 cpuid and xgetbv instructions, which Swift cannot issue itself, and the process's CPU
// affinity (sched_getaffinity needs _GNU_SOURCE, which Swift's Glibc module does not set).
// Header-only: nothing to link. Elsewhere they report nothing (zeros).
#pragma once
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include <stdint.h>
#if defined(__linux__)
#include <sched.h>
/// CPUs in this process's affinity mask, 0 when unknown.
static inline int nest_affinity_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
}
#else
static inline int nest_affinity_cpus(void) { return 0; }
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static inline void nest_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) {
    __cpuid_count(leaf, subleaf, out[0], out[1], out[2], out[3]);
}
// XCR0: which register states the operating system saves (bits 1-2 SSE/AVX, 5-7 AVX-512).
static inline uint64_t nest_xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}
#else
static inline void nest_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) { out[0] = out[1] = out[2] = out[3] = 0; }
static inline uint64_t nest_xgetbv0(void) { return 0; }
#endif

// Word-sized atomics for the kernels' worker pool (Swift's own need macOS 15 on Apple systems).
static inline long nest_atomic_load(const long *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void nest_atomic_store(long *p, long v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline long nest_atomic_add(long *p, long v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }
static inline int nest_atomic_claim(long *p) { long zero = 0; return __atomic_compare_exchange_n(p, &zero, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE); }
static inline void nest_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
