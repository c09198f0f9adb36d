/* cuda_fused.c — see cuda_fused.h.  Only the driver entry points used here
 * are declared (the driver API's C ABI is stable); no CUDA headers or
 * libraries are needed to build. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_fused.h"
#include "cuda_driver.h"
#include "../../codegen/nvrtc.h"

typedef unsigned long long DevPtr;
typedef void *Ctx, *Module, *Function;

static struct {
    int tried, ok;
    char why[256];
    Ctx ctx;
    int major, minor;
    int (*ctx_set)(Ctx);
    int (*mem_alloc)(DevPtr *, size_t);
    int (*mem_free)(DevPtr);
    int (*h2d)(DevPtr, const void *, size_t);
    int (*d2h)(void *, DevPtr, size_t);
    int (*module_load)(Module *, const void *);
    int (*module_unload)(Module);
    int (*get_function)(Function *, Module, const char *);
    int (*launch)(Function, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *, void **, void **);
    int (*sync)(void);
} cu;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int setup(char *err, size_t cap)
{
    if (cu.tried) { if (!cu.ok) snprintf(err, cap, "%s", cu.why); return cu.ok ? 0 : -1; }
    cu.tried = 1;
    CudaInfo info;
    if (cuda_probe(&info, cu.why, sizeof cu.why)) { snprintf(err, cap, "%s", cu.why); return -1; }
    cu.major = info.major;
    cu.minor = info.minor;
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    int (*retain)(Ctx *, int) = h ? (int (*)(Ctx *, int))(uintptr_t)dlsym(h, "cuDevicePrimaryCtxRetain") : NULL;
#define SYM(field, name) cu.field = h ? (__typeof__(cu.field))(uintptr_t)dlsym(h, name) : NULL
    SYM(ctx_set, "cuCtxSetCurrent");
    SYM(mem_alloc, "cuMemAlloc_v2");
    SYM(mem_free, "cuMemFree_v2");
    SYM(h2d, "cuMemcpyHtoD_v2");
    SYM(d2h, "cuMemcpyDtoH_v2");
    SYM(module_load, "cuModuleLoadData");
    SYM(module_unload, "cuModuleUnload");
    SYM(get_function, "cuModuleGetFunction");
    SYM(launch, "cuLaunchKernel");
    SYM(sync, "cuCtxSynchronize");
#undef SYM
    if (!retain || !cu.ctx_set || !cu.mem_alloc || !cu.mem_free || !cu.h2d || !cu.d2h || !cu.module_load || !cu.module_unload ||
        !cu.get_function || !cu.launch || !cu.sync) {
        snprintf(cu.why, sizeof cu.why, "libcuda lacks the driver API we need");
        snprintf(err, cap, "%s", cu.why);
        return -1;
    }
    if (retain(&cu.ctx, 0) || cu.ctx_set(cu.ctx)) {
        snprintf(cu.why, sizeof cu.why, "cannot create a context on CUDA device 0");
        snprintf(err, cap, "%s", cu.why);
        return -1;
    }
    cu.ok = 1;
    return 0;
}

/* Device copies of host bytes; 0 (and *d = 0) for empty buffers. */
static int upload(DevPtr *d, const void *host, size_t bytes)
{
    *d = 0;
    if (!bytes) return 0;
    if (cu.mem_alloc(d, bytes)) return -1;
    return cu.h2d(*d, host, bytes);
}

int cuda_run_fused(const Program *p, const Tensor *const *ins, int n_in, Tensor *out, char *err, size_t cap)
{
    pthread_mutex_lock(&mu);
    int rc = -1, rank = out->rank;
    DevPtr d_in[64] = {0}, d_inptrs = 0, d_dims = 0, d_strides = 0, d_out = 0;
    Module mod = NULL;
    char *ptx = NULL, *src = NULL;
    int64_t *strides = NULL;
    if (setup(err, cap)) goto done;
    if (n_in > 64) { snprintf(err, cap, "more than 64 inputs"); goto done; }
    char arch[32];
    snprintf(arch, sizeof arch, "compute_%d%d", cu.major, cu.minor);
    if (!(src = program_render_cuda(p)) || !(ptx = nvrtc_compile(src, arch, err, cap))) goto done;
    Function fn;
    if (cu.module_load(&mod, ptx) || cu.get_function(&fn, mod, "vclip_fused")) { snprintf(err, cap, "cannot load the kernel's PTX"); goto done; }
    /* broadcast strides, or the flat path when every input has the output's shape */
    int flat = 1;
    strides = calloc((size_t)(n_in * (rank ? rank : 1)) + 1, sizeof(int64_t));
    if (!strides) { snprintf(err, cap, "out of memory"); goto done; }
    for (int k = 0; k < n_in; k++) {
        const Tensor *t = ins[k];
        if (t->rank != rank || memcmp(t->dims, out->dims, sizeof(int64_t) * (size_t)rank)) flat = 0;
        int64_t s = 1;
        for (int d = rank - 1; d >= 0; d--) {
            int td = d - (rank - t->rank);
            int64_t dim = td >= 0 ? t->dims[td] : 1;
            strides[k * rank + d] = dim == 1 ? 0 : s;
            s *= dim;
        }
    }
    for (int k = 0; k < n_in; k++)
        if (upload(&d_in[k], ins[k]->data, ins[k]->nbytes)) { snprintf(err, cap, "device allocation or copy failed"); goto done; }
    if (upload(&d_inptrs, d_in, sizeof(DevPtr) * (size_t)n_in) || upload(&d_dims, out->dims, sizeof(int64_t) * (size_t)rank) ||
        (!flat && upload(&d_strides, strides, sizeof(int64_t) * (size_t)(n_in * rank))) || cu.mem_alloc(&d_out, out->nbytes ? out->nbytes : 4)) {
        snprintf(err, cap, "device allocation or copy failed");
        goto done;
    }
    long long n = (long long)tensor_numel(out);
    void *args[] = {&n, &rank, &d_dims, &d_inptrs, &d_strides, &d_out};
    unsigned threads = 256, blocks = (unsigned)((n + threads - 1) / threads);
    if (n && (cu.launch(fn, blocks, 1, 1, threads, 1, 1, 0, NULL, args, NULL) || cu.sync())) { snprintf(err, cap, "kernel launch failed"); goto done; }
    if (out->nbytes && cu.d2h(out->data, d_out, out->nbytes)) { snprintf(err, cap, "copy back failed"); goto done; }
    rc = 0;
done:
    if (cu.ok) {
        for (int k = 0; k < n_in && k < 64; k++) if (d_in[k]) cu.mem_free(d_in[k]);
        if (d_inptrs) cu.mem_free(d_inptrs);
        if (d_dims) cu.mem_free(d_dims);
        if (d_strides) cu.mem_free(d_strides);
        if (d_out) cu.mem_free(d_out);
        if (mod) cu.module_unload(mod);
    }
    free(strides);
    free(ptx);
    free(src);
    pthread_mutex_unlock(&mu);
    return rc;
}
