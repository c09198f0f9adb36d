/* cuda_driver.h — finding a CUDA device through the driver API, loaded with
 * dlopen (libcuda.so.1) so that one binary runs everywhere and says clearly
 * what it found.  The rest of the driver API the backend uses is in
 * cuda_api.h. */
#ifndef VCLIP_CUDA_DRIVER_H
#define VCLIP_CUDA_DRIVER_H

#include <stddef.h>

/* Device attributes we query (cuda.h's values, checked by test_cuda). */
enum { VCLIP_CU_ATTR_CC_MAJOR = 75, VCLIP_CU_ATTR_CC_MINOR = 76 };

typedef struct {
    int count;                 /* devices */
    int ordinal;               /* the one this process uses (cuda_select_device; 0 by default) */
    char name[256];            /* its name */
    int major, minor;          /* its compute capability */
    size_t memory;             /* its memory in bytes */
    int driver_version;        /* e.g. 13000 */
} CudaInfo;

/* 0 with info filled when a device exists; -1 with the reason otherwise
 * ("libcuda.so.1 not found", "cuInit: no CUDA-capable device (100)", ...). */
int cuda_probe(CudaInfo *info, char *why, size_t cap);

/* The device this process uses: 0 unless chosen (data-parallel ranks take
 * the one of their local rank) before the first use; choosing another once
 * the context exists fails.  0, or -1 with the reason. */
int cuda_select_device(int ordinal, char *why, size_t cap);
int cuda_selected_device(void);

#endif
