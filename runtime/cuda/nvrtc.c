/* nvrtc.c — see nvrtc.h.  Only the handful of NVRTC entry points we use are
 * declared here (NVRTC's C ABI is stable), so building needs no CUDA headers. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "nvrtc.h"
#include "../../ir/base.h"

typedef struct _nvrtcProgram *nvrtcProgram;
typedef int (*CreateFn)(nvrtcProgram *, const char *, const char *, int, const char *const *, const char *const *);
typedef int (*CompileFn)(nvrtcProgram, int, const char *const *);
typedef int (*SizeFn)(nvrtcProgram, size_t *);
typedef int (*GetFn)(nvrtcProgram, char *);
typedef int (*DestroyFn)(nvrtcProgram *);
typedef int (*VersionFn)(int *, int *);

static struct {
    int tried, ok, major, minor;
    char why[256];
    CreateFn create;
    CompileFn compile;
    SizeFn ptx_size, log_size;
    GetFn ptx, log;
    DestroyFn destroy;
} nv;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void load(void)
{
    if (nv.tried) return;
    nv.tried = 1;
    const char *names[] = {getenv("VCLIP_NVRTC"), "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "/usr/local/cuda/lib64/libnvrtc.so", NULL};
    void *h = NULL;
    for (int i = 0; i < 5 && !h; i++)
        if (names[i] && *names[i]) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) { snprintf(nv.why, sizeof nv.why, "libnvrtc not found (%s)", dlerror()); return; }
    nv.create = (CreateFn)(uintptr_t)dlsym(h, "nvrtcCreateProgram");
    nv.compile = (CompileFn)(uintptr_t)dlsym(h, "nvrtcCompileProgram");
    nv.ptx_size = (SizeFn)(uintptr_t)dlsym(h, "nvrtcGetPTXSize");
    nv.ptx = (GetFn)(uintptr_t)dlsym(h, "nvrtcGetPTX");
    nv.log_size = (SizeFn)(uintptr_t)dlsym(h, "nvrtcGetProgramLogSize");
    nv.log = (GetFn)(uintptr_t)dlsym(h, "nvrtcGetProgramLog");
    nv.destroy = (DestroyFn)(uintptr_t)dlsym(h, "nvrtcDestroyProgram");
    VersionFn version = (VersionFn)(uintptr_t)dlsym(h, "nvrtcVersion");
    if (!nv.create || !nv.compile || !nv.ptx_size || !nv.ptx || !nv.log_size || !nv.log || !nv.destroy || !version ||
        version(&nv.major, &nv.minor)) {
        snprintf(nv.why, sizeof nv.why, "libnvrtc lacks the functions we need");
        return;
    }
    snprintf(nv.why, sizeof nv.why, "NVRTC %d.%d", nv.major, nv.minor);
    nv.ok = 1;
}

int nvrtc_available(char *why, size_t cap)
{
    pthread_mutex_lock(&mu);
    load();
    snprintf(why, cap, "%s", nv.why);
    int ok = nv.ok;
    pthread_mutex_unlock(&mu);
    return ok;
}

char *nvrtc_compile(const char *source, const char *arch, char *err, size_t cap)
{
    char why[256];
    if (!nvrtc_available(why, sizeof why)) { snprintf(err, cap, "%s", why); return NULL; }
    char dir[4096], path[4300], opt[64];
    snprintf(opt, sizeof opt, "--gpu-architecture=%s", arch);
    uint64_t key = fnv1a_str(fnv1a_str(fnv1a_str(FNV_OFFSET, source), why), opt);
    int cached = vclip_cache_dir("kernels", dir, sizeof dir, err, cap) == 0;
    if (cached) {
        snprintf(path, sizeof path, "%s/%016llx.ptx", dir, (unsigned long long)key);
        char rerr[8];
        char *ptx = read_file(path, NULL, rerr, sizeof rerr);
        if (ptx) return ptx;
    }
    nvrtcProgram prog;
    if (nv.create(&prog, source, "vclip_fused.cu", 0, NULL, NULL)) { snprintf(err, cap, "nvrtcCreateProgram failed"); return NULL; }
    const char *opts[] = {opt, "--std=c++17"};
    int rc = nv.compile(prog, 2, opts);
    char *ptx = NULL;
    if (rc) {
        size_t n = 0;
        nv.log_size(prog, &n);
        char *log = malloc(n + 1);
        if (log && !nv.log(prog, log)) snprintf(err, cap, "NVRTC (%s): %s", arch, log);
        else snprintf(err, cap, "NVRTC (%s): compilation failed", arch);
        free(log);
    } else {
        size_t n = 0;
        nv.ptx_size(prog, &n);
        ptx = malloc(n + 1);
        if (!ptx || nv.ptx(prog, ptx)) { free(ptx); ptx = NULL; snprintf(err, cap, "cannot read the PTX"); }
        else ptx[n] = 0;
    }
    nv.destroy(&prog);
    char werr[64];
    if (ptx && cached) atomic_write(path, ptx, strlen(ptx), werr, sizeof werr); /* best effort: a failure costs a recompilation */
    return ptx;
}
