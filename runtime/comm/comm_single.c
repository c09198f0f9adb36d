/* comm_single.c — the communicator of a job of one process: every
 * collective is already complete (an all-gather copies), so code written
 * for many ranks runs unchanged, and without MPI, in the common case. */
#include <string.h>
#include "comm_ops.h"

static char done_request; /* every request is this one, finished at once */

static void *single_open(double timeout_s, int *rank, int *size, char *err, size_t cap)
{
    (void)timeout_s; (void)err; (void)cap;
    *rank = 0;
    *size = 1;
    return &done_request;
}

static void single_close(void *impl, int failed) { (void)impl; (void)failed; }

static void *single_iallreduce(void *impl, void *buf, size_t n, CommType t, int mean, char *err, size_t cap)
{
    (void)impl; (void)buf; (void)n; (void)t; (void)mean; (void)err; (void)cap;
    return &done_request;
}

static int single_test(void *impl, void *req, int *done, char *err, size_t cap)
{
    (void)impl; (void)req; (void)err; (void)cap;
    *done = 1;
    return 0;
}

static void single_cancel(void *impl, void *req) { (void)impl; (void)req; }

static void *single_ibroadcast(void *impl, void *buf, size_t bytes, int root, char *err, size_t cap)
{
    (void)impl; (void)buf; (void)bytes; (void)root; (void)err; (void)cap;
    return &done_request;
}

static void *single_iallgatherv(void *impl, const void *send, size_t bytes, void *recv, const size_t *counts, char *err, size_t cap)
{
    (void)impl; (void)counts; (void)err; (void)cap;
    if (bytes && recv != send) memmove(recv, send, bytes);
    return &done_request;
}

static void *single_ibarrier(void *impl, char *err, size_t cap) { (void)impl; (void)err; (void)cap; return &done_request; }

const CommOps comm_single_ops = {COMM_OPS_ABI, "single", 0, single_open, single_close, single_iallreduce, single_test,
                                 single_cancel, single_ibroadcast, single_iallgatherv, single_ibarrier, NULL};
