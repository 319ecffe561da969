#include "ccuda.h"
#include <dlfcn.h>
#include <stdio.h>

// One symbol: the names in `names` are tried in order (a versioned entry point first).
static int resolve(void *library, void **slot, const char *const *names, int count, char *error, size_t errorLength) {
    for (int i = 0; i < count; i++) {
        void *symbol = dlsym(library, names[i]);
        if (symbol) { *slot = symbol; return 0; }
    }
    snprintf(error, errorLength, "symbol %s not found", names[0]);
    return 1;
}

static void *open_library(const char *path, char *error, size_t errorLength) {
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) snprintf(error, errorLength, "%s", dlerror());
    return library;
}

#define RESOLVE(field, ...) do { \
        static const char *const names_##field[] = { __VA_ARGS__ }; \
        if (resolve(library, (void **)&table->field, names_##field, (int)(sizeof names_##field / sizeof *names_##field), error, errorLength)) return 1; \
    } while (0)

int nest_cuda_driver_load(const char *path, nest_cuda_driver *table, char *error, size_t errorLength) {
    void *library = open_library(path, error, errorLength);
    if (!library) return 1;
    RESOLVE(cuInit, "cuInit");
    RESOLVE(cuDriverGetVersion, "cuDriverGetVersion");
    RESOLVE(cuGetErrorString, "cuGetErrorString");
    RESOLVE(cuDeviceGetCount, "cuDeviceGetCount");
    RESOLVE(cuDeviceGet, "cuDeviceGet");
    RESOLVE(cuDeviceGetName, "cuDeviceGetName");
    RESOLVE(cuDeviceGetAttribute, "cuDeviceGetAttribute");
    RESOLVE(cuDeviceTotalMem, "cuDeviceTotalMem_v2");
    RESOLVE(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    RESOLVE(cuCtxSetCurrent, "cuCtxSetCurrent");
    RESOLVE(cuCtxSynchronize, "cuCtxSynchronize");
    RESOLVE(cuMemGetInfo, "cuMemGetInfo_v2");
    RESOLVE(cuMemAlloc, "cuMemAlloc_v2");
    RESOLVE(cuMemFree, "cuMemFree_v2");
    RESOLVE(cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    RESOLVE(cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    RESOLVE(cuMemcpyDtoD, "cuMemcpyDtoD_v2");
    RESOLVE(cuMemHostAlloc, "cuMemHostAlloc");
    RESOLVE(cuMemFreeHost, "cuMemFreeHost");
    RESOLVE(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    RESOLVE(cuMemsetD32, "cuMemsetD32_v2");
    RESOLVE(cuModuleLoadData, "cuModuleLoadData");
    RESOLVE(cuModuleUnload, "cuModuleUnload");
    RESOLVE(cuModuleGetFunction, "cuModuleGetFunction");
    RESOLVE(cuLaunchKernel, "cuLaunchKernel");
    RESOLVE(cuEventCreate, "cuEventCreate");
    RESOLVE(cuEventRecord, "cuEventRecord");
    RESOLVE(cuEventSynchronize, "cuEventSynchronize");
    RESOLVE(cuEventQuery, "cuEventQuery");
    RESOLVE(cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime");
    RESOLVE(cuEventDestroy, "cuEventDestroy_v2");
    return 0;
}

int nest_nvrtc_load(const char *path, nest_nvrtc *table, char *error, size_t errorLength) {
    void *library = open_library(path, error, errorLength);
    if (!library) return 1;
    RESOLVE(nvrtcVersion, "nvrtcVersion");
    RESOLVE(nvrtcGetErrorString, "nvrtcGetErrorString");
    RESOLVE(nvrtcCreateProgram, "nvrtcCreateProgram");
    RESOLVE(nvrtcCompileProgram, "nvrtcCompileProgram");
    RESOLVE(nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize");
    RESOLVE(nvrtcGetProgramLog, "nvrtcGetProgramLog");
    RESOLVE(nvrtcGetCUBINSize, "nvrtcGetCUBINSize");
    RESOLVE(nvrtcGetCUBIN, "nvrtcGetCUBIN");
    RESOLVE(nvrtcDestroyProgram, "nvrtcDestroyProgram");
    RESOLVE(nvrtcGetNumSupportedArchs, "nvrtcGetNumSupportedArchs");
    RESOLVE(nvrtcGetSupportedArchs, "nvrtcGetSupportedArchs");
    RESOLVE(nvrtcGetPTXSize, "nvrtcGetPTXSize");
    RESOLVE(nvrtcGetPTX, "nvrtcGetPTX");
    return 0;
}

int nest_cublas_load(const char *path, nest_cublas *table, char *error, size_t errorLength) {
    void *library = open_library(path, error, errorLength);
    if (!library) return 1;
    RESOLVE(cublasCreate, "cublasCreate_v2");
    RESOLVE(cublasDestroy, "cublasDestroy_v2");
    RESOLVE(cublasGetVersion, "cublasGetVersion_v2");
    RESOLVE(cublasSetMathMode, "cublasSetMathMode");
    RESOLVE(cublasSgemmStridedBatched, "cublasSgemmStridedBatched");
    return 0;
}
