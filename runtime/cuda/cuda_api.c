/* cuda_api.c — see cuda_api.h. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_api.h"
#include "cuda_driver.h"
#include "nvrtc.h"

static CudaApi api;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int tried, ok;
static CuFunction (*emulated_lookup)(const char *, const char *, char *, size_t);

void cuda_api_emulate(const CudaApi *fake, CuFunction (*lookup)(const char *, const char *, char *, size_t))
{
    pthread_mutex_lock(&mu);
    api = *fake;
    tried = ok = 1;
    emulated_lookup = lookup;
    pthread_mutex_unlock(&mu);
}
static char why[384];

static int load(void)
{
    CudaInfo info;
    if (cuda_probe(&info, why, sizeof why)) return -1;
    api.major = info.major;
    api.minor = info.minor;
    snprintf(api.device, sizeof api.device, "%s", why);
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) { snprintf(why, sizeof why, "no CUDA driver (libcuda.so.1 not found)"); return -1; }
    void *ctx = NULL;
    int (*retain)(void **, int) = (int (*)(void **, int))(uintptr_t)dlsym(h, "cuDevicePrimaryCtxRetain");
    int (*ctx_set)(void *) = (int (*)(void *))(uintptr_t)dlsym(h, "cuCtxSetCurrent");
    int (*device_get)(int *, int) = (int (*)(int *, int))(uintptr_t)dlsym(h, "cuDeviceGet");
    int missing = !retain || !ctx_set || !device_get, dev = 0;
#define SYM(field, name)                                                   \
    do {                                                                   \
        api.field = (__typeof__(api.field))(uintptr_t)dlsym(h, name);      \
        if (!api.field) missing = 1;                                       \
    } while (0)
    SYM(mem_alloc, "cuMemAlloc_v2");
    SYM(mem_free, "cuMemFree_v2");
    SYM(h2d, "cuMemcpyHtoD_v2");
    SYM(d2h, "cuMemcpyDtoH_v2");
    SYM(h2d_async, "cuMemcpyHtoDAsync_v2");
    SYM(d2h_async, "cuMemcpyDtoHAsync_v2");
    SYM(d2d_async, "cuMemcpyDtoDAsync_v2");
    SYM(host_alloc, "cuMemAllocHost_v2");
    SYM(host_free, "cuMemFreeHost");
    SYM(event_create, "cuEventCreate");
    SYM(event_destroy, "cuEventDestroy_v2");
    SYM(event_record, "cuEventRecord");
    SYM(event_sync, "cuEventSynchronize");
    SYM(stream_wait_event, "cuStreamWaitEvent");
    SYM(module_load, "cuModuleLoadData");
    SYM(module_unload, "cuModuleUnload");
    SYM(get_function, "cuModuleGetFunction");
    SYM(launch, "cuLaunchKernel");
    SYM(ctx_sync, "cuCtxSynchronize");
    SYM(stream_create, "cuStreamCreate");
    SYM(stream_destroy, "cuStreamDestroy_v2");
    SYM(stream_sync, "cuStreamSynchronize");
    SYM(stream_query, "cuStreamQuery");
    SYM(begin_capture, "cuStreamBeginCapture_v2");
    SYM(end_capture, "cuStreamEndCapture");
    SYM(graph_instantiate, "cuGraphInstantiateWithFlags");
    SYM(graph_launch, "cuGraphLaunch");
    SYM(graph_exec_destroy, "cuGraphExecDestroy");
    SYM(graph_destroy, "cuGraphDestroy");
#undef SYM
    if (missing) { snprintf(why, sizeof why, "libcuda lacks driver API entry points we need (driver too old?)"); return -1; }
    if (device_get(&dev, info.ordinal) || retain(&ctx, dev) || ctx_set(ctx)) {
        snprintf(why, sizeof why, "cannot create a context on CUDA device %d", info.ordinal);
        return -1;
    }
    return 0;
}

static int context_device = -1;

int cuda_use_device(int ordinal, char *err, size_t cap)
{
    pthread_mutex_lock(&mu);
    int made = context_device;
    pthread_mutex_unlock(&mu);
    if (made >= 0 && made != ordinal) {
        snprintf(err, cap, "CUDA device %d: this process already works on device %d", ordinal, made);
        return -1;
    }
    return cuda_select_device(ordinal, err, cap);
}

const CudaApi *cuda_api(char *err, size_t cap)
{
    pthread_mutex_lock(&mu);
    if (!tried) {
        tried = 1;
        ok = load() == 0;
        if (ok) context_device = cuda_selected_device();
    }
    pthread_mutex_unlock(&mu);
    if (!ok) { snprintf(err, cap, "%s", why); return NULL; }
    return &api;
}

typedef struct { char *source; char name[64]; CuModule module; CuFunction fn; } Loaded; /* source: our copy */
static Loaded *loaded;
static int n_loaded;

CuFunction cuda_kernel(const char *source, const char *name, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    if (!cu) return NULL;
    if (emulated_lookup) {
        return emulated_lookup(source, name, err, cap);
    }
    pthread_mutex_lock(&mu);
    CuFunction fn = NULL;
    CuModule mod = NULL;
    for (int i = 0; i < n_loaded && !fn; i++)
        if (!strcmp(loaded[i].source, source) && !strcmp(loaded[i].name, name)) fn = loaded[i].fn;
    if (!fn) {
        for (int i = 0; i < n_loaded && !mod; i++)
            if (!strcmp(loaded[i].source, source)) mod = loaded[i].module;
        if (!mod) {
            char arch[32];
            snprintf(arch, sizeof arch, "compute_%d%d", cu->major, cu->minor);
            char *ptx = nvrtc_compile(source, arch, err, cap);
            if (ptx && cu->module_load(&mod, ptx)) { snprintf(err, cap, "the driver cannot load the PTX for %s", arch); mod = NULL; }
            free(ptx);
        }
        Loaded *grown = mod ? realloc(loaded, sizeof *loaded * (size_t)(n_loaded + 1)) : NULL;
        char *copy = grown ? strdup(source) : NULL;
        if (grown) loaded = grown;
        if (mod && !copy) snprintf(err, cap, "out of memory");
        else if (copy) {
            if (cu->get_function(&fn, mod, name)) { snprintf(err, cap, "kernel '%s' not found in its module", name); fn = NULL; free(copy); }
            else {
                loaded[n_loaded] = (Loaded){.source = copy, .module = mod, .fn = fn};
                snprintf(loaded[n_loaded].name, sizeof loaded[n_loaded].name, "%s", name);
                n_loaded++;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    return fn;
}
