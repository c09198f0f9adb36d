/* comm.c — see comm.h: which implementation a job gets, the launcher's
 * environment, and the one waiting loop (with its deadline) that every
 * collective goes through. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "comm.h"
#include "comm_nccl.h"
#include "../../ir/base.h"

extern const CommOps comm_single_ops;

struct Comm {
    const CommOps *ops;
    void *impl, *dl;
    int rank, size, local_rank;
    double timeout_s, waited_ms;
    int failed;           /* a collective failed or timed out: close aborts the job */
};

struct CommRequest { void *h; };

static int env_int(const char *name, int *out)
{
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 1 << 20) return 0;
    *out = (int)v;
    return 1;
}

int launch_info(LaunchInfo *li)
{
    static const struct { const char *size, *rank, *local, *source; } launchers[] = {
        {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "Open MPI"},
        {"PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "PMI (MPICH)"},
        {"SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "Slurm"},
    };
    *li = (LaunchInfo){0, 1, 0, "none"};
    for (size_t i = 0; i < sizeof launchers / sizeof *launchers; i++) {
        int size, rank, local = 0;
        if (!env_int(launchers[i].size, &size) || !env_int(launchers[i].rank, &rank) || size < 1 || rank >= size) continue;
        if (!env_int(launchers[i].local, &local)) local = rank;
        *li = (LaunchInfo){rank, size, local, launchers[i].source};
        return 1;
    }
    return 0;
}

/* bin/vclip-comm-mpi.so beside the running binary, or $VCLIP_MPI_PLUGIN. */
static const CommOps *load_mpi(void **dl, char *err, size_t cap)
{
    char path[4096];
    const char *env = getenv("VCLIP_MPI_PLUGIN");
    if (env && *env) snprintf(path, sizeof path, "%s", env);
    else if (exe_dir(path, sizeof path)) { snprintf(err, cap, "MPI: cannot find the running binary's folder"); return NULL; }
    else strncat(path, "/vclip-comm-mpi.so", sizeof path - strlen(path) - 1);
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*dl) {
        snprintf(err, cap, "MPI: cannot load the MPI plugin: %s (it is built by make where mpicc is installed: "
                 "Debian's libopenmpi-dev; VCLIP_MPI_PLUGIN names another)", dlerror());
        return NULL;
    }
    const CommOps *ops = dlsym(*dl, COMM_MPI_SYMBOL);
    if (!ops || ops->abi != COMM_OPS_ABI) {
        snprintf(err, cap, "MPI: %s: %s", path, ops ? "built from another version of vclip (rebuild it)" : "not a vclip MPI plugin");
        dlclose(*dl);
        *dl = NULL;
        return NULL;
    }
    return ops;
}

Comm *comm_open(CommKind kind, double timeout_s, char *err, size_t cap)
{
    LaunchInfo li;
    int launched = launch_info(&li);
    if (kind == COMM_AUTO) kind = li.size > 1 ? COMM_MPI : COMM_SINGLE;
    if (kind == COMM_SINGLE && li.size > 1) {
        snprintf(err, cap, "%s started %d processes, but this run is single-process: each would train alone", li.source, li.size);
        return NULL;
    }
    Comm *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, cap, "out of memory"); return NULL; }
    c->timeout_s = timeout_s > 0 ? timeout_s : 300;
    c->ops = kind == COMM_MPI ? load_mpi(&c->dl, err, cap) : &comm_single_ops;
    if (!c->ops || !(c->impl = c->ops->open(c->timeout_s, &c->rank, &c->size, err, cap))) {
        if (c->dl) dlclose(c->dl);
        free(c);
        return NULL;
    }
    c->local_rank = launched ? li.local_rank : c->rank;
    if (launched && (c->rank != li.rank || c->size != li.size)) {
        snprintf(err, cap, "%s says rank %d of %d, but %s says rank %d of %d", li.source, li.rank, li.size, c->ops->name, c->rank, c->size);
        comm_close(c, 1);
        return NULL;
    }
    return c;
}

Comm *comm_open_nccl(Comm *host, char *err, size_t cap)
{
    char id[COMM_NCCL_ID_BYTES] = {0}, own[512] = "";
    /* rank 0 makes the id; its failure travels with the broadcast (a zero
     * id), so that no rank waits in ncclCommInitRank for it */
    int bad = host->rank == 0 && comm_nccl_unique_id(id, sizeof id, own, sizeof own);
    if (comm_broadcast(host, id, sizeof id, 0, err, cap)) return NULL;
    static const char zero[COMM_NCCL_ID_BYTES];
    if (bad || !memcmp(id, zero, sizeof id)) { snprintf(err, cap, "%s", own[0] ? own : "rank 0 could not start NCCL (its message says why)"); return NULL; }
    Comm *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, cap, "out of memory"); return NULL; }
    *c = (Comm){&comm_nccl_ops, NULL, NULL, host->rank, host->size, host->local_rank, host->timeout_s, 0, 0};
    if (!(c->impl = comm_nccl_new(id, c->rank, c->size, err, cap))) { free(c); return NULL; }
    return c;
}

int comm_is_device(const Comm *c) { return c && c->ops->device; }

void comm_close(Comm *c, int failed)
{
    if (!c) return;
    c->ops->close(c->impl, failed || c->failed);
    /* the plugin stays loaded: MPI's libraries do not expect to be unloaded after MPI_Finalize */
    free(c);
}

int comm_rank(const Comm *c) { return c ? c->rank : 0; }
int comm_size(const Comm *c) { return c ? c->size : 1; }
int comm_local_rank(const Comm *c) { return c ? c->local_rank : 0; }
const char *comm_name(const Comm *c) { return c ? c->ops->name : "single"; }
double comm_wait_seconds(const Comm *c) { return c ? c->waited_ms / 1e3 : 0; }

