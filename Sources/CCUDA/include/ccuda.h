// The few functions nest-train calls from the CUDA driver API (libcuda.so.1), NVRTC and cuBLAS,
// declared here with their documented C signatures and loaded with dlopen at run time: nothing
// of CUDA is needed to build, and a machine without a GPU never loads any of it. These C ABIs
// are stable across CUDA 12 and 13 (the `_v2` entry points are the ones the headers map to).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef int nest_CUresult;          // CUDA_SUCCESS = 0
typedef int nest_CUdevice;
typedef void *nest_CUcontext;
typedef void *nest_CUmodule;
typedef void *nest_CUfunction;
typedef void *nest_CUstream;
typedef void *nest_CUevent;
typedef unsigned long long nest_CUdeviceptr;
typedef int nest_nvrtcResult;       // NVRTC_SUCCESS = 0
typedef void *nest_nvrtcProgram;
typedef int nest_cublasStatus;      // CUBLAS_STATUS_SUCCESS = 0
typedef void *nest_cublasHandle;

enum {
    NEST_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    NEST_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    NEST_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    NEST_CUDA_ERROR_NOT_READY = 600,
    NEST_CU_EVENT_DISABLE_TIMING = 2,
    NEST_CUBLAS_OP_N = 0,
    NEST_CUBLAS_OP_T = 1,
    NEST_CUBLAS_DEFAULT_MATH = 0,
    NEST_CUBLAS_TF32_TENSOR_OP_MATH = 3,
    NEST_CUBLAS_PEDANTIC_MATH = 2,
};

/// The driver API.
typedef struct {
    nest_CUresult (*cuInit)(unsigned int flags);
    nest_CUresult (*cuDriverGetVersion)(int *version);
    nest_CUresult (*cuGetErrorString)(nest_CUresult error, const char **text);
    nest_CUresult (*cuDeviceGetCount)(int *count);
    nest_CUresult (*cuDeviceGet)(nest_CUdevice *device, int ordinal);
    nest_CUresult (*cuDeviceGetName)(char *name, int length, nest_CUdevice device);
    nest_CUresult (*cuDeviceGetAttribute)(int *value, int attribute, nest_CUdevice device);
    nest_CUresult (*cuDeviceTotalMem)(size_t *bytes, nest_CUdevice device);
    nest_CUresult (*cuDevicePrimaryCtxRetain)(nest_CUcontext *context, nest_CUdevice device);
    nest_CUresult (*cuCtxSetCurrent)(nest_CUcontext context);
    nest_CUresult (*cuCtxSynchronize)(void);
    nest_CUresult (*cuMemGetInfo)(size_t *free, size_t *total);
    nest_CUresult (*cuMemAlloc)(nest_CUdeviceptr *pointer, size_t bytes);
    nest_CUresult (*cuMemFree)(nest_CUdeviceptr pointer);
    nest_CUresult (*cuMemcpyHtoD)(nest_CUdeviceptr destination, const void *source, size_t bytes);
    nest_CUresult (*cuMemcpyDtoH)(void *destination, nest_CUdeviceptr source, size_t bytes);
    nest_CUresult (*cuMemcpyDtoD)(nest_CUdeviceptr destination, nest_CUdeviceptr source, size_t bytes);
    nest_CUresult (*cuMemHostAlloc)(void **pointer, size_t bytes, unsigned int flags);
    nest_CUresult (*cuMemFreeHost)(void *pointer);
    nest_CUresult (*cuMemcpyHtoDAsync)(nest_CUdeviceptr destination, const void *source, size_t bytes, nest_CUstream stream);
    nest_CUresult (*cuMemsetD32)(nest_CUdeviceptr destination, unsigned int value, size_t count);
    nest_CUresult (*cuModuleLoadData)(nest_CUmodule *module, const void *image);
    nest_CUresult (*cuModuleUnload)(nest_CUmodule module);
    nest_CUresult (*cuModuleGetFunction)(nest_CUfunction *function, nest_CUmodule module, const char *name);
    nest_CUresult (*cuLaunchKernel)(nest_CUfunction f, unsigned gridX, unsigned gridY, unsigned gridZ,
                                    unsigned blockX, unsigned blockY, unsigned blockZ, unsigned sharedBytes,
                                    nest_CUstream stream, void **parameters, void **extra);
    nest_CUresult (*cuEventCreate)(nest_CUevent *event, unsigned int flags);
    nest_CUresult (*cuEventRecord)(nest_CUevent event, nest_CUstream stream);
    nest_CUresult (*cuEventSynchronize)(nest_CUevent event);
    nest_CUresult (*cuEventQuery)(nest_CUevent event);
    nest_CUresult (*cuEventElapsedTime)(float *milliseconds, nest_CUevent start, nest_CUevent end);
    nest_CUresult (*cuEventDestroy)(nest_CUevent event);
} nest_cuda_driver;

