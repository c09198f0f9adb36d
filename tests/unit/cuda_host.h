/* cuda_host.h — CUDA C run on the host: the exact source NVRTC compiles,
 * built with the host's C++ compiler over cuda_host/shim.h (threads as
 * fibers that meet at barriers and warp operations) and launched with the
 * geometry CUDA would get.  The emulated device (cuda_emulator.h) runs
 * every kernel through this, so the kernels themselves are executed and
 * compared with the reference kernels on machines without a GPU.
 *
 * Mutation testing: with VCLIP_CUDA_MUTATE_FROM and VCLIP_CUDA_MUTATE_TO
 * set, the first occurrence of FROM in any kernel source is replaced by TO
 * before the host build (the device build is untouched), and the fact is
 * said on stderr, so a test can deliberately break a kernel and watch the
 * checks fail (tests/test_cuda_host.py). */
#ifndef VCLIP_CUDA_HOST_H
#define VCLIP_CUDA_HOST_H

#include <ctype.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "../../ir/base.h"
#include "../../runtime/cpu/jit_cpu.h"

/* In a sanitizer build the kernels are instrumented too, so a kernel that
 * reads or writes outside its buffers is stopped where it does. */
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define HOST_SANITIZE "-fsanitize=address"
#else
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define HOST_SANITIZE NULL
#endif

#define HOST_MAX_PARAMS 24
#define HOST_STACK_BYTES ((size_t)128 << 10)
#define HOST_MAX_THREADS 1024

/* shim.h's vclip_host::Kernel */
typedef struct {
    const char *name;
    void (*thunk)(void **);
    int (*describe)(size_t *, size_t *, int);
} HostEntry;
typedef int (*HostLaunchFn)(const HostEntry *, void **, const unsigned *, const unsigned *, unsigned, int, char *, size_t, char *,
                            size_t);

typedef struct {
    const HostEntry *entry;
    HostLaunchFn launch;
    int n_params;
    size_t size[HOST_MAX_PARAMS], offset[HOST_MAX_PARAMS], bytes; /* the parameters packed, each at its alignment */
} HostKernel;

/* Appends s[0..n) to a growing buffer. */
static void host_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = 2 * (*len + n + 1);
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
}

static int host_ident(int c) { return isalnum(c) || c == '_'; }

/* The translation unit for a kernel source: the shim, the source (its
 * `extern __shared__ T name[];` made the shim's dynamic shared memory, a
 * mutation applied if one is asked for), and the table of its __global__
 * functions.  NULL if the shim cannot be read (err). */
static char *host_translation_unit(const char *source, int *mutated, char *err, size_t cap)
{
    char *shim = read_file(VCLIP_DATA_DIR "/tests/unit/cuda_host/shim.h", NULL, err, cap);
    if (!shim) return NULL;
    char *buf = NULL, *table = NULL;
    size_t len = 0, bcap = 0, tlen = 0, tcap = 0;
    host_put(&buf, &len, &bcap, shim, strlen(shim));
    free(shim);
    const char *from = getenv("VCLIP_CUDA_MUTATE_FROM"), *to = getenv("VCLIP_CUDA_MUTATE_TO");
    const char *hit = from && *from && to ? strstr(source, from) : NULL;
    *mutated = hit != NULL;
    host_put(&buf, &len, &bcap, "\n#line 1 \"kernel.cu\"\n", 21);
    host_put(&table, &tlen, &tcap, "\nextern \"C\" const vclip_host::Kernel vclip_host_kernels[] = {\n", 62);
    for (const char *p = source; *p;) {
        if (p == hit) {
            host_put(&buf, &len, &bcap, to, strlen(to));
            p += strlen(from);
            continue;
        }
        if (!strncmp(p, "extern __shared__", 17)) { /* extern __shared__ T name[]; */
            const char *semi = strchr(p, ';'), *br = semi ? memchr(p, '[', (size_t)(semi - p)) : NULL;
            if (br) {
                const char *ne = br, *nb;
                while (ne > p && isspace((unsigned char)ne[-1])) ne--;
                for (nb = ne; nb > p && host_ident((unsigned char)nb[-1]); nb--) {}
                char line[512];
                int n = snprintf(line, sizeof line, "VCLIP_HOST_DYNAMIC_SHARED(%.*s, %.*s);", (int)(nb - (p + 17)), p + 17, (int)(ne - nb), nb);
                host_put(&buf, &len, &bcap, line, (size_t)n);
                p = semi + 1;
                continue;
            }
        }
        if (!strncmp(p, "__global__", 10) && (p == source || !host_ident((unsigned char)p[-1]))) {
            const char *q = p + 10;
            while (isspace((unsigned char)*q)) q++;
            if (!strncmp(q, "void", 4) && isspace((unsigned char)q[4])) {
                q += 4;
                while (isspace((unsigned char)*q)) q++;
                const char *nb = q;
                while (host_ident((unsigned char)*q)) q++;
                char entry[512];
                int n = snprintf(entry, sizeof entry, "    {\"%.*s\", &vclip_host::thunk<&%.*s>, &vclip_host::Signature<decltype(&%.*s)>::describe},\n",
                                 (int)(q - nb), nb, (int)(q - nb), nb, (int)(q - nb), nb);
                host_put(&table, &tlen, &tcap, entry, (size_t)n);
            }
        }
        host_put(&buf, &len, &bcap, p, 1);
        p++;
    }
    host_put(&table, &tlen, &tcap, "    {0, 0, 0}};\n", 16);
    host_put(&buf, &len, &bcap, table, tlen);
    free(table);
    return buf;
}