/* Polls h until it completes or the deadline passes: a short spin (the
 * usual case: peers are close behind), then sleeps that grow to 1 ms so a
 * rank waiting for a slow peer leaves the core to it. */
static int finish(Comm *c, void *h, const char *what, char *err, size_t cap)
{
    double t0 = now_ms();
    long sleep_ns = 0;
    for (int polls = 0;; polls++) {
        int done = 0;
        if (c->ops->test(c->impl, h, &done, err, cap)) { c->failed = 1; return -1; }
        if (done) break;
        double waited = now_ms() - t0;
        if (waited > c->timeout_s * 1e3) {
            c->ops->cancel(c->impl, h);
            c->failed = 1;
            snprintf(err, cap, "rank %d of %d: no answer from the other ranks for %.0f s in %s: a rank has died or hangs "
                     "(the limit is --comm-timeout)", c->rank, c->size, waited / 1e3, what);
            return -1;
        }
        if (polls > 1000) {
            sleep_ns = sleep_ns ? (sleep_ns * 2 > 1000000 ? 1000000 : sleep_ns * 2) : 10000;
            nanosleep(&(struct timespec){0, sleep_ns}, NULL);
        }
    }
    c->waited_ms += now_ms() - t0;
    return 0;
}

static int started(Comm *c, void *h)
{
    if (!h) c->failed = 1;
    return h ? 0 : -1;
}

int comm_allreduce(Comm *c, void *buf, size_t n, CommType t, int mean, char *err, size_t cap)
{
    void *h = c->ops->iallreduce(c->impl, buf, n, t, mean, err, cap);
    if (started(c, h) || finish(c, h, "an all-reduce", err, cap)) return -1;
    if (mean && c->size > 1 && !c->ops->device) {
        if (t == COMM_F64) for (size_t i = 0; i < n; i++) ((double *)buf)[i] /= c->size;
        else for (size_t i = 0; i < n; i++) ((float *)buf)[i] /= (float)c->size;
    }
    return 0;
}

int comm_allreduce_many(Comm *c, void *const *bufs, const size_t *counts, int n, CommType t, int mean, char *err, size_t cap)
{
    if (!c->ops->group || !c->ops->device) { /* grouping is a device implementation's, which also takes the mean itself */
        for (int i = 0; i < n; i++)
            if (comm_allreduce(c, bufs[i], counts[i], t, mean, err, cap)) return -1;
        return 0;
    }
    void *h = NULL;
    if (c->ops->group(c->impl, 1, err, cap)) { c->failed = 1; return -1; }
    for (int i = 0; i < n; i++)
        if (counts[i] && started(c, h = c->ops->iallreduce(c->impl, bufs[i], counts[i], t, mean, err, cap))) {
            char ignored[64];
            c->ops->group(c->impl, 0, ignored, sizeof ignored);
            return -1;
        }
    if (c->ops->group(c->impl, 0, err, cap)) { c->failed = 1; return -1; }
    /* one stream carries them in order: the last one done means all are */
    return h && finish(c, h, "an all-reduce", err, cap) ? -1 : 0;
}

int comm_broadcast(Comm *c, void *buf, size_t bytes, int root, char *err, size_t cap)
{
    void *h = c->ops->ibroadcast(c->impl, buf, bytes, root, err, cap);
    return started(c, h) || finish(c, h, "a broadcast", err, cap) ? -1 : 0;
}

int comm_allgatherv(Comm *c, const void *send, size_t bytes, void *recv, const size_t *counts, char *err, size_t cap)
{
    if (counts[c->rank] != bytes) { snprintf(err, cap, "all-gather: rank %d sends %zu bytes, %zu expected", c->rank, bytes, counts[c->rank]); return -1; }
    void *h = c->ops->iallgatherv(c->impl, send, bytes, recv, counts, err, cap);
    return started(c, h) || finish(c, h, "an all-gather", err, cap) ? -1 : 0;
}

int comm_allgather(Comm *c, const void *send, size_t bytes, void *recv, char *err, size_t cap)
{
    size_t *counts = malloc(sizeof(size_t) * (size_t)c->size);
    if (!counts) { snprintf(err, cap, "out of memory"); return -1; }
    for (int i = 0; i < c->size; i++) counts[i] = bytes;
    int rc = comm_allgatherv(c, send, bytes, recv, counts, err, cap);
    free(counts);
    return rc;
}

int comm_barrier(Comm *c, char *err, size_t cap)
{
    void *h = c->ops->ibarrier(c->impl, err, cap);
    return started(c, h) || finish(c, h, "a barrier", err, cap) ? -1 : 0;
}

int comm_iallreduce(Comm *c, void *buf, size_t n, CommType t, CommRequest **req, char *err, size_t cap)
{
    *req = malloc(sizeof **req);
    if (!*req) { snprintf(err, cap, "out of memory"); return -1; }
    (*req)->h = c->ops->iallreduce(c->impl, buf, n, t, 0, err, cap);
    if (started(c, (*req)->h)) { free(*req); *req = NULL; return -1; }
    return 0;
}

int comm_test(Comm *c, CommRequest *req, int *done, char *err, size_t cap)
{
    *done = !req->h;
    if (*done) return 0;
    if (c->ops->test(c->impl, req->h, done, err, cap)) { c->failed = 1; return -1; }
    if (*done) req->h = NULL;
    return 0;
}

int comm_wait(Comm *c, CommRequest *req, char *err, size_t cap)
{
    int rc = req->h ? finish(c, req->h, "a gradient all-reduce", err, cap) : 0;
    free(req);
    return rc;
}
