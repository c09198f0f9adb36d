/* comm_nccl.c — the communicator over NCCL, for buffers in device memory
 * (the addresses of the CUDA backend's buffers, passed as pointers): the
 * CUDA trainer averages its gradients with it where they are.  Made from a
 * host communicator (MPI), which carries NCCL's unique id from rank 0 to the
 * others.  Every collective is queued on the communicator's own stream and
 * finished when that stream is idle; a wait past the timeout aborts the
 * NCCL communicator (ncclCommAbort), so a dead peer cannot hold a GPU rank
 * forever, and an asynchronous NCCL error (a peer's link gone) is reported
 * as soon as it is seen. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "comm_ops.h"
#include "comm_nccl.h"
#include "../cuda/nccl.h"

typedef struct {
    const CudaApi *cu;
    const NcclApi *nc;
    NcclComm comm;
    CuStream stream;
    CuPtr scratch;        /* one float, for the barrier */
    int rank, size;
} Nccl;

static int nccl_error(const Nccl *n, int rc, const char *what, char *err, size_t cap)
{
    snprintf(err, cap, "NCCL: %s: %s (%d)", what, n->nc->get_error_string ? n->nc->get_error_string(rc) : "error", rc);
    return -1;
}

void *comm_nccl_new(const void *unique_id, int rank, int size, char *err, size_t cap)
{
    char why[256];
    const CudaApi *cu = cuda_api(err, cap);
    if (!cu) return NULL;
    const NcclApi *nc = nccl_api(why, sizeof why);
    if (!nc) { snprintf(err, cap, "%s", why); return NULL; }
    Nccl *n = calloc(1, sizeof *n);
    if (!n) { snprintf(err, cap, "out of memory"); return NULL; }
    *n = (Nccl){cu, nc, NULL, NULL, 0, rank, size};
    NcclUniqueId id;
    memcpy(&id, unique_id, sizeof id);
    int rc;
    if (cu->stream_create(&n->stream, VCLIP_CU_STREAM_NON_BLOCKING) || cu->mem_alloc(&n->scratch, sizeof(float))) {
        snprintf(err, cap, "NCCL: cannot make its stream and scratch buffer on the device");
    } else if ((rc = nc->comm_init_rank(&n->comm, size, id, rank)) != VCLIP_NCCL_SUCCESS) {
        nccl_error(n, rc, "ncclCommInitRank", err, cap);
        n->comm = NULL;
    } else {
        return n;
    }
    if (n->scratch) cu->mem_free(n->scratch);
    if (n->stream) cu->stream_destroy(n->stream);
    free(n);
    return NULL;
}

int comm_nccl_unique_id(void *out, size_t bytes, char *err, size_t cap)
{
    char why[256];
    const NcclApi *nc = nccl_api(why, sizeof why);
    if (!nc) { snprintf(err, cap, "%s", why); return -1; }
    NcclUniqueId id;
    if (bytes != sizeof id) { snprintf(err, cap, "NCCL: a unique id is %zu bytes", sizeof id); return -1; }
    int rc = nc->get_unique_id(&id);
    if (rc != VCLIP_NCCL_SUCCESS) { snprintf(err, cap, "NCCL: ncclGetUniqueId: %s (%d)", nc->get_error_string(rc), rc); return -1; }
    memcpy(out, &id, bytes);
    return 0;
}

static void *nccl_open(double timeout_s, int *rank, int *size, char *err, size_t cap)
{
    (void)timeout_s; (void)rank; (void)size;
    snprintf(err, cap, "NCCL communicators are made from a host communicator (comm_open_nccl)");
    return NULL;
}

static void nccl_close(void *impl, int failed)
{
    Nccl *n = impl;
    if (n->comm) (failed ? n->nc->comm_abort : n->nc->comm_destroy)(n->comm);
    n->cu->mem_free(n->scratch);
    n->cu->stream_destroy(n->stream);
    free(n);
}

/* Every request is the communicator itself: its stream runs the collectives
 * in order, so one that is done means the earlier ones are too. */
static void *queued(Nccl *n, int rc, const char *what, char *err, size_t cap)
{
    if (rc != VCLIP_NCCL_SUCCESS) { nccl_error(n, rc, what, err, cap); return NULL; }
    return n;
}

static void *nccl_iallreduce(void *impl, void *buf, size_t count, CommType t, int mean, char *err, size_t cap)
{
    Nccl *n = impl;
    int rc = n->nc->all_reduce(buf, buf, count, t == COMM_F64 ? VCLIP_NCCL_FLOAT64 : VCLIP_NCCL_FLOAT32,
                               mean ? VCLIP_NCCL_AVG : VCLIP_NCCL_SUM, n->comm, n->stream);
    return queued(n, rc, "ncclAllReduce", err, cap);
}

static int nccl_test(void *impl, void *req, int *done, char *err, size_t cap)
{
    (void)req;
    Nccl *n = impl;
    int async = VCLIP_NCCL_SUCCESS, rc = n->nc->comm_get_async_error(n->comm, &async);
    if (rc != VCLIP_NCCL_SUCCESS || (async != VCLIP_NCCL_SUCCESS && async != VCLIP_NCCL_IN_PROGRESS))
        return nccl_error(n, rc != VCLIP_NCCL_SUCCESS ? rc : async, "a collective failed (a rank or its link is gone)", err, cap);
    rc = n->cu->stream_query(n->stream);
    if (rc && rc != VCLIP_CU_NOT_READY) { snprintf(err, cap, "NCCL: the device failed (CUDA error %d)", rc); return -1; }
    *done = rc == 0;
    return 0;
}

static void nccl_cancel(void *impl, void *req)
{
    (void)req;
    Nccl *n = impl;
    if (n->comm) n->nc->comm_abort(n->comm);
    n->comm = NULL;
}

static void *nccl_ibroadcast(void *impl, void *buf, size_t bytes, int root, char *err, size_t cap)
{
    Nccl *n = impl;
    return queued(n, n->nc->broadcast(buf, buf, bytes, VCLIP_NCCL_UINT8, root, n->comm, n->stream), "ncclBroadcast", err, cap);
}

static void *nccl_iallgatherv(void *impl, const void *send, size_t bytes, void *recv, const size_t *counts, char *err, size_t cap)
{
    Nccl *n = impl;
    for (int r = 0; r < n->size; r++)
        if (counts[r] != bytes) { snprintf(err, cap, "NCCL: all-gather of unequal shares (rank %d: %zu bytes, here %zu)", r, counts[r], bytes); return NULL; }
    return queued(n, n->nc->all_gather(send, recv, bytes, VCLIP_NCCL_UINT8, n->comm, n->stream), "ncclAllGather", err, cap);
}

static void *nccl_ibarrier(void *impl, char *err, size_t cap)
{
    Nccl *n = impl;
    return nccl_iallreduce(n, (void *)(uintptr_t)n->scratch, 1, COMM_F32, 0, err, cap);
}

static int nccl_group(void *impl, int begin, char *err, size_t cap)
{
    Nccl *n = impl;
    int rc = begin ? n->nc->group_start() : n->nc->group_end();
    return rc == VCLIP_NCCL_SUCCESS ? 0 : nccl_error(n, rc, begin ? "ncclGroupStart" : "ncclGroupEnd", err, cap);
}

const CommOps comm_nccl_ops = {COMM_OPS_ABI, "nccl", 1, nccl_open, nccl_close, nccl_iallreduce, nccl_test, nccl_cancel,
                               nccl_ibroadcast, nccl_iallgatherv, nccl_ibarrier, nccl_group};