/// The run-time compiler.
typedef struct {
    nest_nvrtcResult (*nvrtcVersion)(int *major, int *minor);
    const char *(*nvrtcGetErrorString)(nest_nvrtcResult result);
    nest_nvrtcResult (*nvrtcCreateProgram)(nest_nvrtcProgram *program, const char *source, const char *name,
                                           int headerCount, const char *const *headers, const char *const *includeNames);
    nest_nvrtcResult (*nvrtcCompileProgram)(nest_nvrtcProgram program, int optionCount, const char *const *options);
    nest_nvrtcResult (*nvrtcGetProgramLogSize)(nest_nvrtcProgram program, size_t *size);
    nest_nvrtcResult (*nvrtcGetProgramLog)(nest_nvrtcProgram program, char *log);
    nest_nvrtcResult (*nvrtcGetCUBINSize)(nest_nvrtcProgram program, size_t *size);
    nest_nvrtcResult (*nvrtcGetCUBIN)(nest_nvrtcProgram program, char *cubin);
    nest_nvrtcResult (*nvrtcDestroyProgram)(nest_nvrtcProgram *program);
    nest_nvrtcResult (*nvrtcGetNumSupportedArchs)(int *count);
    nest_nvrtcResult (*nvrtcGetSupportedArchs)(int *architectures);
    nest_nvrtcResult (*nvrtcGetPTXSize)(nest_nvrtcProgram program, size_t *size);
    nest_nvrtcResult (*nvrtcGetPTX)(nest_nvrtcProgram program, char *ptx);
} nest_nvrtc;

/// cuBLAS (column-major, as its documentation states every shape).
typedef struct {
    nest_cublasStatus (*cublasCreate)(nest_cublasHandle *handle);
    nest_cublasStatus (*cublasDestroy)(nest_cublasHandle handle);
    nest_cublasStatus (*cublasGetVersion)(nest_cublasHandle handle, int *version);
    nest_cublasStatus (*cublasSetMathMode)(nest_cublasHandle handle, int mode);
    nest_cublasStatus (*cublasSgemmStridedBatched)(nest_cublasHandle handle, int transa, int transb, int m, int n, int k,
                                                   const float *alpha, const float *a, int lda, long long strideA,
                                                   const float *b, int ldb, long long strideB, const float *beta,
                                                   float *c, int ldc, long long strideC, int batchCount);
} nest_cublas;

/// Each loader opens the library at `path` (a file name for the loader's own search, or a full
/// path) and resolves every symbol above. 0 on success; otherwise `error` holds dlerror's text
/// or the first missing symbol, and the table is left unusable.
int nest_cuda_driver_load(const char *path, nest_cuda_driver *table, char *error, size_t errorLength);
int nest_nvrtc_load(const char *path, nest_nvrtc *table, char *error, size_t errorLength);
int nest_cublas_load(const char *path, nest_cublas *table, char *error, size_t errorLength);
