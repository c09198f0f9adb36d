/* comm_mpi.c — the communicator over MPI, built as a plugin with mpicc
 * (bin/vclip-comm-mpi.so) so that vclip itself needs no MPI library unless a
 * launcher started several processes.  Every collective is MPI-3
 * nonblocking; comm.c polls it with a deadline, which is how a dead or hung
 * rank becomes an error instead of a hang.  Errors are returned, not fatal
 * (MPI_ERRORS_RETURN), and a failing rank aborts the job (MPI_Abort) so that
 * the others never wait for it. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include "comm_ops.h"

typedef struct {
    MPI_Comm comm;
    int rank, size, we_initialized;
} Mpi;

typedef struct {
    MPI_Request r;
    int *counts, *displs; /* all-gatherv's, alive until it completes */
} Req;

static int mpi_error(int rc, const char *what, char *err, size_t cap)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    snprintf(err, cap, "MPI: %s: %s", what, msg);
    return -1;
}

static void *mpi_open(double timeout_s, int *rank, int *size, char *err, size_t cap)
{
    (void)timeout_s;
    Mpi *m = calloc(1, sizeof *m);
    if (!m) { snprintf(err, cap, "out of memory"); return NULL; }
    int inited = 0, provided = 0, rc;
    MPI_Initialized(&inited);
    if (!inited) {
        /* one thread calls MPI (the loader's threads never do) */
        if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS) { free(m); mpi_error(rc, "MPI_Init_thread", err, cap); return NULL; }
        m->we_initialized = 1;
    }
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm)) != MPI_SUCCESS) { free(m); mpi_error(rc, "MPI_Comm_dup", err, cap); return NULL; }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &m->rank);
    MPI_Comm_size(m->comm, &m->size);
    *rank = m->rank;
    *size = m->size;
    return m;
}

static void mpi_close(void *impl, int failed)
{
    Mpi *m = impl;
    if (failed) MPI_Abort(MPI_COMM_WORLD, 1); /* does not return: the launcher stops every rank */
    MPI_Comm_free(&m->comm);
    if (m->we_initialized) MPI_Finalize();
    free(m);
}

static Req *req_new(char *err, size_t cap)
{
    Req *r = calloc(1, sizeof *r);
    if (!r) snprintf(err, cap, "out of memory");
    return r;
}

static void req_free(Req *r)
{
    free(r->counts);
    free(r->displs);
    free(r);
}

static void *mpi_iallreduce(void *impl, void *buf, size_t n, CommType t, int mean, char *err, size_t cap)
{
    (void)mean; /* comm.c divides */
    Mpi *m = impl;
    if (n > INT_MAX) { snprintf(err, cap, "MPI: all-reduce of %zu elements: more than one call can carry", n); return NULL; }
    Req *r = req_new(err, cap);
    if (!r) return NULL;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, t == COMM_F64 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM, m->comm, &r->r);
    if (rc != MPI_SUCCESS) { req_free(r); mpi_error(rc, "MPI_Iallreduce", err, cap); return NULL; }
    return r;
}

static int mpi_test(void *impl, void *req, int *done, char *err, size_t cap)
{
    (void)impl;
    Req *r = req;
    int flag = 0, rc = MPI_Test(&r->r, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Test", err, cap);
    *done = flag;
    if (flag) req_free(r);
    return 0;
}

/* A collective cannot be cancelled in MPI; the request is left to the
 * MPI_Abort that follows. */
static void mpi_cancel(void *impl, void *req) { (void)impl; (void)req; }

static void *mpi_ibroadcast(void *impl, void *buf, size_t bytes, int root, char *err, size_t cap)
{
    Mpi *m = impl;
    if (bytes > INT_MAX) { snprintf(err, cap, "MPI: broadcast of %zu bytes: more than one call can carry", bytes); return NULL; }
    Req *r = req_new(err, cap);
    if (!r) return NULL;
    int rc = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, m->comm, &r->r);
    if (rc != MPI_SUCCESS) { req_free(r); mpi_error(rc, "MPI_Ibcast", err, cap); return NULL; }
    return r;
}

static void *mpi_iallgatherv(void *impl, const void *send, size_t bytes, void *recv, const size_t *counts, char *err, size_t cap)
{
    Mpi *m = impl;
    Req *r = req_new(err, cap);
    if (!r) return NULL;
    r->counts = malloc(sizeof(int) * (size_t)m->size);
    r->displs = malloc(sizeof(int) * (size_t)m->size);
    if (!r->counts || !r->displs) { req_free(r); snprintf(err, cap, "out of memory"); return NULL; }
    size_t at = 0;
    for (int i = 0; i < m->size; i++) {
        if (counts[i] > INT_MAX || at > INT_MAX) { req_free(r); snprintf(err, cap, "MPI: all-gather of %zu bytes: more than one call can carry", at + counts[i]); return NULL; }
        r->counts[i] = (int)counts[i];
        r->displs[i] = (int)at;
        at += counts[i];
    }
    int rc = MPI_Iallgatherv(send, (int)bytes, MPI_BYTE, recv, r->counts, r->displs, MPI_BYTE, m->comm, &r->r);
    if (rc != MPI_SUCCESS) { req_free(r); mpi_error(rc, "MPI_Iallgatherv", err, cap); return NULL; }
    return r;
}

static void *mpi_ibarrier(void *impl, char *err, size_t cap)
{
    Mpi *m = impl;
    Req *r = req_new(err, cap);
    if (!r) return NULL;
    int rc = MPI_Ibarrier(m->comm, &r->r);
    if (rc != MPI_SUCCESS) { req_free(r); mpi_error(rc, "MPI_Ibarrier", err, cap); return NULL; }
    return r;
}

__attribute__((visibility("default"))) const CommOps vclip_comm_mpi_ops = {
    COMM_OPS_ABI, "mpi", 0, mpi_open, mpi_close, mpi_iallreduce, mpi_test, mpi_cancel, mpi_ibroadcast, mpi_iallgatherv, mpi_ibarrier, NULL};
