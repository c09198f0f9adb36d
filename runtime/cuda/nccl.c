/* nccl.c — see nccl.h. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include "nccl.h"

static struct {
    int tried, ok;
    char why[256];
    NcclApi api;
} nc;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void nccl_emulate(const NcclApi *api)
{
    pthread_mutex_lock(&mu);
    nc.tried = nc.ok = 1;
    nc.api = *api;
    snprintf(nc.why, sizeof nc.why, "NCCL (emulated)");
    pthread_mutex_unlock(&mu);
}

static int load(void)
{
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) { snprintf(nc.why, sizeof nc.why, "NCCL not found (libnccl.so.2): install NVIDIA's NCCL for multi-GPU training"); return -1; }
    int missing = 0;
#define SYM(field, name)                                                    \
    do {                                                                    \
        nc.api.field = (__typeof__(nc.api.field))(uintptr_t)dlsym(h, name); \
        if (!nc.api.field) missing = 1;                                     \
    } while (0)
    SYM(get_version, "ncclGetVersion");
    SYM(get_unique_id, "ncclGetUniqueId");
    SYM(comm_init_rank, "ncclCommInitRank");
    SYM(comm_destroy, "ncclCommDestroy");
    SYM(comm_abort, "ncclCommAbort");
    SYM(comm_get_async_error, "ncclCommGetAsyncError");
    SYM(get_error_string, "ncclGetErrorString");
    SYM(all_reduce, "ncclAllReduce");
    SYM(broadcast, "ncclBroadcast");
    SYM(all_gather, "ncclAllGather");
    SYM(group_start, "ncclGroupStart");
    SYM(group_end, "ncclGroupEnd");
#undef SYM
    if (missing) { snprintf(nc.why, sizeof nc.why, "libnccl lacks entry points we need (NCCL 2.10 or later has them)"); return -1; }
    int v = 0;
    nc.api.get_version(&v);
    snprintf(nc.why, sizeof nc.why, "NCCL %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
    return 0;
}

const NcclApi *nccl_api(char *why, size_t cap)
{
    pthread_mutex_lock(&mu);
    if (!nc.tried) { nc.tried = 1; nc.ok = load() == 0; }
    pthread_mutex_unlock(&mu);
    snprintf(why, cap, "%s", nc.why);
    return nc.ok ? &nc.api : NULL;
}
