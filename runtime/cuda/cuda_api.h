/* cuda_api.h — the CUDA driver API as the backend uses it: one table of
 * entry points, loaded with dlopen on first use (so one binary runs, and
 * reports cleanly, where there is no driver or device), a context on the
 * selected device (cuda_driver.h; 0 by default), and kernels from CUDA C source compiled by NVRTC for the device's
 * architecture and loaded once per process.  Only the entry points used are
 * declared (the driver's C ABI is stable); no CUDA headers are needed to
 * build; tests/unit/test_cuda.c checks the constants against cuda.h where
 * the toolkit is installed. */
#ifndef VCLIP_CUDA_API_H
#define VCLIP_CUDA_API_H

#include <stddef.h>

typedef unsigned long long CuPtr;
typedef void *CuModule, *CuFunction, *CuStream, *CuGraph, *CuGraphExec, *CuEvent;

/* cuda.h's values (checked against it by tests/unit/test_cuda.c) */
enum { VCLIP_CU_STREAM_NON_BLOCKING = 1, VCLIP_CU_CAPTURE_THREAD_LOCAL = 1, VCLIP_CU_NOT_READY = 600, VCLIP_CU_EVENT_DISABLE_TIMING = 2 };

typedef struct {
    int major, minor;        /* compute capability of device 0 */
    char device[384];        /* what cuda_probe says about it */
    int (*mem_alloc)(CuPtr *, size_t);
    int (*mem_free)(CuPtr);
    int (*h2d)(CuPtr, const void *, size_t);
    int (*d2h)(void *, CuPtr, size_t);
    int (*h2d_async)(CuPtr, const void *, size_t, CuStream);
    int (*d2h_async)(void *, CuPtr, size_t, CuStream);
    int (*d2d_async)(CuPtr, CuPtr, size_t, CuStream);
    int (*host_alloc)(void **, size_t);   /* page-locked host memory: copies from it are truly asynchronous */
    int (*host_free)(void *);
    int (*event_create)(CuEvent *, unsigned);
    int (*event_destroy)(CuEvent);
    int (*event_record)(CuEvent, CuStream);
    int (*event_sync)(CuEvent);
    int (*stream_wait_event)(CuStream, CuEvent, unsigned); /* the stream's later work waits for the event */
    int (*module_load)(CuModule *, const void *);
    int (*module_unload)(CuModule);
    int (*get_function)(CuFunction *, CuModule, const char *);
    int (*launch)(CuFunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CuStream, void **, void **);
    int (*ctx_sync)(void);
    int (*stream_create)(CuStream *, unsigned);
    int (*stream_destroy)(CuStream);
    int (*stream_sync)(CuStream);
    int (*stream_query)(CuStream);   /* 0: all its work is done; VCLIP_CU_NOT_READY: not yet */
    int (*begin_capture)(CuStream, int);
    int (*end_capture)(CuStream, CuGraph *);
    int (*graph_instantiate)(CuGraphExec *, CuGraph, unsigned long long);
    int (*graph_launch)(CuGraphExec, CuStream);
    int (*graph_exec_destroy)(CuGraphExec);
    int (*graph_destroy)(CuGraph);
} CudaApi;

/* The table with a current context on device 0, or NULL and the reason
 * ("no CUDA driver ...", "no CUDA device ..."). */
const CudaApi *cuda_api(char *err, size_t cap);
/* Chooses the device before the context exists (cuda_driver.h's
 * cuda_select_device); -1 with the reason once it exists on another. */
int cuda_use_device(int ordinal, char *err, size_t cap);
/* Kernel `name` of `source` (CUDA C; NVRTC, PTX cached on disk), loaded
 * once per (source, name) for the life of the process; NULL with the
 * compiler's log or the driver's complaint. */
CuFunction cuda_kernel(const char *source, const char *name, char *err, size_t cap);

/* Tests only: a host emulation of the device (tests/unit/cuda_emulator.h)
 * instead of the driver, and its kernel lookup (NVRTC, then the same source
 * built for the host) instead of loading PTX, so that the executor and the
 * kernels run where no GPU is.  lookup: NULL with the reason in err. */
void cuda_api_emulate(const CudaApi *api, CuFunction (*lookup)(const char *source, const char *name, char *err, size_t cap));

#endif