typedef struct { uint64_t key; void *handle; } HostModule;

static struct {
    char *stacks;
    HostModule modules[1024];
    int n_modules;
    int order;            /* alternates thread order launch by launch */
    long mutations;       /* kernel sources a mutation was applied to */
} host;

/* Kernel `name` of `source`, built for the host (cached on disk like the
 * CPU kernels, and per process).  0, or -1 with the compiler's complaint. */
static int host_kernel(const char *source, const char *name, HostKernel *k, char *err, size_t cap)
{
    uint64_t key = fnv1a_str(FNV_OFFSET, source);
    void *h = NULL;
    for (int i = 0; i < host.n_modules && !h; i++)
        if (host.modules[i].key == key) h = host.modules[i].handle;
    if (!h) {
        int mutated = 0;
        char *unit = host_translation_unit(source, &mutated, err, cap);
        if (!unit) return -1;
        h = jit_cpu_library(unit, 1, HOST_SANITIZE, err, cap);
        free(unit);
        if (!h) return -1;
        if (mutated) {
            host.mutations++;
            fprintf(stderr, "cuda_host: mutation applied to a kernel source: '%s' -> '%s'\n", getenv("VCLIP_CUDA_MUTATE_FROM"),
                    getenv("VCLIP_CUDA_MUTATE_TO"));
        }
        if (host.n_modules < 1024) host.modules[host.n_modules++] = (HostModule){key, h};
    }
    const HostEntry *table = dlsym(h, "vclip_host_kernels");
    k->launch = (HostLaunchFn)(uintptr_t)dlsym(h, "vclip_host_launch");
    k->entry = NULL;
    for (int i = 0; table && table[i].name && !k->entry; i++)
        if (!strcmp(table[i].name, name)) k->entry = &table[i];
    if (!k->entry || !k->launch) { snprintf(err, cap, "the host build has no kernel '%s'", name); return -1; }
    size_t align[HOST_MAX_PARAMS];
    k->n_params = k->entry->describe(k->size, align, HOST_MAX_PARAMS);
    if (k->n_params > HOST_MAX_PARAMS) { snprintf(err, cap, "kernel '%s' takes %d parameters, more than %d", name, k->n_params, HOST_MAX_PARAMS); return -1; }
    k->bytes = 0;
    for (int i = 0; i < k->n_params; i++) {
        k->offset[i] = (k->bytes + align[i] - 1) / align[i] * align[i];
        k->bytes = k->offset[i] + k->size[i];
    }
    return 0;
}

/* The argument values of a launch (cuLaunchKernel's array of pointers)
 * copied into packed[k->bytes], as CUDA copies them at launch. */
static void host_pack(const HostKernel *k, void **args, unsigned char *packed)
{
    for (int i = 0; i < k->n_params; i++) memcpy(packed + k->offset[i], args[i], k->size[i]);
}

/* Runs the kernel over grid x block on packed arguments.  0, or -1 with
 * what went wrong (a deadlock, a shuffle with exited lanes, ...). */
static int host_launch(const HostKernel *k, unsigned char *packed, const unsigned grid[3], const unsigned block[3], unsigned shared,
                       char *err, size_t cap)
{
    if (!host.stacks) {
        size_t total = HOST_STACK_BYTES * HOST_MAX_THREADS;
        void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) { snprintf(err, cap, "no memory for the fiber stacks"); return -1; }
        host.stacks = m;
        for (size_t t = 0; t < HOST_MAX_THREADS; t++) mprotect(host.stacks + t * HOST_STACK_BYTES, 4096, PROT_NONE); /* guard pages */
    }
    void *args[HOST_MAX_PARAMS];
    for (int i = 0; i < k->n_params; i++) args[i] = packed + k->offset[i];
    host.order ^= 1;
    int rc = k->launch(k->entry, args, grid, block, shared, host.order, host.stacks, HOST_STACK_BYTES, err, cap);
    if (rc) /* threads abandoned mid-kernel leave their frames' redzones behind */
        for (size_t t = 0; t < HOST_MAX_THREADS; t++)
            ASAN_UNPOISON_MEMORY_REGION(host.stacks + t * HOST_STACK_BYTES + 4096, HOST_STACK_BYTES - 4096);
    return rc;
}

#endif
