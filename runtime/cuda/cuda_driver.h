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
    char name[256];            /* device 0 */
    int major, minor;          /* its compute capability */
    size_t memory;             /* its memory in bytes */
    int driver_version;        /* e.g. 13000 */
} CudaInfo;

/* 0 with info filled when a device exists; -1 with the reason otherwise
 * ("libcuda.so.1 not found", "cuInit: no CUDA-capable device (100)", ...). */
int cuda_probe(CudaInfo *info, char *why, size_t cap);

#endif
