/* cuda_driver.c — see cuda_driver.h.  The few driver entry points are
 * declared here (the driver API's C ABI is stable), so building needs no CUDA
 * headers or libraries. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "cuda_driver.h"

typedef int (*InitFn)(unsigned);
typedef int (*CountFn)(int *);
typedef int (*GetFn)(int *, int);
typedef int (*NameFn)(char *, int, int);
typedef int (*AttrFn)(int *, int, int);
typedef int (*MemFn)(size_t *, int);
typedef int (*VersionFn)(int *);
typedef int (*ErrFn)(int, const char **);


static int selected;

int cuda_selected_device(void) { return selected; }

int cuda_select_device(int ordinal, char *why, size_t cap)
{
    if (ordinal < 0) { snprintf(why, cap, "CUDA device %d: no such device", ordinal); return -1; }
    selected = ordinal;
    return 0;
}

int cuda_probe(CudaInfo *info, char *why, size_t cap)
{
    memset(info, 0, sizeof *info);
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) { snprintf(why, cap, "no CUDA driver (libcuda.so.1 not found)"); return -1; }
    InitFn init = (InitFn)(uintptr_t)dlsym(h, "cuInit");
    CountFn count = (CountFn)(uintptr_t)dlsym(h, "cuDeviceGetCount");
    GetFn get = (GetFn)(uintptr_t)dlsym(h, "cuDeviceGet");
    NameFn name = (NameFn)(uintptr_t)dlsym(h, "cuDeviceGetName");
    AttrFn attr = (AttrFn)(uintptr_t)dlsym(h, "cuDeviceGetAttribute");
    MemFn mem = (MemFn)(uintptr_t)dlsym(h, "cuDeviceTotalMem_v2");
    VersionFn version = (VersionFn)(uintptr_t)dlsym(h, "cuDriverGetVersion");
    ErrFn errname = (ErrFn)(uintptr_t)dlsym(h, "cuGetErrorString");
    if (!init || !count || !get || !name || !attr || !mem || !version) { snprintf(why, cap, "libcuda lacks the driver API we need"); return -1; }
    version(&info->driver_version);
    int rc = init(0);
    if (rc) {
        const char *s = NULL;
        if (errname) errname(rc, &s);
        snprintf(why, cap, "no CUDA device (cuInit: %s, error %d)", s ? s : "failed", rc);
        return -1;
    }
    if (count(&info->count) || info->count < 1) { snprintf(why, cap, "no CUDA device (the driver reports none)"); return -1; }
    int dev;
    info->ordinal = selected;
    if (selected >= info->count) {
        snprintf(why, cap, "no CUDA device %d: the driver reports %d (a rank's local rank picks its device: start at most one "
                 "rank per GPU on each machine)", selected, info->count);
        return -1;
    }
    if (get(&dev, selected) || name(info->name, sizeof info->name, dev) || attr(&info->major, VCLIP_CU_ATTR_CC_MAJOR, dev) ||
        attr(&info->minor, VCLIP_CU_ATTR_CC_MINOR, dev) || mem(&info->memory, dev)) {
        snprintf(why, cap, "cannot query CUDA device %d", selected);
        return -1;
    }
    snprintf(why, cap, "%s (sm_%d%d, %.1f GiB), driver %d.%d", info->name, info->major, info->minor, info->memory / 1073741824.0,
             info->driver_version / 1000, info->driver_version % 1000 / 10);
    return 0;
}
